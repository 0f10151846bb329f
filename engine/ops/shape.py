"""Shape ops: broadcast_to, reshape, transpose, permute, basic indexing, stack/split, with their
gradients. Engine ops layer; every forward is a view or one compact copy on the NDArray.
"""

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp
from ..backend import NDArray

_NORMALIZED_AXES = {}
_AXES_CACHE_LIMIT = 4096


def _normalize_axes(axes, ndim, what):
    """`axes` (None, an int or a sequence) as a sorted tuple of non-negative axes of a rank-`ndim`
    tensor; memoized, since every reduction asks (and usually with the same arguments)."""
    key = (axes, ndim, what)
    try:
        return _NORMALIZED_AXES[key]
    except KeyError:
        normalized = _compute_normalized_axes(axes, ndim, what)
    except TypeError:  # unhashable axes (a list)
        return _compute_normalized_axes(axes, ndim, what)
    if len(_NORMALIZED_AXES) >= _AXES_CACHE_LIMIT:
        _NORMALIZED_AXES.clear()
    _NORMALIZED_AXES[key] = normalized
    return normalized


def _compute_normalized_axes(axes, ndim, what):
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{what}: axis {a} out of range for a tensor of rank {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


class BroadcastTo(TensorOp):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return a.broadcast_to(self.shape)

    def gradient(self, out_grad, node):
        in_shape = node.inputs[0].shape
        lead = len(self.shape) - len(in_shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(in_shape) if n == 1 and self.shape[lead + i] != 1)
        if not lead and axes:
            # Same rank (a bias row broadcast over the batch): keepdims gives in_shape already.
            return out_grad.sum(axes, keepdims=True)
        grad = out_grad.sum(axes) if axes else out_grad
        return reshape(grad, in_shape)


class Reshape(TensorOp):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return a.reshape(self.shape)

    def gradient(self, out_grad, node):
        return reshape(out_grad, node.inputs[0].shape)


class Permute(TensorOp):
    def __init__(self, axes):
        self.axes = tuple(axes)

    def compute(self, a):
        return a.permute(self.axes)

    def gradient(self, out_grad, node):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a % len(self.axes)] = i
        return permute(out_grad, tuple(inverse))


class Transpose(Permute):
    """needle's transpose: swap two axes, the last two when `axes` is None."""

    def __init__(self, axes, ndim):
        if ndim < 2:
            raise ValueError(f"transpose needs a tensor of rank >= 2, got rank {ndim}")
        i, j = (ndim - 2, ndim - 1) if axes is None else (axes[0] % ndim, axes[1] % ndim)
        order = list(range(ndim))
        order[i], order[j] = order[j], order[i]
        super().__init__(order)


class GetItem(TensorOp):
    """Basic indexing (ints, slices, None, ...): a view; the gradient scatters into zeros."""

    def __init__(self, idxs):
        self.idxs = idxs

    def compute(self, a):
        return a[self.idxs]

    def gradient(self, out_grad, node):
        return ScatterItem(self.idxs, node.inputs[0].shape)(out_grad)


class ScatterItem(TensorOp):
    """zeros(shape) with `out[idxs] = a`: the adjoint of GetItem."""

    def __init__(self, idxs, shape):
        self.idxs = idxs
        self.shape = tuple(shape)

    def compute(self, a):
        out = a.device.full(self.shape, 0.0, a.dtype)
        out[self.idxs] = a
        return out

    def gradient(self, out_grad, node):
        return get_item(out_grad, self.idxs)


class Stack(TensorOp):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, *arrays):
        if not arrays:
            raise ValueError("stack needs at least one tensor")
        shape = arrays[0].shape
        for a in arrays:
            if a.shape != shape:
                raise ValueError(f"stack: all shapes must be equal, got {shape} and {a.shape}")
        axis = self.axis % (len(shape) + 1)
        out_shape = shape[:axis] + (len(arrays),) + shape[axis:]
        out = NDArray.make(out_shape, device=arrays[0].device, dtype=arrays[0].dtype)
        index = [slice(None)] * len(out_shape)
        for i, a in enumerate(arrays):
            index[axis] = i
            out[tuple(index)] = a
        return out

    def gradient(self, out_grad, node):
        return tuple(split(out_grad, self.axis))


class Split(TensorTupleOp):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, a):
        axis = self.axis % a.ndim
        index = [slice(None)] * a.ndim
        parts = []
        for i in range(a.shape[axis]):
            index[axis] = i
            parts.append(a[tuple(index)].compact())
        return tuple(parts)

    def gradient(self, out_grad, node):
        return stack(list(out_grad), self.axis)


class MakeTuple(TensorTupleOp):
    def compute(self, *arrays):
        return tuple(arrays)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(out_grad)))


class TupleGetItem(TensorOp):
    def __init__(self, index):
        self.index = index

    def compute(self, a):
        return a[self.index]

    def gradient(self, out_grad, node):
        tup = node.inputs[0]
        parts = []
        for i, value in enumerate(tup.realize_cached_data()):
            if i == self.index:
                parts.append(out_grad)
            else:
                parts.append(Tensor.make_const(value.device.full(value.shape, 0.0, value.dtype)))
        return make_tuple(*parts)


_make = Tensor.make_from_op


def broadcast_to(a, shape):
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return _make(BroadcastTo(shape), (a,))


def reshape(a, shape):
    return _make(Reshape(shape), (a,))


def permute(a, axes):
    return _make(Permute(axes), (a,))


def transpose(a, axes=None):
    return _make(Transpose(axes, len(a.shape)), (a,))


def get_item(a, idxs):
    return GetItem(idxs)(a)


def stack(args, axis):
    return Stack(axis)(*args)


def split(a, axis):
    return Split(axis)(a)


def make_tuple(*args):
    return MakeTuple()(*args)


def tuple_get_item(value, index):
    return TupleGetItem(index)(value)


def broadcast_shape(shape_a, shape_b):
    ndim = max(len(shape_a), len(shape_b))
    a = (1,) * (ndim - len(shape_a)) + tuple(shape_a)
    b = (1,) * (ndim - len(shape_b)) + tuple(shape_b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def broadcast_pair(a, b):
    """Tensors `a`, `b` broadcast to their common shape (numpy rules)."""
    if a.shape == b.shape:
        return a, b
    shape = broadcast_shape(a.shape, b.shape)
    return broadcast_to(a, shape), broadcast_to(b, shape)


__all__ = ["broadcast_to", "reshape", "permute", "transpose", "get_item", "stack", "split",
           "make_tuple", "tuple_get_item", "broadcast_pair", "broadcast_shape", "TensorTuple"]
