"""The numpy specification of the device protocol's optimizer updates (see protocol.py): SGD with
momentum and Nesterov's look-ahead, and Adam, each over a whole list of parameters in one call.
Backend layer; numpy_device re-exports the updates, and every device runs `check_update_lists`.
"""

import operator

import numpy as np


def check_update_lists(name, lists, sizes, elements):
    """Raise ValueError or TypeError naming what is wrong unless `lists` (list name -> sequence
    of handles, or None for an absent optional list) all hold one handle per entry of `sizes`
    with at least that many elements (`elements(handle)` counts them). Returns the sizes as a
    list of ints."""
    try:
        sizes = [operator.index(size) for size in sizes]
    except TypeError as error:
        raise TypeError(f"{name}: sizes must be a sequence of integers, got {sizes!r}") from error
    for index, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"{name}: sizes[{index}] is negative ({size})")
    for list_name, handles in lists.items():
        if handles is None:
            continue
        if len(handles) != len(sizes):
            raise ValueError(f"{name}: {list_name} holds {len(handles)} buffers for "
                             f"{len(sizes)} sizes")
        for index, (handle, size) in enumerate(zip(handles, sizes)):
            if elements(handle) < size:
                raise ValueError(f"{name}: {list_name}[{index}] holds {elements(handle)} "
                                 f"elements, fewer than its size {size}")
    return sizes


def _decayed(w, g, weight_decay, dtype):
    return g if dtype(weight_decay) == 0 else g + dtype(weight_decay) * w


def sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback):
    sizes = check_update_lists("sgd_update", {"ws": ws, "gs": gs, "us": us}, sizes, len)
    with np.errstate(all="ignore"):
        for index, size in enumerate(sizes):
            w, g = ws[index][:size], gs[index][:size]
            dtype = w.dtype.type
            d = _decayed(w, g, weight_decay, dtype)
            if us is None:
                w[...] = w - dtype(step) * d
                continue
            u = us[index][:size]
            previous = u.copy()
            u[...] = dtype(keep) * u + dtype(take) * d
            moved = w - dtype(step) * u
            w[...] = moved if dtype(lookback) == 0 else moved + dtype(lookback) * previous


def adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps, step):
    sizes = check_update_lists("adam_update", {"ws": ws, "gs": gs, "ms": ms, "vs": vs}, sizes,
                               len)
    with np.errstate(all="ignore"):
        for index, size in enumerate(sizes):
            w, g = ws[index][:size], gs[index][:size]
            m, v = ms[index][:size], vs[index][:size]
            dtype = w.dtype.type
            d = _decayed(w, g, weight_decay, dtype)
            m[...] = dtype(keep1) * m + dtype(take1) * d
            v[...] = dtype(keep2) * v + dtype(take2) * (d * d)
            w[...] = w - dtype(step) * (m / (np.sqrt(v) + dtype(eps)))
