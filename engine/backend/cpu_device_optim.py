"""The cpu device's optimizer updates (backend layer): the protocol's sgd_update and adam_update,
one C call for a whole list of parameters (kernels_c/optim.c). cpu_device.py exports them.
"""

import ctypes

from .cpu_handles import _fail, _lib, _ptr
from .numpy_optim import check_update_lists


def _addresses(handles):
    """A ctypes array of the handles' data addresses (None for an absent list)."""
    if handles is None:
        return None
    return (ctypes.c_void_p * max(len(handles), 1))(*[_ptr(handle) for handle in handles])


def _call(name, kernel, lists, sizes, scalars):
    sizes = check_update_lists(name, lists, sizes, len)
    arrays = [_addresses(handles) for handles in lists.values()]
    counts = (ctypes.c_int64 * max(len(sizes), 1))(*sizes)
    try:
        status = kernel(*arrays, counts, len(sizes), *scalars)
    except ctypes.ArgumentError as error:
        raise TypeError(f"{name}: the update's numbers must be real, got {scalars}") from error
    if status:
        raise _fail(name, status, sizes=sizes)


def sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback):
    _call("sgd_update", _lib.nd_sgd_update_f32, {"ws": ws, "gs": gs, "us": us}, sizes,
          (weight_decay, keep, take, step, lookback))


def adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps, step):
    _call("adam_update", _lib.nd_adam_update_f32, {"ws": ws, "gs": gs, "ms": ms, "vs": vs},
          sizes, (weight_decay, keep1, take1, keep2, take2, eps, step))
