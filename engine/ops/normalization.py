"""Normalization over one axis of a 2-D tensor as one op: (x - mean) / sqrt(var + eps), with or
without a learned scale and shift per column, in one kernel and its gradient in one or two more,
where the composed formula took about 25 launches (batch and layer norm build on it). Engine ops.
"""

from ..autograd import Tensor, TensorOp, TensorTupleOp
from ..backend.normalize import normalize as normalize_array
from ..backend.normalize import normalize_affine as normalize_affine_array
from ..backend.normalize import normalize_affine_grad, normalize_grad
from .elementwise import already_gated, relu_gate
from .reduction import summation
from .shape import broadcast_to, reshape


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
        grad_x, j_v, _ = _jacobian_product_grads(x, g, node, out_grad, self.forward.axis,
                                                  self.forward.eps)
        return grad_x, j_v


class NormalizeAffine(TensorOp):
    """(x, weight, bias) -> weight * xhat + bias, xhat = Normalize(axis, eps)(x) and one weight
    and bias per column. `stats` as Normalize's. With `running` (an NDArray like the stats),
    compute also updates it in place, running <- keep * running + take * stats, in the same
    kernel (batch norm's running estimates). With `relu`, the result goes through ReLU in that
    kernel: the gradient then gates with the output (ReLU keeps a NaN and sends every other value
    <= 0 to 0, so it is the same gate), as a consumer's product may (`gates_with_output`, read by
    ops.linalg)."""

    def __init__(self, axis, eps, running=None, keep=1.0, take=0.0, relu=False):
        self.axis, self.eps = axis, float(eps)
        self.running, self.keep, self.take = running, float(keep), float(take)
        self.relu = self.gates_with_output = bool(relu)
        self.stats = None

    def compute(self, x, weight, bias):
        out, self.stats = normalize_affine_array(x, weight, bias, self.axis, self.eps,
                                                 self.running, self.keep, self.take, self.relu)
        return out

    def gradient(self, out_grad, node):
        gate = None
        if self.relu:
            # ReLU's gradient inside the backward's kernel, unless a consumer's product applied
            # it already (ops.linalg.GatedMatMul).
            output = node.realize_cached_data()
            if not already_gated(out_grad, output):
                gate = output
        x, weight, _ = node.inputs
        grads = NormalizeAffineGrad(self, gate)(x, weight, out_grad)
        return grads[0], grads[1], grads[2]


class NormalizeAffineGrad(TensorTupleOp):
    """(x, weight, g) -> (J(x) (weight * g), column sums of g * xhat, column sums of g): the
    gradients of NormalizeAffine for the cotangent g, from one kernel (two for layer norm). With
    `gate` (an NDArray: the output of a NormalizeAffine with its ReLU), g is first gated by it,
    in the same kernels. Differentiable in turn through composed ops."""

    def __init__(self, forward, gate=None):
        self.forward, self.gate = forward, gate

    def compute(self, x, weight, g):
        forward = self.forward
        grad_x, grad_weight, grad_bias = normalize_affine_grad(g, x, forward.stats, weight,
                                                               forward.axis, forward.eps,
                                                               self.gate)
        return grad_x, grad_weight.astype(weight.dtype), grad_bias.astype(weight.dtype)

    def gradient(self, out_grad, node):
        x, weight, g = node.inputs
        if self.gate is not None:
            # Everything below is linear in the gated g: differentiate at it, gate g's share.
            g = relu_gate(g, self.gate)
        u, v, c = out_grad.tuple()
        axis, eps = self.forward.axis, self.forward.eps
        weights = _columns(weight, x.shape)
        # F = <u, J(x) (W g)> + <v, S(g xhat)> + <c, S(g)>, S the column sum, W the weights
        # broadcast: the first term is NormalizeGrad's, the others are linear in g and xhat.
        # (Mixed dtypes follow the first operand: x's side goes first, so a float32 layer on
        # float64 data keeps float64 gradients.)
        grad_x, j_u, (xhat_op, xhat) = _jacobian_product_grads(x, g * weights, node[0], u, axis,
                                                                eps)
        spread_v = _columns(v, x.shape)
        grad_x = grad_x + NormalizeGrad(xhat_op, xhat.realize_cached_data())(x, g * spread_v)
        grad_weight = summation(j_u * g, axes=(0,))
        grad_g = j_u * weights + xhat * spread_v + _columns(c, x.shape)
        if self.gate is not None:
            grad_g = relu_gate(grad_g, self.gate)
        return grad_x, grad_weight, grad_g


def _columns(t, shape):
    """A (cols,) tensor broadcast over the rows of `shape`."""
    return broadcast_to(reshape(t, (1, shape[1])), shape)


def _group_sum(t, axis):
    """Each group's sum over `axis`, broadcast back to t's shape."""
    return broadcast_to(summation(t, axes=(axis,), keepdims=True), t.shape)


def _jacobian_product_grads(x, g, j_g, v, axis, eps):
    """(d<v, J(x) g>/dx, J(x) v, (op, xhat)) as composed, differentiable ops, where j_g is
    J(x) g; xhat is normalize(x) made by its own op, whose statistics J(x) v needs even when no
    graph is kept."""
    count = x.shape[axis]
    forward = Normalize(axis, eps)
    xhat = Tensor.make_from_op(forward, (x,))
    centered = x - _group_sum(x, axis) / count
    scale = (_group_sum(centered * centered, axis) / count + eps) ** -0.5
    j_v = NormalizeGrad(forward, xhat.realize_cached_data())(x, v)
    # d<v, J(x) g>/dx = -(s / n) (xhat S(v J g) + (J v) S(g xhat) + (J g) S(v xhat)), with
    # S the group sum and s = 1 / sqrt(var + eps): J depends on x through s and xhat.
    grad_x = (scale / -count) * (xhat * _group_sum(v * j_g, axis)
                                 + j_v * _group_sum(g * xhat, axis)
                                 + j_g * _group_sum(v * xhat, axis))
    return grad_x, j_v, (forward, xhat)


def _check_2d(x, axis):
    if len(x.shape) != 2 or axis not in (0, 1):
        raise ValueError(f"normalize works over axis 0 or 1 of a 2-D tensor, got shape "
                         f"{tuple(x.shape)} and axis {axis!r}")


def normalize(x, axis, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over `axis` (0: per column, as batch norm; 1: per row, as
    layer norm) of a 2-D tensor, with the biased variance; one kernel each way."""
    _check_2d(x, axis)
    return Tensor.make_from_op(Normalize(axis, eps), (x,))


def normalize_affine(x, weight, bias, axis, eps=1e-5, relu=False):
    """weight * normalize(x, axis, eps) + bias, weight and bias (cols,) tensors: batch norm's
    training step (axis 0) or layer norm (axis 1) in one kernel forward, one or two backward;
    through ReLU with `relu`, in the same kernel."""
    _check_2d(x, axis)
    for name, value in (("weight", weight), ("bias", bias)):
        if not isinstance(value, Tensor):
            raise TypeError(f"normalize_affine's {name} must be a Tensor, got "
                            f"{type(value).__name__}")
    return Tensor.make_from_op(NormalizeAffine(axis, eps, relu=relu), (x, weight, bias))
