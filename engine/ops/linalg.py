"""Matrix multiplication (batched, batch dimensions broadcast) and its gradient.
Engine ops layer; transposed operands reach the kernel as strides, never as copies.
"""

from ..autograd import Tensor, TensorOp
from ..backend import matmul as nd_matmul
from .elementwise import ReLU, relu_gate
from .shape import reshape, transpose


def _reduce_to_shape(grad, shape):
    """Sum `grad` over the leading batch axes it has beyond `shape` (broadcast batch dims)."""
    if grad.shape == tuple(shape):
        return grad
    lead = len(grad.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return reshape(grad.sum(axes), shape)


_SWAP = (1, 0)


class MatMul(TensorOp):
    """a @ b. With `transpose_a` / `transpose_b` (rank-2 operands only) it is a.T @ b, a @ b.T or
    a.T @ b.T, the transposed operand read through its strides: the gradient of a rank-2 matmul
    is two such matmuls, with no transpose op (and no graph node) in between."""

    def __init__(self, transpose_a=False, transpose_b=False):
        self.transpose_a = transpose_a
        self.transpose_b = transpose_b

    def compute(self, a, b):
        return nd_matmul(*self._oriented(a, b))

    def _oriented(self, a, b):
        """The operands as multiplied: each transposed view taken where the op says."""
        return (a.permute(_SWAP) if self.transpose_a else a,
                b.permute(_SWAP) if self.transpose_b else b)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return product_gradients(a, b, out_grad, self.transpose_a, self.transpose_b)


def product_gradients(a, b, out_grad, ta=False, tb=False):
    """The gradients (for a, for b) of op_a(a) @ op_b(b) for the cotangent `out_grad`, op_x being
    the transpose where tx is set (rank-2 operands only then). An input that needs no gradient
    (a network's input batch) gets None: its matmul would be thrown away by the backward sweep."""
    need_a, need_b = a.requires_grad, b.requires_grad
    if ta or tb or (len(a.shape) == 2 and len(b.shape) == 2):
        # C = op_a(A) @ op_b(B): dop_a(A) = dC @ op_b(B).T, dop_b(B) = op_a(A).T @ dC,
        # transposed back where the op transposed its operand.
        grad_a = grad_b = None
        if need_a:
            gate = _relu_input(a, b if ta else out_grad)
            grad_a = _matmul(b, out_grad, tb, True, gate) if ta else \
                _matmul(out_grad, b, False, not tb, gate)
        if need_b:
            grad_b = _matmul(out_grad, a, True, ta) if tb else \
                _matmul(a, out_grad, not ta, False)
        return grad_a, grad_b
    grad_a = _reduce_to_shape(matmul(out_grad, transpose(b)), a.shape) if need_a else None
    grad_b = _reduce_to_shape(matmul(transpose(a), out_grad), b.shape) if need_b else None
    return grad_a, grad_b


class GatedMatMul(MatMul):
    """The gradient that reaches a ReLU's output through a product, gated by the ReLU's input
    `relu_gate` (an NDArray) in the product's own kernel: the ReLU's backward then finds its
    gradient already gated (elementwise.already_gated) and passes this on, one launch instead of
    two. Gating twice would give the same values, so a sum of such products still gets the
    ReLU's gate; only .grad of leaves is kept, and a ReLU's output is none. (A mask would not
    survive being applied twice: a layer's dropout stays with the layer, ops.linear.)"""

    def __init__(self, transpose_a, transpose_b, relu_gate):
        super().__init__(transpose_a, transpose_b)
        self.relu_gate = relu_gate

    def compute(self, a, b):
        return nd_matmul(*self._oriented(a, b), gate=self.relu_gate)

    def gradient(self, out_grad, node):
        return super().gradient(relu_gate(out_grad, self.relu_gate), node)


def _relu_input(tensor, first):
    """The gate that the gradient product for `tensor`, whose first operand is `first`, can apply
    in its own kernel, or None: the compact input of the ReLU that made `tensor` (rank 2), or
    `tensor` itself when a layer's kernel made it through ReLU (ops.linear's op marks itself
    `gates_with_output`). The kernel writes the first operand's dtype, which the gate must
    share."""
    op = tensor.op
    if isinstance(op, ReLU) and len(tensor.shape) == 2:
        x = tensor.inputs[0].realize_cached_data()
    elif getattr(op, "gates_with_output", False):
        x = tensor.realize_cached_data()
    else:
        return None
    return x if x.is_compact() and x.dtype == first.dtype else None


_MATMULS = {(ta, tb): MatMul(ta, tb) for ta in (False, True) for tb in (False, True)}


def _matmul(a, b, transpose_a, transpose_b, gate=None):
    if gate is not None:
        return Tensor.make_from_op(GatedMatMul(transpose_a, transpose_b, gate), (a, b))
    return Tensor.make_from_op(_MATMULS[transpose_a, transpose_b], (a, b))


def matmul(a, b):
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError(f"matmul needs operands of rank >= 2, got shapes {a.shape} and {b.shape}")
    return Tensor.make_from_op(_MATMULS[False, False], (a, b))
