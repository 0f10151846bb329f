"""Tensor constructors and weight initializations with needle's names, formulas and signatures,
plus the lectures' `normal_fan_in` (variance c / fan_in). Engine layer (above autograd). Every
random draw comes from engine.random.generator(), so one seed fixes them all.
"""

import math

import numpy as np

from . import random as _random
from .autograd import Tensor
from .backend import default_device

_GAINS = {"relu": math.sqrt(2.0), "linear": 1.0, "identity": 1.0, "tanh": 5.0 / 3.0,
          "sigmoid": 1.0}


def _tensor(host, device, dtype, requires_grad):
    return Tensor(host, device=device if device is not None else default_device(), dtype=dtype,
                  requires_grad=requires_grad)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return shape


def rand(*shape, low=0.0, high=1.0, device=None, dtype="float32", requires_grad=False):
    """Uniform on [low, high)."""
    host = _random.generator().random(_shape(shape)) * (high - low) + low
    return _tensor(host, device, dtype, requires_grad)


def randn(*shape, mean=0.0, std=1.0, device=None, dtype="float32", requires_grad=False):
    """Normal with the given mean and standard deviation."""
    host = _random.generator().standard_normal(_shape(shape)) * std + mean
    return _tensor(host, device, dtype, requires_grad)


def randb(*shape, p=0.5, device=None, dtype="float32", requires_grad=False):
    """1 with probability p, else 0 (needle's binary mask)."""
    host = (_random.generator().random(_shape(shape)) < p).astype(np.float64)
    return _tensor(host, device, dtype, requires_grad)


def constant(*shape, c=1.0, device=None, dtype="float32", requires_grad=False):
    return _tensor(np.full(_shape(shape), c, dtype=np.float64), device, dtype, requires_grad)


def ones(*shape, device=None, dtype="float32", requires_grad=False):
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, device=None, dtype="float32", requires_grad=False):
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def one_hot(n, i, device=None, dtype="float32", requires_grad=False):
    """Rows of the n x n identity selected by the integer labels `i`."""
    labels = np.asarray(i.numpy() if isinstance(i, Tensor) else i).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"one_hot: labels must lie in [0, {n}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    return _tensor(np.eye(n)[labels], device, dtype, requires_grad)


def zeros_like(array, *, device=None, requires_grad=False):
    return zeros(*array.shape, dtype=array.dtype, device=device or array.device,
                 requires_grad=requires_grad)


def ones_like(array, *, device=None, requires_grad=False):
    return ones(*array.shape, dtype=array.dtype, device=device or array.device,
                requires_grad=requires_grad)


def calculate_gain(nonlinearity):
    if nonlinearity not in _GAINS:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; choose one of {sorted(_GAINS)}")
    return _GAINS[nonlinearity]


def _fan_shape(fan_in, fan_out, shape):
    return (fan_in, fan_out) if shape is None else tuple(shape)


def xavier_uniform(fan_in, fan_out, gain=1.0, shape=None, **kwargs):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(*_fan_shape(fan_in, fan_out, shape), low=-a, high=a, **kwargs)


def xavier_normal(fan_in, fan_out, gain=1.0, shape=None, **kwargs):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(*_fan_shape(fan_in, fan_out, shape), std=std, **kwargs)


def kaiming_uniform(fan_in, fan_out, nonlinearity="relu", shape=None, **kwargs):
    """U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2) for relu."""
    bound = calculate_gain(nonlinearity) * math.sqrt(3.0 / fan_in)
    return rand(*_fan_shape(fan_in, fan_out, shape), low=-bound, high=bound, **kwargs)


def kaiming_normal(fan_in, fan_out, nonlinearity="relu", shape=None, **kwargs):
    """N(0, std^2) with std = gain / sqrt(fan_in), gain = sqrt(2) for relu."""
    std = calculate_gain(nonlinearity) / math.sqrt(fan_in)
    return randn(*_fan_shape(fan_in, fan_out, shape), std=std, **kwargs)


def normal_fan_in(fan_in, fan_out, c=1.0, shape=None, **kwargs):
    """The lectures' "normal" init: N(0, c / fan_in). c = 2 is Kaiming for ReLU; the init-variance
    experiments sweep c (1, 1.7, 2, 2.3, 3)."""
    if c < 0:
        raise ValueError(f"normal_fan_in: variance factor c must be >= 0, got {c}")
    return randn(*_fan_shape(fan_in, fan_out, shape), std=math.sqrt(c / fan_in), **kwargs)


normal = normal_fan_in
