"""Stride arithmetic for NDArray views (backend layer): the strides of a dense row-major array,
the view that basic indexing selects, and whether a view is one dense row repeated by
broadcasting or a dense array in another axis order (both of which elementwise kernels read as
stored).
"""

import functools
import numbers


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


@functools.lru_cache(maxsize=4096)
def canonical_strides(shape, strides):
    """`strides` with each size-1 axis's stride replaced by its compact value: that stride never
    moves (the axis's only index is 0), so the view is the same, and a view whose elements are
    already in order (a one-channel NCHW image seen as NHWC, a 1x1 feature map) then reads as
    compact everywhere, with no copy."""
    return tuple(c if n == 1 else s for n, s, c in zip(shape, strides, compact_strides(shape)))


@functools.lru_cache(maxsize=4096)
def is_permuted_dense(shape, strides):
    """True when strides (of a view at offset 0) lay `shape` over exactly its prod(shape) first
    elements in some axis order, as a permute of a compact array does: an elementwise kernel
    can then run over the buffer as stored and its result keep these strides."""
    expected = 1
    for stride, size in sorted((s, n) for n, s in zip(shape, strides) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def index_view(shape_in, strides_in, offset_in, idxs):
    """(shape, strides, offset) of the basic-indexing view `array[idxs]` of an array laid out
    as (shape_in, strides_in, offset_in) (numpy semantics: ints drop their axis, slices keep it,
    `...` and None are understood)."""
    if not isinstance(idxs, tuple):
        idxs = (idxs,)
    if sum(i is Ellipsis for i in idxs) > 1:
        raise IndexError("an index can only have a single ellipsis")
    n_real = sum(1 for i in idxs if i is not None and i is not Ellipsis)
    if n_real > len(shape_in):
        raise IndexError(f"too many indices ({n_real}) for array of shape {shape_in}")
    if Ellipsis in idxs:
        at = idxs.index(Ellipsis)
        idxs = idxs[:at] + (slice(None),) * (len(shape_in) - n_real) + idxs[at + 1:]
    else:
        idxs = idxs + (slice(None),) * (len(shape_in) - n_real)
    shape, strides, offset, axis = [], [], offset_in, 0
    for idx in idxs:
        if idx is None:
            shape.append(1)
            strides.append(0)
            continue
        n, stride = shape_in[axis], strides_in[axis]
        if isinstance(idx, slice):
            start, stop, step = idx.indices(n)
            length = len(range(start, stop, step))
            offset += start * stride if length else 0
            shape.append(length)
            strides.append(stride * step)
        elif isinstance(idx, numbers.Integral) and not isinstance(idx, bool):
            i = int(idx)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n} "
                                 f"(array shape {shape_in})")
            offset += (i % n) * stride
        else:
            raise TypeError(f"unsupported index {idx!r}: use ints, slices, None or ...")
        axis += 1
    return tuple(shape), tuple(strides), offset
