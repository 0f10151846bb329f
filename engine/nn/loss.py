"""`SoftmaxLoss`: mean cross-entropy of logits against integer labels. Engine layer (nn)."""

from .. import init, ops
from .module import Module


class SoftmaxLoss(Module):
    """mean_i( logsumexp(z_i) - z_i[y_i] ) for logits z (N, k) and labels y (N,)."""

    def forward(self, logits, y):
        if len(logits.shape) != 2:
            raise ValueError(f"SoftmaxLoss expects logits of shape (N, classes), got "
                             f"{tuple(logits.shape)}")
        n, classes = logits.shape
        if tuple(y.shape) != (n,):
            raise ValueError(f"SoftmaxLoss: labels of shape {tuple(y.shape)} do not match "
                             f"{n} logits rows")
        y_one_hot = init.one_hot(classes, y, device=logits.device, dtype=logits.dtype)
        true_logit = ops.summation(logits * y_one_hot, axes=(1,))
        return ops.summation(ops.logsumexp(logits, axes=(1,)) - true_logit) / n
