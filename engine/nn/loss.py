"""`SoftmaxLoss`: mean cross-entropy of logits against integer labels. Engine layer (nn)."""

from .. import ops
from .module import Module


class SoftmaxLoss(Module):
    """mean_i( logsumexp(z_i) - z_i[y_i] ) for logits z (N, k) and labels y (N,): one fused op
    (ops.softmax_cross_entropy), so a step spends 3 kernels forward and 4 backward on it."""

    def forward(self, logits, y):
        if len(logits.shape) != 2:
            raise ValueError(f"SoftmaxLoss expects logits of shape (N, classes), got "
                             f"{tuple(logits.shape)}")
        return ops.summation(ops.softmax_cross_entropy(logits, y)) / logits.shape[0]
