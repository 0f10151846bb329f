"""A layer in one kernel: x @ weight, plus a bias row, through ReLU if asked (`ops.linear`), the
forward that nn.Linear runs and, with the ReLU after it, nn.Sequential. Engine ops layer.
"""

from ..autograd import Tensor, TensorOp
from ..backend import matmul as nd_matmul
from ..backend.dropout import dropout as dropout_array
from .dropout import dropout
from .elementwise import already_gated, relu_gate
from .linalg import product_gradients
from .shape import reshape


class Affine(TensorOp):
    """(x, weight[, bias]) -> x @ weight + bias, through ReLU with `relu`, then through dropout
    with `dropout` ((p, seed), the mask ops.dropout would draw over the compact result; ReLU and
    dropout commute, since dropout only scales by a positive number or zeroes). The gradient of a
    ReLU layer gates with the output instead of the pre-activation, which is never stored: the
    same gate, since ReLU keeps a NaN and sends every other value <= 0 to 0, and where dropout
    zeroed an element its gradient is 0 either way. For the same reason a consumer's product can
    gate this layer's gradient in its own kernel (`gates_with_output`, read by ops.linalg); the
    mask stays here."""

    def __init__(self, relu, dropout=None):
        self.relu, self.dropout = relu, dropout
        self.gates_with_output = relu

    def compute(self, x, weight, bias=None):
        if bias is not None and bias.dtype != x.dtype:
            # Mixed dtypes (the result follows x): as the composed ops compute them.
            out = nd_matmul(x, weight)
            out = out + bias.broadcast_to(out.shape)
            out = out.relu() if self.relu else out
            return dropout_array(out, *self.dropout) if self.dropout else out
        return nd_matmul(x, weight, bias=bias, relu=self.relu, dropout=self.dropout)

    def gradient(self, out_grad, node):
        output = node.realize_cached_data()
        gated = self.relu and already_gated(out_grad, output)
        if self.dropout:
            # Here, not in a consumer's product: with several consumers the mask would scale
            # each gated share again when the shares are summed.
            out_grad = dropout(out_grad, *self.dropout)
        if self.relu and not gated:
            out_grad = relu_gate(out_grad, output)
        x, weight = node.inputs[0], node.inputs[1]
        grads = product_gradients(x, weight, out_grad)
        if len(node.inputs) == 2:
            return grads
        # What broadcasting the (1, n) bias over the rows gives back: the column sums.
        bias_grad = out_grad.sum((0,), keepdims=True) if node.inputs[2].requires_grad else None
        return (*grads, bias_grad)


_AFFINE = {relu: Affine(relu) for relu in (False, True)}


def linear(x, weight, bias=None, relu=False, dropout=None):
    """x (m, k) @ weight (k, n) + bias (1, n) or (n,) (or none), through ReLU with `relu`, then
    through ops.dropout with `dropout` ((p, seed)): one kernel forward, and the same values as
    the ops composed."""
    if bias is not None and len(weight.shape) == 2 and tuple(bias.shape) == (weight.shape[1],):
        bias = reshape(bias, (1, weight.shape[1]))
    shapes_fit = (len(x.shape) == 2 and len(weight.shape) == 2 and x.shape[1] == weight.shape[0]
                  and (bias is None or tuple(bias.shape) == (1, weight.shape[1])))
    if not shapes_fit:
        raise ValueError(f"linear needs x (m, k), weight (k, n) and bias (1, n) or none, got "
                         f"shapes {tuple(x.shape)}, {tuple(weight.shape)} and "
                         f"{None if bias is None else tuple(bias.shape)}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    op = _AFFINE[bool(relu)] if dropout is None else Affine(bool(relu), tuple(dropout))
    return Tensor.make_from_op(op, inputs)
