"""Normalization over one axis of a 2-D tensor as one op: (x - mean) / sqrt(var + eps) in one
kernel and its gradient in one more, where the composed formula took about 25 launches (batch and
layer norm build on it). Engine ops layer.
"""

from ..autograd import Tensor, TensorOp
from ..backend.normalize import normalize as normalize_array
from ..backend.normalize import normalize_grad
from .reduction import summation
from .shape import broadcast_to


class Normalize(TensorOp):
    """x -> (x - mean) / sqrt(var + eps), mean and biased variance over `axis` (0 or 1) of a
    2-D x. After compute, `stats` holds the (2, groups) means and variances (running
    estimates read them)."""

    def __init__(self, axis, eps):
        self.axis, self.eps = axis, float(eps)
        self.stats = None

    def compute(self, x):
        out, self.stats = normalize_array(x, self.axis, self.eps)
        return out

    def gradient(self, out_grad, node):
        return NormalizeGrad(self, node.realize_cached_data())(node.inputs[0], out_grad)


class NormalizeGrad(TensorOp):
    """(x, g) -> J(x) g, the normalization's Jacobian (symmetric) applied to g, in one kernel.
    Differentiable in turn through composed ops (Hessian-vector products are rare)."""

    def __init__(self, forward, xhat):
        self.forward, self.xhat = forward, xhat

    def compute(self, x, g):
        forward = self.forward
        return normalize_grad(g, self.xhat, forward.stats, forward.axis, forward.eps)

    def gradient(self, out_grad, node):
        x, g = node.inputs
        axis, eps = self.forward.axis, self.forward.eps
        count = x.shape[axis]
        # Built from an op of its own (not `normalize`), whose statistics J(x) v needs even when
        # no graph is kept.
        forward = Normalize(axis, eps)
        xhat = Tensor.make_from_op(forward, (x,))
        centered = x - _group_sum(x, axis) / count
        scale = (_group_sum(centered * centered, axis) / count + eps) ** -0.5
        j_v = NormalizeGrad(forward, xhat.realize_cached_data())(x, out_grad)
        # d<v, J(x) g>/dx = -(s / n) (xhat S(v J g) + (J v) S(g xhat) + (J g) S(v xhat)), with
        # S the group sum and s = 1 / sqrt(var + eps): J depends on x through s and xhat.
        grad_x = (scale / -count) * (xhat * _group_sum(out_grad * node, axis)
                                     + j_v * _group_sum(g * xhat, axis)
                                     + node * _group_sum(out_grad * xhat, axis))
        return grad_x, j_v


def _group_sum(t, axis):
    """Each group's sum over `axis`, broadcast back to t's shape."""
    return broadcast_to(summation(t, axes=(axis,), keepdims=True), t.shape)


def normalize(x, axis, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over `axis` (0: per column, as batch norm; 1: per row, as
    layer norm) of a 2-D tensor, with the biased variance; one kernel each way."""
    if len(x.shape) != 2 or axis not in (0, 1):
        raise ValueError(f"normalize works over axis 0 or 1 of a 2-D tensor, got shape "
                         f"{tuple(x.shape)} and axis {axis!r}")
    return Tensor.make_from_op(Normalize(axis, eps), (x,))
