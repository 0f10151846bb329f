"""Reduction plans: how to reduce an array of a given shape over given axes, worked out once per
(shape, axes, keepdims) and cached, since training repeats the same reductions every step.
Backend layer, used by NDArray.sum / NDArray.max.
"""

import math
import numbers

PLAN_CACHE_LIMIT = 4096
_REDUCE_PLANS = {}


def reduce_plan(shape, axis, keepdims):
    """The cached plan for `shape` reduced over `axis` (see `make_reduce_plan`)."""
    key = (shape, axis, keepdims)
    try:
        return _REDUCE_PLANS[key]
    except KeyError:
        plan = make_reduce_plan(shape, axis, keepdims)
        if len(_REDUCE_PLANS) >= PLAN_CACHE_LIMIT:
            _REDUCE_PLANS.clear()
        _REDUCE_PLANS[key] = plan
        return plan
    except TypeError:  # an unhashable `axis` (a list): plan it, don't cache it
        return make_reduce_plan(shape, axis, keepdims)


def make_reduce_plan(shape, axis, keepdims):
    """How to reduce an array of `shape` over `axis`, worked out once per (shape, axis, keepdims):
    (order, reduce_size, out_shape, leading). `order` moves the reduced axes last (None when they
    already are), `leading` says they are the leading axes with at least one axis kept."""
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        for a in axes:
            if not -ndim <= a < max(ndim, 1):
                raise ValueError(f"axis {a} is out of range for shape {shape}")
        axes = tuple(sorted(set(a % ndim for a in axes))) if ndim else ()
    kept = tuple(a for a in range(ndim) if a not in axes)
    order = None if axes == tuple(range(ndim - len(axes), ndim)) else kept + axes
    reduce_size = math.prod(shape[a] for a in axes)
    if keepdims:
        out_shape = tuple(1 if a in axes else n for a, n in enumerate(shape))
    else:
        out_shape = tuple(shape[a] for a in kept)
    leading = bool(kept) and axes == tuple(range(len(axes)))
    return order, reduce_size, out_shape, leading
