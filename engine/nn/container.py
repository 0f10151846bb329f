"""Structural modules: Identity, Flatten, Sequential, Residual. Engine layer (nn)."""

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
        for module in self.layers:
            x = module(x)
        return x

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)


class Residual(Module):
    """x + fn(x)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)
