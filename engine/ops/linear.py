"""A layer in one kernel: x @ weight, plus a bias row, through ReLU if asked (`ops.linear`), the
forward that nn.Linear runs and, with the ReLU after it, nn.Sequential. Engine ops layer.
"""

from ..autograd import Tensor, TensorOp
from ..backend import matmul as nd_matmul
from .elementwise import gated_once
from .linalg import product_gradients
from .shape import reshape


class Affine(TensorOp):
    """(x, weight[, bias]) -> x @ weight + bias, through ReLU with `relu`. The gradient of a ReLU
    layer gates with the output instead of the pre-activation, which is never stored: the same
    gate, since ReLU keeps a NaN and sends every other value <= 0 to 0. For the same reason a
    consumer's product can gate this layer's gradient in its own kernel (`gates_with_output`,
    read by ops.linalg)."""

    def __init__(self, relu):
        self.relu = relu
        self.gates_with_output = relu

    def compute(self, x, weight, bias=None):
        if bias is not None and bias.dtype != x.dtype:
            # Mixed dtypes (the result follows x): as the composed ops compute them.
            out = nd_matmul(x, weight)
            out = out + bias.broadcast_to(out.shape)
            return out.relu() if self.relu else out
        return nd_matmul(x, weight, bias=bias, relu=self.relu)

    def gradient(self, out_grad, node):
        if self.relu:
            out_grad = gated_once(out_grad, node.realize_cached_data())
        x, weight = node.inputs[0], node.inputs[1]
        grads = product_gradients(x, weight, out_grad)
        if len(node.inputs) == 2:
            return grads
        # What broadcasting the (1, n) bias over the rows gives back: the column sums.
        bias_grad = out_grad.sum((0,), keepdims=True) if node.inputs[2].requires_grad else None
        return (*grads, bias_grad)


_AFFINE = {relu: Affine(relu) for relu in (False, True)}


def linear(x, weight, bias=None, relu=False):
    """x (m, k) @ weight (k, n) + bias (1, n) or (n,) (or none), through ReLU with `relu`: one
    kernel forward, and the same values as the ops composed."""
    if bias is not None and len(weight.shape) == 2 and tuple(bias.shape) == (weight.shape[1],):
        bias = reshape(bias, (1, weight.shape[1]))
    shapes_fit = (len(x.shape) == 2 and len(weight.shape) == 2 and x.shape[1] == weight.shape[0]
                  and (bias is None or tuple(bias.shape) == (1, weight.shape[1])))
    if not shapes_fit:
        raise ValueError(f"linear needs x (m, k), weight (k, n) and bias (1, n) or none, got "
                         f"shapes {tuple(x.shape)}, {tuple(weight.shape)} and "
                         f"{None if bias is None else tuple(bias.shape)}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.make_from_op(_AFFINE[bool(relu)], inputs)
