"""The array layer: NDArray over a device handle, and the devices (numpy spec, C cpu, Triton cuda).
Backend layer of the engine; imports nothing above it.
"""

from .device import (
    BackendDevice,
    all_devices,
    by_name,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    set_num_threads,
)
from .launch_count import count_launches
from .ndarray import NDArray, matmul
from .ndarray_functions import array, broadcast_to, empty, full, reshape

__all__ = ["BackendDevice", "NDArray", "all_devices", "array", "broadcast_to", "by_name", "cpu",
           "count_launches", "cpu_numpy", "cuda", "default_device", "empty", "full", "matmul",
           "reshape", "set_num_threads"]
