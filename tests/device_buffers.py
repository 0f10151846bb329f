"""Host arrays in and out of a device's buffers, for tests that call protocol functions directly.
Test support (tests/backend, tests/kernels).
"""

import numpy as np


def to_device(device, host, dtype="float32"):
    """A new buffer of `device` holding `host` flattened (one element at least, so that empty
    inputs still have a handle)."""
    host = np.asarray(host)
    handle = device.alloc(max(host.size, 1), dtype)
    if host.size:
        device.from_numpy(np.ascontiguousarray(host, dtype=dtype).reshape(-1), handle)
    return handle


def read(device, handle, size):
    """The first `size` elements of a buffer, as a host array."""
    return device.to_numpy(handle, (size,), (1,), 0)
