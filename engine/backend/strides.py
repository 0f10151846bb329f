"""Stride arithmetic for NDArray views (backend layer): the strides of a dense row-major array,
and whether a view is one dense row repeated by broadcasting (which elementwise kernels read as
stored).
"""

import functools


@functools.lru_cache(maxsize=4096)
def compact_strides(shape):
    strides, stride = [], 1
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    return tuple(reversed(strides))


def repeated_row_period(array):
    """p when `array` is one compact row of p elements at the start of its buffer, repeated by
    stride-0 axes (a broadcast bias or scale); else 0."""
    if array.offset != 0:
        return 0
    shape, strides = array.shape, array.strides
    period, axis = 1, len(shape)
    while axis and (strides[axis - 1] == period or shape[axis - 1] == 1):
        axis -= 1
        period *= shape[axis]
    if any(strides[i] and shape[i] != 1 for i in range(axis)):
        return 0
    return period
