"""The cpu device's handles and its link to the C library (backend layer): float32 numpy buffers
that cache their address, the loaded kernels, and the checks and errors every wrapper shares
(cpu_device.py and cpu_device_rows.py).
"""

import ctypes

import numpy as np

from kernels_c import load, status_error

from .cpu_memory import keep_freed_memory

_F32 = np.dtype(np.float32)
_lib = load()
keep_freed_memory()
_I64_ARRAYS = {}
_I64_CACHE_LIMIT = 4096


class Buffer(np.ndarray):
    """A float32 handle that remembers its data address. Only `alloc` sets it; views of a Buffer
    leave the slot empty (reading it raises AttributeError) and so take the checked path."""

    __slots__ = ("address",)


_new_buffer = np.ndarray.__new__
_char_at = ctypes.c_char.from_buffer
_address_of = ctypes.addressof


def _foreign_address(handle):
    if not isinstance(handle, np.ndarray):
        raise TypeError(f"cpu device handles are numpy float32 arrays, got {type(handle).__name__}")
    if handle.dtype != _F32:
        raise TypeError(f"cpu device supports float32 only, got a {handle.dtype} handle")
    if handle.ndim != 1 or not handle.flags.c_contiguous:
        raise ValueError(f"cpu device handles are 1-D contiguous, got shape {handle.shape} and "
                         f"strides {handle.strides}")
    return handle.ctypes.data


def _ptr(handle):
    # Only `alloc`'s Buffers carry `address`; anything else (a view, a foreign array) is checked.
    try:
        return handle.address
    except AttributeError:
        return _foreign_address(handle)


def _i64(values):
    """A cached ctypes int64 array holding the tuple `values`."""
    array = _I64_ARRAYS.get(values)
    if array is None:
        if len(_I64_ARRAYS) > _I64_CACHE_LIMIT:
            _I64_ARRAYS.clear()
        array = _I64_ARRAYS[values] = (ctypes.c_int64 * max(len(values), 1))(*values)
    return array


def _i64_fresh(values):
    """A new ctypes int64 array holding `values`, for sizes that change every call (a seed)."""
    return (ctypes.c_int64 * max(len(values), 1))(*values)


def _fail(name, status, **details):
    detail = ", ".join(f"{key}={value}" for key, value in details.items())
    return status_error(name, status, detail)


def _check_sizes(name, size, *handles):
    for handle in handles:
        if size > handle.size:
            raise ValueError(f"{name}: size {size} exceeds a buffer of {handle.size} elements")
    if size < 0:
        raise ValueError(f"{name}: negative size {size}")
