"""Elementwise ops: arithmetic with tensors and scalars, and unary math, each with its gradient.
Engine ops layer: `compute` runs on NDArrays, `gradient` is written in differentiable ops.
"""

from ..autograd import Tensor, TensorOp
from ..backend import write_stamps


class EWiseAdd(TensorOp):
    def compute(self, a, b):
        return a + b

    def gradient(self, out_grad, node):
        return out_grad, out_grad


class EWiseSub(TensorOp):
    # One kernel forward (a + (-1) * b, exact) where a + (-b) takes two.
    def compute(self, a, b):
        return a - b

    def gradient(self, out_grad, node):
        return out_grad, negate(out_grad)


class AddScalar(TensorOp):
    def __init__(self, scalar):
        self.scalar = scalar

    def compute(self, a):
        return a + self.scalar

    def gradient(self, out_grad, node):
        return out_grad


class EWiseMul(TensorOp):
    def compute(self, a, b):
        return a * b

    def gradient(self, out_grad, node):
        # No gradient for an input that needs none (a mask, a one-hot): the sweep would drop it.
        lhs, rhs = node.inputs
        return (multiply(out_grad, rhs) if lhs.requires_grad else None,
                multiply(out_grad, lhs) if rhs.requires_grad else None)


class MulScalar(TensorOp):
    def __init__(self, scalar):
        self.scalar = scalar

    def compute(self, a):
        return a * self.scalar

    def gradient(self, out_grad, node):
        return out_grad * self.scalar


class EWiseDiv(TensorOp):
    def compute(self, a, b):
        return a / b

    def gradient(self, out_grad, node):
        lhs, rhs = node.inputs
        return (out_grad / rhs if lhs.requires_grad else None,
                negate(out_grad * lhs / (rhs * rhs)) if rhs.requires_grad else None)


class DivScalar(TensorOp):
    def __init__(self, scalar):
        self.scalar = scalar

    def compute(self, a):
        return a / self.scalar

    def gradient(self, out_grad, node):
        return out_grad / self.scalar


class RDivScalar(TensorOp):
    """scalar / a"""

    def __init__(self, scalar):
        self.scalar = scalar

    def compute(self, a):
        return self.scalar / a

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        return negate(out_grad * self.scalar / (a * a))


class PowerScalar(TensorOp):
    """a ** scalar, for any real scalar."""

    def __init__(self, scalar):
        self.scalar = scalar

    def compute(self, a):
        return a ** self.scalar

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        if self.scalar == 0:
            return out_grad * 0.0
        return out_grad * power_scalar(a, self.scalar - 1) * self.scalar


class EWisePow(TensorOp):
    """a ** b elementwise (a > 0 where b is not an integer)."""

    def compute(self, a, b):
        return (b * a.log()).exp()

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return out_grad * b * power(a, b - 1.0), out_grad * node * log(a)


class Negate(TensorOp):
    def compute(self, a):
        return -a

    def gradient(self, out_grad, node):
        return negate(out_grad)


class Log(TensorOp):
    def compute(self, a):
        return a.log()

    def gradient(self, out_grad, node):
        return out_grad / node.inputs[0]


class Exp(TensorOp):
    def compute(self, a):
        return a.exp()

    def gradient(self, out_grad, node):
        return out_grad * node


class ReLU(TensorOp):
    def compute(self, a):
        return a.relu()

    def gradient(self, out_grad, node):
        return gated_once(out_grad, node.inputs[0].realize_cached_data())


class ReLUGate(TensorOp):
    """g -> 0 where x <= 0, else g, for a fixed input `x` (an NDArray): ReLU's gradient in one
    kernel. Linear in g, so its own gradient is the same gate; x is piecewise constant here and
    carries none."""

    def __init__(self, x):
        self.x = x

    def compute(self, g):
        return g.relu_grad(self.x)

    def gradient(self, out_grad, node):
        return _make(self, (out_grad,))


class Tanh(TensorOp):
    def compute(self, a):
        return a.tanh()

    def gradient(self, out_grad, node):
        return out_grad * add_scalar(negate(node * node), 1.0)


class Sigmoid(TensorOp):
    def compute(self, a):
        return a.sigmoid()

    def gradient(self, out_grad, node):
        return out_grad * node * add_scalar(negate(node), 1.0)


# Stateless ops are shared instances, and the functions below call make_from_op directly: one
# object and one Python call fewer per op.
_make = Tensor.make_from_op
_ADD, _SUBTRACT, _MULTIPLY, _DIVIDE = EWiseAdd(), EWiseSub(), EWiseMul(), EWiseDiv()
_POWER, _NEGATE, _LOG, _EXP = EWisePow(), Negate(), Log(), Exp()
_RELU, _TANH, _SIGMOID = ReLU(), Tanh(), Sigmoid()


def add(a, b):
    return _make(_ADD, (a, b))


def subtract(a, b):
    return _make(_SUBTRACT, (a, b))


def add_scalar(a, scalar):
    return _make(AddScalar(scalar), (a,))


def multiply(a, b):
    return _make(_MULTIPLY, (a, b))


def mul_scalar(a, scalar):
    return _make(MulScalar(scalar), (a,))


def divide(a, b):
    return _make(_DIVIDE, (a, b))


def divide_scalar(a, scalar):
    return _make(DivScalar(scalar), (a,))


def rdivide_scalar(a, scalar):
    return _make(RDivScalar(scalar), (a,))


def power_scalar(a, scalar):
    return _make(PowerScalar(scalar), (a,))


def power(a, b):
    return _make(_POWER, (a, b))


def negate(a):
    return _make(_NEGATE, (a,))


def log(a):
    return _make(_LOG, (a,))


def exp(a):
    return _make(_EXP, (a,))


def relu(a):
    return _make(_RELU, (a,))


def relu_gate(g, x):
    """g where the NDArray x > 0 (or is NaN), else 0: ReLU's gradient at input x."""
    return _make(ReLUGate(x), (g,))


def already_gated(g, x):
    """Whether a product's kernel gated g with the NDArray x already (linalg.GatedMatMul) and x
    was not written since (a gradient kept from an earlier backward and used as a new seed)."""
    return (getattr(g.op, "relu_gate", None) is x
            and not write_stamps.written_after(x.handle, g.generation))


def gated_once(g, x):
    """relu_gate(g, x), or g itself when it is already_gated."""
    return g if already_gated(g, x) else relu_gate(g, x)


def tanh(a):
    return _make(_TANH, (a,))


def sigmoid(a):
    return _make(_SIGMOID, (a,))
