"""Softmax cross-entropy as one op: each row's loss logsumexp(z_i) - z_i[y_i] in one kernel and its
gradient g_i * (softmax(z_i) - one_hot(y_i)) in one more, where the composed formula took about
20 launches a step. Engine ops layer; labels are checked on the host before any kernel runs.
"""

import numpy as np

from ..autograd import Tensor, TensorOp
from ..backend import NDArray, full
from ..backend.softmax_xent import softmax_xent, softmax_xent_grad
from .elementwise import exp
from .reduction import logsoftmax, summation
from .shape import broadcast_to, reshape


class SoftmaxCrossEntropy(TensorOp):
    """Per-row losses (rows,) of logits (rows, classes) for fixed labels (an NDArray of class
    indices, checked by `softmax_cross_entropy`): labels carry no gradient."""

    def __init__(self, labels):
        self.labels = labels

    def compute(self, z):
        return softmax_xent(z, self.labels)

    def gradient(self, out_grad, node):
        return SoftmaxCrossEntropyGrad(self.labels)(node.inputs[0], out_grad)


class SoftmaxCrossEntropyGrad(TensorOp):
    """(z, g) -> g_i * (softmax(z_i) - one_hot(y_i)), one kernel. Differentiable in turn (for
    Hessian-vector products) through composed ops, which are rare enough not to need fusing."""

    def __init__(self, labels):
        self.labels = labels

    def compute(self, z, g):
        return softmax_xent_grad(z, self.labels, g)

    def gradient(self, out_grad, node):
        z, g = node.inputs
        rows, classes = z.shape
        ones = Tensor.make_const(full((rows,), 1.0, dtype=z.dtype, device=z.device))
        residual = SoftmaxCrossEntropyGrad(self.labels)(z, ones)  # softmax - one_hot
        softmax = exp(logsoftmax(z))
        # d/dz_ik sum_j v_ij g_i p_ij = g_i p_ik (v_ik - sum_j v_ij p_ij)
        projected = summation(out_grad * softmax, axes=(1,), keepdims=True)
        grad_z = (broadcast_to(reshape(g, (rows, 1)), z.shape) * softmax
                  * (out_grad - broadcast_to(projected, z.shape)))
        return grad_z, summation(out_grad * residual, axes=(1,))


def softmax_cross_entropy(logits, labels):
    """Each row's softmax cross-entropy, a Tensor (rows,), for logits (rows, classes) and integer
    class labels (rows,): a Tensor, an NDArray, a numpy array or a list. Out-of-range, fractional
    or non-finite labels raise ValueError (reading device labels costs one transfer to the host)."""
    if len(logits.shape) != 2:
        raise ValueError(f"softmax cross-entropy expects logits of shape (rows, classes), got "
                         f"{tuple(logits.shape)}")
    return SoftmaxCrossEntropy(_checked_labels(labels, logits))(logits)


def _checked_labels(labels, logits):
    """The labels as an NDArray on the logits' device and dtype, after checking their values."""
    rows, classes = logits.shape
    array = labels.realize_cached_data() if isinstance(labels, Tensor) else labels
    host = array.numpy() if isinstance(array, NDArray) else np.asarray(array)
    if host.shape != (rows,):
        raise ValueError(f"softmax cross-entropy: labels of shape {host.shape} do not match "
                         f"{rows} logits rows")
    if not (np.issubdtype(host.dtype, np.integer) or np.issubdtype(host.dtype, np.floating)):
        raise ValueError(f"softmax cross-entropy: labels must be numbers, got dtype {host.dtype}")
    if rows:
        bad = ~np.isfinite(host) | (host != np.floor(host)) | (host < 0) | (host >= classes)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"softmax cross-entropy: labels must be integers in [0, {classes}), "
                             f"got {host[first].item()!r} at row {first} "
                             f"({int(bad.sum())} bad in all)")
    cast = host.astype(logits.dtype)
    if not np.array_equal(cast, host):
        raise ValueError(f"softmax cross-entropy: labels up to {host.max()} are not exact in "
                         f"{logits.dtype}")
    if (isinstance(array, NDArray) and array.device == logits.device
            and np.dtype(array.dtype) == cast.dtype):
        return array
    return NDArray(cast, device=logits.device, dtype=logits.dtype)
