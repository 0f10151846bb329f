"""Elementwise nonlinearities as modules: ReLU, Tanh, Sigmoid. Engine layer (nn).
`is_activation` marks them for the probes (output "after the nonlinearity").
"""

from .. import ops
from .module import Module


class ReLU(Module):
    is_activation = True

    def forward(self, x):
        return ops.relu(x)


class Tanh(Module):
    is_activation = True

    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    is_activation = True

    def forward(self, x):
        return ops.sigmoid(x)
