"""Matrix multiplication (batched, batch dimensions broadcast) and its gradient.
Engine ops layer; transposed operands reach the kernel as strides, never as copies.
"""

from ..autograd import TensorOp
from ..backend import matmul as nd_matmul
from .shape import reshape, transpose


def _reduce_to_shape(grad, shape):
    """Sum `grad` over the leading batch axes it has beyond `shape` (broadcast batch dims)."""
    if grad.shape == tuple(shape):
        return grad
    lead = len(grad.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return reshape(grad.sum(axes), shape)


class MatMul(TensorOp):
    def compute(self, a, b):
        return nd_matmul(a, b)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = matmul(out_grad, transpose(b))
        grad_b = matmul(transpose(a), out_grad)
        return _reduce_to_shape(grad_a, a.shape), _reduce_to_shape(grad_b, b.shape)


def matmul(a, b):
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError(f"matmul needs operands of rank >= 2, got shapes {a.shape} and {b.shape}")
    return MatMul()(a, b)
