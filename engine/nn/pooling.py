"""`MaxPool2d` and `AvgPool2d` on NCHW tensors (PyTorch's names and defaults: stride = kernel).
Engine layer (nn); the work is engine.ops.pooling on an NHWC view of the input.
"""

from ..ops.pooling import avg_pool2d, max_pool2d
from .module import Module


class _Pool2d(Module):
    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        if len(x.shape) != 4:
            raise ValueError(f"{type(self).__name__} expects NCHW input of rank 4, got shape "
                             f"{tuple(x.shape)}")
        out = self._pool(x.permute((0, 2, 3, 1)), self.kernel_size, self.stride,
                         self.padding)
        return out.permute((0, 3, 1, 2))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum of each window; padding never wins (it is -inf)."""

    _pool = staticmethod(max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean of each window; zero padding counts towards the mean."""

    _pool = staticmethod(avg_pool2d)
