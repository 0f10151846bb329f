"""Normalization layers over features of (N, dim) inputs: LayerNorm1d, BatchNorm1d.
Engine layer (nn). Training-mode statistics come from one fused op (ops.normalize) each way; the
affine part and evaluation mode are composed ops. BatchNorm2d comes with the convolution issue.
"""

from .. import init, ops
from ..autograd import Tensor
from ..ops.normalization import Normalize
from .module import Module, Parameter


def _check_2d(name, x, dim):
    if len(x.shape) != 2 or x.shape[1] != dim:
        raise ValueError(f"{name}({dim}) expects input of shape (N, {dim}), got {tuple(x.shape)}")


class LayerNorm1d(Module):
    """y = w * (x - mean) / sqrt(var + eps) + b, statistics of each row over its features
    (biased variance)."""

    def __init__(self, dim, eps=1e-5, device=None, dtype="float32"):
        super().__init__()
        self.dim = int(dim)
        self.eps = float(eps)
        self._device, self._dtype = device, dtype
        self.weight = Parameter(init.ones(self.dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(self.dim, device=device, dtype=dtype))

    def reset_parameters(self):
        self.weight.data = init.ones(self.dim, device=self._device, dtype=self._dtype)
        self.bias.data = init.zeros(self.dim, device=self._device, dtype=self._dtype)

    def forward(self, x):
        _check_2d("LayerNorm1d", x, self.dim)
        return _affine(ops.normalize(x, 1, self.eps), self.weight, self.bias)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


class BatchNorm1d(Module):
    """Training: normalize with the batch's mean and biased variance (divide by N) and update the
    running estimates as in needle, r <- (1 - momentum) * r + momentum * batch_stat, where the
    running variance tracks the *biased* batch variance (PyTorch tracks the unbiased one).
    Evaluation: normalize with the running estimates, so each example is independent of its batch.
    """

    def __init__(self, dim, eps=1e-5, momentum=0.1, device=None, dtype="float32"):
        super().__init__()
        self.dim = int(dim)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self._device, self._dtype = device, dtype
        self.weight = Parameter(init.ones(self.dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(self.dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(self.dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(self.dim, device=device, dtype=dtype))

    def reset_parameters(self):
        self.weight.data = init.ones(self.dim, device=self._device, dtype=self._dtype)
        self.bias.data = init.zeros(self.dim, device=self._device, dtype=self._dtype)
        self.running_mean = init.zeros(self.dim, device=self._device, dtype=self._dtype)
        self.running_var = init.ones(self.dim, device=self._device, dtype=self._dtype)

    def forward(self, x):
        _check_2d("BatchNorm1d", x, self.dim)
        if self.training:
            op = Normalize(0, self.eps)
            normed = Tensor.make_from_op(op, (x,))
            normed.realize_cached_data()
            self.running_mean = _running(self.running_mean, op.stats[0], self.momentum)
            self.running_var = _running(self.running_var, op.stats[1], self.momentum)
        else:
            shape = (1, self.dim)
            centered = x - self.running_mean.reshape(shape).broadcast_to(x.shape)
            scale = (self.running_var + self.eps) ** 0.5
            normed = centered / scale.reshape(shape).broadcast_to(x.shape)
        return _affine(normed, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"


def _affine(normed, weight, bias):
    """weight * normed + bias, the (dim,) parameters broadcast over the rows."""
    shape, row = normed.shape, (1, normed.shape[1])
    return weight.reshape(row).broadcast_to(shape) * normed + bias.reshape(row).broadcast_to(shape)


def _running(estimate, batch_value, momentum):
    """(1 - momentum) * estimate + momentum * batch_value, a constant tensor (one kernel)."""
    data = estimate.realize_cached_data()
    return Tensor.make_const(data.axpby(1.0 - momentum, batch_value.astype(data.dtype), momentum))
