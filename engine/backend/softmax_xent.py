"""Softmax cross-entropy on NDArrays: each row's loss and its gradient, one device kernel each
(the protocol's softmax_xent pair). Backend layer, beside ndarray.py; engine.ops builds on it.
Labels hold class indices as values of the logits' dtype; an invalid one gives a NaN row, so
callers check labels first.
"""

from .ndarray import NDArray


def softmax_xent(logits, labels):
    """loss[i] = logsumexp(logits[i]) - logits[i, labels[i]] for logits (rows, classes)."""
    z = _operand(logits, logits, "logits", 2)
    labels = _operand(labels, z, "labels", 1)
    out = z._new(z.shape[:1])
    z.device.softmax_xent(z.handle, labels.handle, out.handle, z.shape[1], z.shape[0])
    return out


def softmax_xent_grad(logits, labels, g):
    """g[i] * (softmax(logits[i]) - one_hot(labels[i])): the gradient of `softmax_xent` for the
    per-row cotangent g."""
    z = _operand(logits, logits, "logits", 2)
    # Mixed dtypes follow the first operand in the engine's arithmetic, so a float64 seed on a
    # float32 loss arrives here as a float64 cotangent.
    if isinstance(g, NDArray) and g.device == z.device:
        g = g.astype(z.dtype)
    labels, g = _operand(labels, z, "labels", 1), _operand(g, z, "cotangent", 1)
    out = z._new(z.shape)
    z.device.softmax_xent_grad(z.handle, labels.handle, g.handle, out.handle, z.shape[1],
                               z.shape[0])
    return out


def _operand(array, logits, role, ndim):
    """`array` compacted, once it is an NDArray of the right shape, device and dtype."""
    if not isinstance(array, NDArray) or not isinstance(logits, NDArray):
        raise TypeError(f"softmax cross-entropy takes NDArrays, got {role} of type "
                        f"{type(array).__name__}")
    if logits.ndim != 2 or array.ndim != ndim or array.shape[0] != logits.shape[0]:
        raise ValueError(f"softmax cross-entropy needs logits (rows, classes) and per-row labels "
                         f"and cotangent (rows,), got logits {logits.shape} and {role} "
                         f"{array.shape}")
    if array.device != logits.device or array.dtype != logits.dtype:
        raise ValueError(f"softmax cross-entropy {role} on {array.device} ({array.dtype}), "
                         f"logits on {logits.device} ({logits.dtype})")
    return array.compact()
