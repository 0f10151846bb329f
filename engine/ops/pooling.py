"""Max and average pooling over NHWC tensors, one device kernel each way (the protocol's
max_pool2d and avg_pool2d pairs). Engine ops layer. Max pooling's second derivative is built
from a sliding-window view plus the sum reduction; average pooling and its gradient are linear,
each other's adjoint, so they differentiate to any order.

Windows turns (n, H, W, c) into the view (n, oh, ow, c, kh, kw) (strides only, no copy); its
adjoint adds each window back onto its pixels with one strided add per kernel offset. The two are
each other's gradients, so pooling can be differentiated twice.
"""

from ..autograd import Tensor, TensorOp
from ..backend.pooling import avg_pool2d as avg_pool2d_array
from ..backend.pooling import avg_pool2d_grad, max_pool2d_grad
from ..backend.pooling import max_pool2d as max_pool2d_array
from .conv import int_pair, pad
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


def _pool_args(x, kernel_size, stride, padding, what):
    """(kernel, stride, padding) as checked (h, w) pairs for NHWC x."""
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
    return kernel, stride, padding


def _pool_windows(x, kernel, stride, padding, pad_value):
    if padding != (0, 0):
        x = pad(x, ((0, 0), (padding[0],) * 2, (padding[1],) * 2, (0, 0)), value=pad_value)
    return Windows(kernel, stride)(x)


class MaxPool(TensorOp):
    """NHWC x -> each window's maximum, in one kernel; padding never wins."""

    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def compute(self, x):
        return max_pool2d_array(x, self.kernel, self.stride, self.padding)

    def gradient(self, out_grad, node):
        return MaxPoolGrad(self, node.inputs[0].realize_cached_data(),
                           node.realize_cached_data())(out_grad)


class MaxPoolGrad(TensorOp):
    """gy -> x's gradient, each window's gy shared by the elements equal to its maximum, in one
    kernel. Linear in gy; its derivative with respect to x is 0 almost everywhere (the winners
    only change where x ties), so x is held as data, not as an input."""

    def __init__(self, forward, x, out):
        self.forward, self.x, self.out = forward, x, out

    def compute(self, gy):
        forward = self.forward
        return max_pool2d_grad(self.x, self.out, gy, forward.kernel, forward.stride,
                               forward.padding)

    def gradient(self, out_grad, node):
        # The adjoint of the sharing: each window gathers its winners' cotangents / ties, from
        # the sliding-window view. Padding is NaN, which equals nothing, so it never wins even
        # where the maximum is -inf; a NaN maximum has no winners, and 0 / 0 spreads NaN, as the
        # kernel does.
        forward = self.forward
        x = Tensor.make_const(self.x)
        peaks = _pool_windows(x, forward.kernel, forward.stride, forward.padding,
                              float("nan")).realize_cached_data()
        winners = peaks == self.out.reshape(self.out.shape + (1, 1)).broadcast_to(peaks.shape)
        ties = winners.sum(axis=(4, 5), keepdims=True).broadcast_to(peaks.shape)
        share = Tensor.make_const(winners / ties)
        windows = _pool_windows(out_grad, forward.kernel, forward.stride, forward.padding, 0.0)
        return summation(windows * share, axes=(4, 5))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over each window of NHWC `x`; `stride` defaults to the kernel; padding is outside
    x, so it never wins. Gradient goes to the maximum (shared equally among exact ties)."""
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool(kernel, stride, padding)(x)


class AvgPool(TensorOp):
    """NHWC x -> each window's mean (zero padding counts), in one kernel."""

    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def compute(self, x):
        return avg_pool2d_array(x, self.kernel, self.stride, self.padding)

    def gradient(self, out_grad, node):
        return AvgPoolGrad(self, node.inputs[0].shape)(out_grad)


class AvgPoolGrad(TensorOp):
    """gy -> x's gradient: each window's gy / (kh * kw) on every element it covers, in one
    kernel. The adjoint of AvgPool, which is in turn its gradient."""

    def __init__(self, forward, input_shape):
        self.forward, self.input_shape = forward, tuple(input_shape)

    def compute(self, gy):
        forward = self.forward
        return avg_pool2d_grad(gy, self.input_shape, forward.kernel, forward.stride,
                               forward.padding)

    def gradient(self, out_grad, node):
        return self.forward(out_grad)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each window of NHWC `x`; zero padding counts towards the mean (PyTorch's
    count_include_pad=True)."""
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool(kernel, stride, padding)(x)


__all__ = ["max_pool2d", "avg_pool2d"]
