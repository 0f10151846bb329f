"""The cpu device's pooling functions (backend layer): the protocol's max_pool2d and avg_pool2d
pairs, one C call each (kernels_c/pool.c, kernels_c/pool_avg.c). cpu_device.py exports them.
"""

import ctypes

from .cpu_handles import _fail, _lib, _ptr
from .numpy_pool import check_pool_sizes as _check_pool_sizes


def _explain(name, sizes, buffers):
    """Raise for sizes the spec refuses (its own messages), else naming the first of `buffers`
    ((label, handle, elements needed)) too small."""
    _check_pool_sizes(name, *sizes)
    n, h, w_, c, kh, kw, oh, ow = sizes[:8]
    for label, handle, needed in buffers:
        if needed > handle.size:
            raise ValueError(f"{name}: {label} needs {needed} elements for n={n}, h={h}, w={w_}, "
                             f"c={c}, oh={oh}, ow={ow}, its buffer has {handle.size}")


def _call(name, kernel, addresses, sizes):
    """The kernel's call; its nonzero status (sizes the checks above let through) as an error."""
    try:
        status = kernel(*addresses, *sizes)
    except ctypes.ArgumentError as error:
        raise TypeError(f"{name}: sizes must be integers, got {sizes}") from error
    if status:
        _check_pool_sizes(name, *sizes)
        raise _fail(name, status, sizes=sizes)


def _pool_forward(name):
    """The protocol's `name` (max_pool2d_forward or avg_pool2d_forward): out (n, oh, ow, c) from
    x (n, h, w_, c), one C call."""
    kernel = getattr(_lib, f"nd_{name}_f32")

    def pool_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
        try:
            px, pout = x.address, out.address
        except AttributeError:
            px, pout = _ptr(x), _ptr(out)
        sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
        # Invalid sizes reach the kernel only when these products fit: it refuses them before
        # any access, and _call explains.
        image, pooled = n * h * w_ * c, n * oh * ow * c
        if image > x.size or pooled > out.size:
            _explain(name, sizes, (("x", x, image), ("out", out, pooled)))
        _call(name, kernel, (px, pout), sizes)

    pool_forward.__name__ = name
    return pool_forward


max_pool2d_forward = _pool_forward("max_pool2d_forward")
avg_pool2d_forward = _pool_forward("avg_pool2d_forward")


def max_pool2d_backward(x, out, gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                        pad_w):
    try:
        px, pout, pgy, pgx = x.address, out.address, gy.address, gx.address
    except AttributeError:
        px, pout, pgy, pgx = _ptr(x), _ptr(out), _ptr(gy), _ptr(gx)
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    image, pooled = n * h * w_ * c, n * oh * ow * c
    if image > x.size or image > gx.size or pooled > out.size or pooled > gy.size:
        _explain("max_pool2d_backward", sizes, (("x", x, image), ("out", out, pooled),
                                                ("gy", gy, pooled), ("gx", gx, image)))
    _call("max_pool2d_backward", _lib.nd_max_pool2d_backward_f32, (px, pout, pgy, pgx), sizes)


def avg_pool2d_backward(gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    try:
        pgy, pgx = gy.address, gx.address
    except AttributeError:
        pgy, pgx = _ptr(gy), _ptr(gx)
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    image, pooled = n * h * w_ * c, n * oh * ow * c
    if pooled > gy.size or image > gx.size:
        _explain("avg_pool2d_backward", sizes, (("gy", gy, pooled), ("gx", gx, image)))
    _call("avg_pool2d_backward", _lib.nd_avg_pool2d_backward_f32, (pgy, pgx), sizes)
