"""engine.nn: modules with needle's names and PyTorch's conventions. Engine layer (nn)."""

from .activation import ReLU, Sigmoid, Tanh
from .container import Flatten, Identity, Residual, Sequential
from .dropout import Dropout
from .linear import Linear
from .loss import SoftmaxLoss
from .module import Module, Parameter
from .norm import BatchNorm1d, LayerNorm1d

__all__ = ["BatchNorm1d", "Dropout", "Flatten", "Identity", "LayerNorm1d", "Linear", "Module",
           "Parameter", "ReLU", "Residual", "Sequential", "Sigmoid", "SoftmaxLoss", "Tanh"]
