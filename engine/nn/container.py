"""Structural modules: Identity, Flatten, Sequential, Residual. Engine layer (nn)."""

from .activation import ReLU
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .norm import BatchNorm1d, LayerNorm1d
from .norm2d import BatchNorm2d


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
            if i + 1 < len(layers) and _takes_the_relu(module, layers[i + 1]):
                # A layer and the ReLU after it: one kernel forward, and a backward product of
                # the next layer may gate inside its own kernel (ops.linalg.GatedMatMul). A
                # Linear takes a training Dropout after them too, drawing its seed as it would.
                after = layers[i + 2] if i + 2 < len(layers) else None
                if type(module) is Linear and _dropping(after):
                    x = module.forward(x, relu=True, dropout=(after.p, after.draw_seed()))
                    i += 3
                else:
                    x = module.forward(x, relu=True)
                    i += 2
            else:
                x = module(x)
                i += 1
        return x

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)


# The layers whose forward(x, relu=True) runs the ReLU after them in their own kernel.
_TAKE_THE_RELU = (Linear, LayerNorm1d, BatchNorm1d, BatchNorm2d)


def _takes_the_relu(layer, activation):
    """Whether `layer` then `activation` can run as layer.forward(x, relu=True): plain classes
    with their own forward, and no hooks that would need to see the layer's output."""
    return (type(layer) in _TAKE_THE_RELU and type(activation) is ReLU
            and not layer._forward_hooks and not activation._forward_hooks
            and "forward" not in vars(layer) and "forward" not in vars(activation))


def _dropping(module):
    """Whether `module` is a plain Dropout that drops in this call, with no hooks to feed."""
    return (type(module) is Dropout and module.training and module.p > 0.0
            and not module._forward_hooks and "forward" not in vars(module))


class Residual(Module):
    """x + fn(x)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)
