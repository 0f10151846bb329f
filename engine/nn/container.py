"""Structural modules: Identity, Flatten, Sequential, Residual. Engine layer (nn)."""

from .. import ops
from .activation import ReLU
from .linear import Linear
from .module import Module


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def forward(self, x):
        if len(x.shape) < 1:
            raise ValueError("Flatten needs an input with a batch axis, got a 0-d tensor")
        width = 1
        for n in x.shape[1:]:
            width *= n
        return x.reshape((x.shape[0], width))


class Sequential(Module):
    """Applies its modules in order. They live in `layers` (needle calls this `modules`, which
    would hide Module.modules())."""

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, "
                                "not a Module")
        self.layers = list(modules)

    def forward(self, x):
        layers, i = self.layers, 0
        while i < len(layers):
            module = layers[i]
            if i + 1 < len(layers) and _runs_as_one_kernel(module, layers[i + 1], x):
                # A Linear and the ReLU after it: one kernel forward (ops.linear), and their
                # backward gates inside the product (ops.linalg.GatedMatMul).
                x = ops.linear(x, module.weight, module.bias, relu=True)
                i += 2
            else:
                x = module(x)
                i += 1
        return x

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)


def _runs_as_one_kernel(linear, activation, x):
    """Whether `linear(x)` then `activation` can run as relu(x @ W + b): plain classes with their
    own forward, a matrix input of the right width, and no hooks that would need to see the
    product."""
    return (type(linear) is Linear and type(activation) is ReLU
            and not linear._forward_hooks and not activation._forward_hooks
            and "forward" not in vars(linear) and "forward" not in vars(activation)
            and len(x.shape) == 2 and x.shape[1] == linear.in_features)


class Residual(Module):
    """x + fn(x)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)
