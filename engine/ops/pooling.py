"""Max and average pooling over NHWC tensors, built from a sliding-window view plus the existing
max/sum reductions, so no device needs a pooling kernel. Engine ops layer.

Windows turns (n, H, W, c) into the view (n, oh, ow, c, kh, kw) (strides only, no copy); its
adjoint adds each window back onto its pixels with one strided add per kernel offset. The two are
each other's gradients, so pooling can be differentiated twice.
"""

from ..autograd import TensorOp
from .conv import int_pair, pad
from .reduction import max as reduce_max
from .reduction import summation


def _windows_shape(shape, kernel, stride):
    n, h, w, c = shape
    return (n, (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1, c) + kernel


class Windows(TensorOp):
    """(n, H, W, c) -> (n, oh, ow, c, kh, kw): every kh x kw window, `stride` apart (a view)."""

    def __init__(self, kernel, stride):
        self.kernel = kernel
        self.stride = stride

    def compute(self, a):
        s_n, s_h, s_w, s_c = a.strides
        return a.as_strided(_windows_shape(a.shape, self.kernel, self.stride),
                            (s_n, s_h * self.stride[0], s_w * self.stride[1], s_c, s_h, s_w))

    def gradient(self, out_grad, node):
        return WindowsAdjoint(self.kernel, self.stride, node.inputs[0].shape)(out_grad)


class WindowsAdjoint(TensorOp):
    """(n, oh, ow, c, kh, kw) -> (n, H, W, c): each window element added onto the pixel it views
    (overlapping windows accumulate); pixels no window covers get 0."""

    def __init__(self, kernel, stride, input_shape):
        self.kernel = kernel
        self.stride = stride
        self.input_shape = tuple(input_shape)

    def compute(self, g):
        out = g.device.full(self.input_shape, 0.0, g.dtype)
        _, oh, ow, _, kh, kw = g.shape
        sh, sw = self.stride
        for r in range(kh):
            for s in range(kw):
                pixels = (slice(None), slice(r, r + sh * (oh - 1) + 1, sh),
                          slice(s, s + sw * (ow - 1) + 1, sw), slice(None))
                out[pixels] = out[pixels] + g[:, :, :, :, r, s]
        return out

    def gradient(self, out_grad, node):
        return Windows(self.kernel, self.stride)(out_grad)


def _pool_windows(x, kernel_size, stride, padding, pad_value, what):
    if len(x.shape) != 4:
        raise ValueError(f"{what}: input must be NHWC of rank 4, got shape {tuple(x.shape)}")
    kernel = int_pair(kernel_size, "kernel_size", 1, what)
    stride = kernel if stride is None else int_pair(stride, "stride", 1, what)
    padding = int_pair(padding, "padding", 0, what)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{what}: padding {padding} must be at most half the kernel {kernel}")
    padded = (x.shape[1] + 2 * padding[0], x.shape[2] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{what}: kernel {kernel} is larger than the padded input "
                         f"{padded[0]}x{padded[1]} (input shape {tuple(x.shape)}, padding "
                         f"{padding})")
    if padding != (0, 0):
        x = pad(x, ((0, 0), (padding[0],) * 2, (padding[1],) * 2, (0, 0)), value=pad_value)
    return Windows(kernel, stride)(x), kernel


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over each window of NHWC `x`; `stride` defaults to the kernel; padding is -inf, so
    it never wins. Gradient goes to the maximum (shared equally among exact ties)."""
    windows, _ = _pool_windows(x, kernel_size, stride, padding, float("-inf"), "max_pool2d")
    return reduce_max(windows, axes=(4, 5))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each window of NHWC `x`; zero padding counts towards the mean (PyTorch's
    count_include_pad=True)."""
    windows, kernel = _pool_windows(x, kernel_size, stride, padding, 0.0, "avg_pool2d")
    return summation(windows, axes=(4, 5)) / (kernel[0] * kernel[1])


__all__ = ["max_pool2d", "avg_pool2d"]
