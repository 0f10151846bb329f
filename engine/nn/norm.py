"""Normalization layers over features of (N, dim) inputs: LayerNorm1d, BatchNorm1d.
Engine layer (nn). BatchNorm2d comes with the convolution issue.
"""

from .. import init
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
        n = x.shape[0]
        mean = (x.sum(axes=(1,)) / self.dim).reshape((n, 1)).broadcast_to(x.shape)
        centered = x - mean
        var = ((centered ** 2).sum(axes=(1,)) / self.dim).reshape((n, 1)).broadcast_to(x.shape)
        normed = centered / (var + self.eps) ** 0.5
        return (self.weight.reshape((1, self.dim)).broadcast_to(x.shape) * normed
                + self.bias.reshape((1, self.dim)).broadcast_to(x.shape))

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
        n = x.shape[0]
        if self.training:
            mean = x.sum(axes=(0,)) / n
            centered = x - mean.reshape((1, self.dim)).broadcast_to(x.shape)
            var = (centered ** 2).sum(axes=(0,)) / n
            m = self.momentum
            self.running_mean = (self.running_mean * (1 - m) + mean.detach() * m).detach()
            self.running_var = (self.running_var * (1 - m) + var.detach() * m).detach()
        else:
            mean, var = self.running_mean, self.running_var
            centered = x - mean.reshape((1, self.dim)).broadcast_to(x.shape)
        scale = (var + self.eps) ** 0.5
        normed = centered / scale.reshape((1, self.dim)).broadcast_to(x.shape)
        return (self.weight.reshape((1, self.dim)).broadcast_to(x.shape) * normed
                + self.bias.reshape((1, self.dim)).broadcast_to(x.shape))

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"
