"""engine.nn: modules with needle's names and PyTorch's conventions. Engine layer (nn)."""

from .activation import ReLU, Sigmoid, Tanh
from .container import Flatten, Identity, Residual, Sequential
from .conv import Conv
from .dropout import Dropout
from .linear import Linear
from .loss import SoftmaxLoss
from .module import Module, Parameter
from .norm import BatchNorm1d, LayerNorm1d
from .norm2d import BatchNorm2d
from .pooling import AvgPool2d, MaxPool2d

__all__ = ["AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv", "Dropout", "Flatten", "Identity",
           "LayerNorm1d", "Linear", "MaxPool2d", "Module", "Parameter", "ReLU", "Residual",
           "Sequential", "Sigmoid", "SoftmaxLoss", "Tanh"]
