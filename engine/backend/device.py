"""Devices: a name plus a module of flat protocol functions, and the registry `cpu()`, `cuda()`,
`cpu_numpy()`, `default_device()`. Backend layer; the modules themselves are imported lazily so
that a missing compiler or GPU only matters to the device that needs it.
"""

import importlib
import os
import threading

import numpy as np

from .protocol import CORE_FUNCTIONS, missing_functions


class BackendDevice:
    """A device: the protocol functions of one backend module, copied onto the instance so that a
    call costs one attribute lookup (per-op Python overhead is the engine's main cost)."""

    def __init__(self, name, module_name, dtypes, loader=None):
        self.name = name
        self._module_name = module_name
        self._loader = loader
        self.dtypes = tuple(dtypes)
        self._module = None
        self._lock = threading.Lock()

    @property
    def module(self):
        if self._module is None:
            with self._lock:
                if self._module is None:
                    module = self._loader() if self._loader else importlib.import_module(
                        self._module_name)
                    missing = missing_functions(module, CORE_FUNCTIONS)
                    if missing:
                        raise RuntimeError(
                            f"device {self.name!r} lacks protocol functions {missing}")
                    if _REQUESTED_THREADS["n"] is not None:
                        module.set_num_threads(_REQUESTED_THREADS["n"])
                    self._module = module
        return self._module

    def __getattr__(self, name):
        # Only reached for names not yet on the instance: bind a protocol function once.
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(self.module, name)
        self.__dict__[name] = fn
        return fn

    def enabled(self):
        try:
            module = self.module
        except (ImportError, OSError, RuntimeError):
            return False
        return bool(getattr(module, "enabled", lambda: True)())

    def check_dtype(self, dtype):
        dtype = np.dtype(dtype).name
        if dtype not in self.dtypes:
            raise TypeError(f"device {self.name} supports dtypes {self.dtypes}, got {dtype}")
        return dtype

    def __repr__(self):
        return f"{self.name}()"

    def __eq__(self, other):
        # Devices are registry singletons, so identity settles almost every comparison.
        return self is other or (isinstance(other, BackendDevice) and self.name == other.name)

    def __hash__(self):
        return hash(self.name)

    # needle's device-level constructors
    def rand(self, *shape, dtype="float32"):
        from .. import random as _random
        from .ndarray import NDArray

        return NDArray(_random.generator().random(shape).astype(dtype), device=self)

    def randn(self, *shape, dtype="float32"):
        from .. import random as _random
        from .ndarray import NDArray

        return NDArray(_random.generator().standard_normal(shape).astype(dtype), device=self)

    def one_hot(self, n, i, dtype="float32"):
        from .ndarray import NDArray

        return NDArray(np.eye(n, dtype=dtype)[np.asarray(i, dtype=np.int64)], device=self)

    def empty(self, shape, dtype="float32"):
        from .ndarray import NDArray

        return NDArray.make(tuple(shape), device=self, dtype=dtype)

    def full(self, shape, fill_value, dtype="float32"):
        arr = self.empty(shape, dtype)
        # The device's fill, not NDArray.fill: a buffer no graph has seen needs no write stamp.
        self.fill(arr.handle, fill_value, arr.size)
        return arr


# set_num_threads's count, for each device module as it loads: a harness run pins its threads
# before its device is first used (the cuda device compiles on them).
_REQUESTED_THREADS = {"n": None}


def set_num_threads(n):
    """Threads every device's host work may use (see engine.set_num_threads): the cpu device's
    now, each other device's once loaded."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads needs n >= 1, got {n}")
    _REQUESTED_THREADS["n"] = n
    if _CPU.enabled():
        _CPU.set_num_threads(n)
    for device in (_CPU_NUMPY, _CUDA):
        if device._module is not None:
            device.set_num_threads(n)


_CPU_NUMPY = BackendDevice("cpu_numpy", "engine.backend.numpy_device", ("float32", "float64"))
_CPU = BackendDevice("cpu", "engine.backend.cpu_device", ("float32",))
_CUDA = BackendDevice("cuda", "engine.backend.cuda_device", ("float32",))


def cpu_numpy():
    return _CPU_NUMPY


def cpu():
    return _CPU


def cuda():
    return _CUDA


def by_name(name):
    devices = {"cpu": _CPU, "cpu_numpy": _CPU_NUMPY, "numpy": _CPU_NUMPY, "cuda": _CUDA}
    if name not in devices:
        raise ValueError(f"unknown device {name!r}; choose one of {sorted(devices)}")
    return devices[name]


def default_device():
    """`ENGINE_DEVICE` when set, else cpu (our C kernels)."""
    return by_name(os.environ.get("ENGINE_DEVICE", "cpu"))


def all_devices():
    return [_CPU, _CPU_NUMPY, _CUDA]
