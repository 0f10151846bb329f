"""The differentiable ops (needle's names): elementwise, reductions, shapes, matmul, and the
convolution family (conv, flip, dilate, pad, pooling). Engine ops layer.
"""

from functools import reduce

from .conv import conv, dilate, flip, pad, undilate
from .dropout import dropout
from .elementwise import (
    add,
    add_scalar,
    divide,
    divide_scalar,
    exp,
    log,
    mul_scalar,
    multiply,
    negate,
    power,
    power_scalar,
    rdivide_scalar,
    relu,
    sigmoid,
    subtract,
    tanh,
)
from .linalg import matmul
from .linear import linear
from .loss import softmax_cross_entropy
from .normalization import normalize, normalize_affine
from .pooling import avg_pool2d, max_pool2d
from .reduction import logsoftmax, logsumexp, max, mean, summation
from .shape import (
    broadcast_pair,
    broadcast_shape,
    broadcast_to,
    get_item,
    make_tuple,
    permute,
    reshape,
    split,
    stack,
    transpose,
    tuple_get_item,
)


def sum_tensors(tensors):
    """The sum of a list of gradient contributions (Tensors or TensorTuples)."""
    return reduce(lambda a, b: a + b, tensors)


__all__ = ["add", "add_scalar", "divide", "divide_scalar", "exp", "log", "mul_scalar", "multiply",
           "negate", "power", "power_scalar", "rdivide_scalar", "relu", "sigmoid", "subtract",
           "tanh", "matmul", "linear", "softmax_cross_entropy", "normalize",
           "normalize_affine", "dropout", "logsoftmax", "logsumexp", "max", "mean", "summation",
           "broadcast_pair", "broadcast_shape", "broadcast_to", "get_item", "make_tuple", "permute",
           "reshape", "split", "stack", "transpose", "tuple_get_item", "sum_tensors", "conv",
           "dilate", "flip", "pad", "undilate", "avg_pool2d", "max_pool2d"]
