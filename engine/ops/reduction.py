"""Reductions: summation, max, mean, logsumexp (numerically stable) and logsoftmax, with gradients.
Engine ops layer.
"""

from ..autograd import Tensor, TensorOp
from .elementwise import exp
from .shape import _normalize_axes, broadcast_to, reshape


def _kept_shape(shape, axes):
    """`shape` with the reduced `axes` set to 1 (what keepdims gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Summation(TensorOp):
    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "summation")
        return a.sum(axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        axes = _normalize_axes(self.axes, len(shape), "summation")
        kept = _kept_shape(shape, axes)
        grad = out_grad if out_grad.shape == kept else reshape(out_grad, kept)
        return broadcast_to(grad, shape)


class Max(TensorOp):
    """Maximum over `axes`; the gradient is shared equally among tied maxima."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "max")
        return a.max(axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        x = node.inputs[0]
        axes = _normalize_axes(self.axes, len(x.shape), "max")
        kept = _kept_shape(x.shape, axes)
        data = x.realize_cached_data()
        peak = node.realize_cached_data().reshape(kept).broadcast_to(x.shape)
        mask = data == peak
        count = mask.sum(axis=axes, keepdims=True).broadcast_to(x.shape)
        share = Tensor.make_const(mask / count)
        return broadcast_to(reshape(out_grad, kept), x.shape) * share


class LogSumExp(TensorOp):
    """log(sum(exp(x), axes)): one device reduction, which shifts by the maximum (no overflow)."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "logsumexp")
        return a.logsumexp(axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        x = node.inputs[0]
        axes = _normalize_axes(self.axes, len(x.shape), "logsumexp")
        kept = _kept_shape(x.shape, axes)
        lse = broadcast_to(reshape(node, kept), x.shape)
        return broadcast_to(reshape(out_grad, kept), x.shape) * exp(x - lse)


class LogSoftmax(TensorOp):
    """x - logsumexp(x) over the last axis."""

    def compute(self, a):
        lse = LogSumExp(axes=(a.ndim - 1,), keepdims=True).compute(a)
        return a - lse.broadcast_to(a.shape)

    def gradient(self, out_grad, node):
        axis = len(node.shape) - 1
        total = broadcast_to(summation(out_grad, (axis,), keepdims=True), node.shape)
        return out_grad - exp(node) * total


def summation(a, axes=None, keepdims=False):
    return Tensor.make_from_op(Summation(axes, keepdims), (a,))


def max(a, axes=None, keepdims=False):  # noqa: A001 - needle's name
    return Max(axes, keepdims)(a)


def mean(a, axes=None, keepdims=False):
    shape = a.shape
    count = 1
    for axis in _normalize_axes(axes, len(shape), "mean"):
        count *= shape[axis]
    return summation(a, axes, keepdims) / count


def logsumexp(a, axes=None, keepdims=False):
    return LogSumExp(axes, keepdims)(a)


def logsoftmax(a):
    return LogSoftmax()(a)
