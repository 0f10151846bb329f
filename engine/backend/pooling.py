"""Max and average pooling of an NHWC NDArray and their gradients, one device kernel each (the
protocol's max_pool2d and avg_pool2d pairs). Backend layer, beside ndarray.py; engine.ops.pooling
builds on it.
"""

import operator

from .ndarray import NDArray


def output_size(size, kernel, stride, padding):
    """Windows along one axis: (size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _sizes(name, x, kernel, stride, padding):
    """The protocol's size arguments for NHWC x, after checking the (h, w) pairs."""
    n, h, w, c = x.shape
    kernel, stride, padding = (tuple(operator.index(v) for v in pair)
                               for pair in (kernel, stride, padding))
    if (min(kernel + stride) < 1 or min(padding) < 0
            or any(2 * p > k for p, k in zip(padding, kernel))
            or any(size + 2 * p < k for size, p, k in zip((h, w), padding, kernel))):
        raise ValueError(f"{name}: kernel {kernel} and stride {stride} must be >= 1, padding "
                         f"{padding} between 0 and half the kernel, and the kernel no larger than "
                         f"the padded input (input shape {x.shape})")
    oh, ow = (output_size(h, kernel[0], stride[0], padding[0]),
              output_size(w, kernel[1], stride[1], padding[1]))
    return (n, h, w, c, kernel[0], kernel[1], oh, ow) + stride + padding


def _pooled_shape(sizes):
    return (sizes[0], sizes[6], sizes[7], sizes[3])


def _check(name, x, role):
    if not isinstance(x, NDArray):
        raise TypeError(f"{name} takes NDArrays, got {role} of type {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} works on NHWC arrays of rank 4, got {role} of shape "
                         f"{x.shape}")


def _check_cotangent(name, gy, pooled, device):
    _check(name, gy, "cotangent")
    if gy.shape != pooled or gy.device != device:
        raise ValueError(f"{name}'s gradient needs a cotangent like its output {pooled} (on "
                         f"{device}), got {gy.shape} (on {gy.device})")


def max_pool2d(x, kernel, stride, padding):
    """Each window's maximum over NHWC x, (n, oh, ow, c); kernel, stride and padding are (h, w)
    pairs, padding outside x (never the maximum)."""
    _check("max_pool2d", x, "input")
    x = x.compact()
    sizes = _sizes("max_pool2d", x, kernel, stride, padding)
    out = x._new(_pooled_shape(sizes))
    x.device.max_pool2d_forward(x.handle, out.handle, *sizes)
    return out


def max_pool2d_grad(x, out, gy, kernel, stride, padding):
    """x's gradient for the cotangent gy of `max_pool2d`'s `out`: each window's gy shared equally
    by the elements equal to its maximum."""
    _check("max_pool2d", x, "input")
    sizes = _sizes("max_pool2d", x, kernel, stride, padding)
    if out.shape != _pooled_shape(sizes):
        raise ValueError(f"max_pool2d's gradient: output {out.shape} does not match input "
                         f"{x.shape} pooled to {_pooled_shape(sizes)}")
    _check_cotangent("max_pool2d", gy, out.shape, out.device)
    x, out, gy = x.compact(), out.compact(), gy.astype(x.dtype).compact()
    gx = x._new(x.shape)
    x.device.max_pool2d_backward(x.handle, out.handle, gy.handle, gx.handle, *sizes)
    return gx


def avg_pool2d(x, kernel, stride, padding):
    """Each window's mean over NHWC x, (n, oh, ow, c), zero padding counting towards it."""
    _check("avg_pool2d", x, "input")
    x = x.compact()
    sizes = _sizes("avg_pool2d", x, kernel, stride, padding)
    out = x._new(_pooled_shape(sizes))
    x.device.avg_pool2d_forward(x.handle, out.handle, *sizes)
    return out


def avg_pool2d_grad(gy, input_shape, kernel, stride, padding):
    """The gradient of `avg_pool2d` on an input of `input_shape` for the cotangent gy: each window
    sends gy / (kh * kw) to every element it covers (linear in gy)."""
    probe = gy._like(tuple(input_shape), (0,) * len(input_shape), 0)  # shape and device only
    _check("avg_pool2d", probe, "input shape")
    sizes = _sizes("avg_pool2d", probe, kernel, stride, padding)
    _check_cotangent("avg_pool2d", gy, _pooled_shape(sizes), gy.device)
    gy = gy.compact()
    gx = gy._new(tuple(input_shape))
    gy.device.avg_pool2d_backward(gy.handle, gx.handle, *sizes)
    return gx
