"""Normalization layers over features of (N, dim) inputs: LayerNorm1d, BatchNorm1d.
Engine layer (nn). Training mode is one fused op (ops.normalize_affine: one kernel forward, one
or two backward); evaluation mode is x * scale + shift over rows. BatchNorm2d is in norm2d.py.
"""

import numpy as np

from .. import init, ops
from ..autograd import Tensor, grad_enabled
from ..backend import NDArray
from ..ops.normalization import NormalizeAffine
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

    def forward(self, x, relu=False):
        """With `relu`, the ReLU after the layer runs in its kernel (nn.Sequential asks)."""
        _check_2d("LayerNorm1d", x, self.dim)
        return ops.normalize_affine(x, self.weight, self.bias, 1, self.eps, relu=relu)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


class BatchNorm1d(Module):
    """Training: normalize with the batch's mean and biased variance (divide by N) and update the
    running estimates as in needle, r <- (1 - momentum) * r + momentum * batch_stat, where the
    running variance tracks the *biased* batch variance (PyTorch tracks the unbiased one). The
    estimates change in place, as PyTorch's buffers do: a Tensor that is `running_mean` sees it.
    Evaluation: normalize with the running estimates, so each example is independent of its batch.
    """

    def __init__(self, dim, eps=1e-5, momentum=0.1, device=None, dtype="float32"):
        super().__init__()
        self.dim = int(dim)
        self.eps = float(eps)
        self.momentum = float(momentum)
        # The name, so that comparing it with an array's dtype works for np.float32 too.
        self._device, self._dtype = device, np.dtype(dtype).name
        self.weight = Parameter(init.ones(self.dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(self.dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(self.dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(self.dim, device=device, dtype=dtype))

    def reset_parameters(self):
        self.weight.data = init.ones(self.dim, device=self._device, dtype=self._dtype)
        self.bias.data = init.zeros(self.dim, device=self._device, dtype=self._dtype)
        self.running_mean = init.zeros(self.dim, device=self._device, dtype=self._dtype)
        self.running_var = init.ones(self.dim, device=self._device, dtype=self._dtype)

    def forward(self, x, relu=False):
        """With `relu`, the ReLU after the layer runs in its training kernel (nn.Sequential
        asks)."""
        _check_2d("BatchNorm1d", x, self.dim)
        if self.training:
            if x.shape[0] == 0:
                raise ValueError(f"{type(self).__name__}({self.dim}) needs at least one example "
                                 f"in training mode (for its batch statistics), got an input of "
                                 f"shape {tuple(x.shape)}")
            rows = self._running_rows_array()
            if rows.dtype == x.dtype:
                # The running estimates move in the forward's own kernel, in place.
                op = NormalizeAffine(0, self.eps, rows, 1.0 - self.momentum, self.momentum,
                                     relu=relu)
                return Tensor.make_from_op(op, (x, self.weight, self.bias))
            op = NormalizeAffine(0, self.eps, relu=relu)
            out = Tensor.make_from_op(op, (x, self.weight, self.bias))
            self._update_running(rows, op.stats)
            return out
        # w (x - mean) / sqrt(var + eps) + b as x * scale + shift: the arithmetic on (dim,)
        # vectors, then two passes over x, each reading its row as stored.
        scale = self.weight * (self.running_var + self.eps) ** -0.5
        mean = self.running_mean
        if grad_enabled() and self.weight.requires_grad:
            # scale's gradient reads the mean when backward runs, and a training step in
            # between moves it in place: the graph keeps the value of this forward.
            mean = Tensor.make_const(mean.realize_cached_data().copy())
        shift = self.bias - mean * scale
        out = _affine(x, scale, shift)
        return ops.relu(out) if relu else out

    def _running_rows_array(self):
        """The running estimates as the rows of one (2, dim) array, like the batch's (mean, var)
        stats, so that one kernel updates both in place. running_mean and running_var are its
        row views for as long as nobody replaces them: an assignment or a load_state_dict does,
        and the next step stacks the new ones into a new array."""
        mean, var = self.running_mean.realize_cached_data(), self.running_var.realize_cached_data()
        rows, views = vars(self).get("_running_rows"), vars(self).get("_running_views", ())
        if len(views) != 2 or views[0] is not mean or views[1] is not var:
            rows = NDArray.make((2, self.dim), device=mean.device, dtype=self._dtype)
            rows[0], rows[1] = mean, var
            self._adopt_running(rows)
        return rows

    def _adopt_running(self, rows):
        self._running_rows, self._running_views = rows, (rows[0], rows[1])
        self.running_mean = Tensor.make_const(self._running_views[0])
        self.running_var = Tensor.make_const(self._running_views[1])

    def _update_running(self, rows, batch_stats):
        """rows <- (1 - momentum) * rows + momentum * the batch's stats, in place like the
        forward's kernel does it, for a batch in another dtype than the layer's."""
        rows[:, :] = rows.axpby(1.0 - self.momentum, batch_stats.astype(rows.dtype),
                                self.momentum)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"


def _affine(x, scale, shift):
    """x * scale + shift, the (dim,) vectors broadcast over the rows of x."""
    shape, row = x.shape, (1, x.shape[1])
    return x * scale.reshape(row).broadcast_to(shape) + shift.reshape(row).broadcast_to(shape)

