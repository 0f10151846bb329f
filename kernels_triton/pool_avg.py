"""2-D average pooling over NHWC activations (kernel layer): the forward (each window's sum divided
by kh * kw, padding counting as zeros) and the input gradient as a gather (each input element sums
gy / (kh * kw) over the windows covering it), one launch each, no atomics. Tiles as in pool.py.
"""

import triton
import triton.language as tl

from .common import check_buffer, pixel_coordinates
from .pool import _covering_window, _launch, _tap, _tile, check_pool_args


@triton.jit
def _window_area(kh, kw):
    # kh * kw as float32 (exact: < 2**24); a launch may pass either size as the constant 1.
    return tl.full([], 0.0, tl.float32) + kh * kw


@triton.jit
def _avg_forward_kernel(x, out, n, h, wd, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Taps are added row by row from a zero sum, padding as zeros, then divided once: the spec's
    # order and rounding, so the results agree to the bit.
    p, ch, p_ok, c_ok = _tile(n * oh * ow, c, BLOCK_P, BLOCK_C)
    n_i, oh_i, ow_i = pixel_coordinates(p, oh, ow)
    total = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for r in range(0, kh):
        for s in range(0, kw):
            offsets, inside = _tap(n_i, oh_i, ow_i, r, s, h, wd, c, ch, stride_h, stride_w,
                                   pad_h, pad_w)
            total += tl.load(x + offsets, mask=(p_ok & inside)[:, None] & c_ok[None, :],
                             other=0.0)
    # div_rn: the plain `/` compiles to an approximate division (div.full.f32).
    tl.store(out + (p.to(tl.int64) * c)[:, None] + ch[None, :],
             tl.div_rn(total, _window_area(kh, kw)),
             mask=p_ok[:, None] & c_ok[None, :])


@triton.jit
def _avg_backward_kernel(gy, gx, n, h, wd, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # As pool._backward_kernel: the covering windows in the spec's order. A window that does
    # not cover the element adds +0, which leaves the sum as it is.
    p, ch, p_ok, c_ok = _tile(n * h * wd, c, BLOCK_P, BLOCK_C)
    n_i, ih_i, iw_i = pixel_coordinates(p, h, wd)
    area = _window_area(kh, kw)
    grad = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for j in range(0, tl.cdiv(kh, stride_h)):
        for jj in range(0, tl.cdiv(kw, stride_w)):
            o, covers, _, _ = _covering_window(j, jj, n_i, ih_i, iw_i, oh, ow, c, ch, kh, kw,
                                               stride_h, stride_w, pad_h, pad_w)
            g = tl.load(gy + o, mask=(p_ok & covers)[:, None] & c_ok[None, :], other=0.0)
            grad += tl.div_rn(g, area)
    tl.store(gx + (p.to(tl.int64) * c)[:, None] + ch[None, :], grad,
             mask=p_ok[:, None] & c_ok[None, :])


def avg_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    """out (n, oh, ow, c) = the sum of each window of x (n, h, w_, c), padding as zeros, divided
    by kh * kw."""
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    check_pool_args("avg_pool2d_forward", sizes)
    check_buffer("avg_pool2d_forward x", x, n * h * w_ * c)
    check_buffer("avg_pool2d_forward out", out, n * oh * ow * c)
    if n * oh * ow * c == 0:
        return
    _launch(_avg_forward_kernel, n * oh * ow, c, (x, out, *sizes))


def avg_pool2d_backward(gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    """gx (n, h, w_, c) = the gradient of the forward for the cotangent gy (n, oh, ow, c): each
    window sends gy / (kh * kw) to every element of x it covers."""
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    check_pool_args("avg_pool2d_backward", sizes)
    check_buffer("avg_pool2d_backward gy", gy, n * oh * ow * c)
    check_buffer("avg_pool2d_backward gx", gx, n * h * w_ * c)
    if n * h * w_ * c == 0:
        return
    _launch(_avg_backward_kernel, n * h * w_, c, (gy, gx, *sizes))

