"""Dropout as one op: x * mask / (1 - p) with the mask drawn on the device from a seed, one kernel
each way (the backward pass redraws the mask instead of keeping it). Engine ops layer.
"""

from ..autograd import Tensor, TensorOp
from ..backend.dropout import dropout as dropout_array


class Dropout(TensorOp):
    """x -> x * mask(seed) / (1 - p). Linear in x, so its gradient is the same op: the same seed
    draws the same mask."""

    def __init__(self, p, seed):
        self.p, self.seed = float(p), seed

    def compute(self, x):
        return dropout_array(x, self.p, self.seed)

    def gradient(self, out_grad, node):
        return Dropout(self.p, self.seed)(out_grad)


def dropout(x, p, seed):
    """x with each element kept with probability 1 - p and scaled by 1 / (1 - p), the others 0;
    the mask depends only on `seed` (in [0, 2^32)) and the element's position, on every device."""
    return Tensor.make_from_op(Dropout(p, seed), (x,))
