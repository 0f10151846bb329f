"""needle's module-level array functions (`array`, `empty`, `full`, `broadcast_to`, `reshape`,
`maximum`, `log`, `exp`, `tanh`, `summation`), each a thin call of an NDArray method or a device
constructor. Backend layer, beside ndarray.py.
"""

from .device import default_device
from .ndarray import NDArray


def array(a, dtype="float32", device=None):
    return NDArray(a, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    return (device or default_device()).empty(shape, dtype)


def full(shape, fill_value, dtype="float32", device=None):
    return (device or default_device()).full(shape, fill_value, dtype)


def broadcast_to(array, new_shape):
    return array.broadcast_to(new_shape)


def reshape(array, new_shape):
    return array.reshape(new_shape)


def maximum(a, b):
    return a.maximum(b)


def log(a):
    return a.log()


def exp(a):
    return a.exp()


def tanh(a):
    return a.tanh()


def summation(a, axis=None, keepdims=False):
    return a.sum(axis=axis, keepdims=keepdims)


__all__ = ["array", "empty", "full", "broadcast_to", "reshape", "maximum", "log", "exp", "tanh",
           "summation"]
