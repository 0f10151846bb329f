"""The numpy specification of the device protocol's pooling functions (see protocol.py): max
pooling and average pooling, each forward and backward. Backend layer; numpy_device re-exports
these. NHWC activations; for max pooling padding is outside the input and never wins, for
average pooling it counts as zeros; loops run over the KH x KW window taps only, never over pixels.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


def check_pool_sizes(name, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    """Raise ValueError naming what is wrong unless the sizes describe a valid max pooling (the
    cpu and cuda devices run the same checks)."""
    if min(n, h, w_, c, oh, ow) < 0:
        raise ValueError(f"{name}: negative size in n={n}, h={h}, w={w_}, c={c}, oh={oh}, "
                         f"ow={ow}")
    if min(kh, kw, stride_h, stride_w) < 1 or min(pad_h, pad_w) < 0:
        raise ValueError(f"{name}: kernel {(kh, kw)} and stride {(stride_h, stride_w)} must be "
                         f">= 1, padding {(pad_h, pad_w)} >= 0")
    if 2 * pad_h > kh or 2 * pad_w > kw:
        raise ValueError(f"{name}: padding {(pad_h, pad_w)} must be at most half the kernel "
                         f"{(kh, kw)}")
    span_h, span_w = h + 2 * pad_h - kh, w_ + 2 * pad_w - kw
    if span_h < 0 or span_w < 0 or (oh, ow) != (span_h // stride_h + 1, span_w // stride_w + 1):
        raise ValueError(f"{name}: output size {(oh, ow)} does not match input {(h, w_)}, kernel "
                         f"{(kh, kw)}, stride {(stride_h, stride_w)}, padding {(pad_h, pad_w)}")


def _padded(values, pad_h, pad_w, fill):
    n, h, w_, c = values.shape
    out = np.full((n, h + 2 * pad_h, w_ + 2 * pad_w, c), fill, dtype=values.dtype)
    out[:, pad_h: pad_h + h, pad_w: pad_w + w_] = values
    return out


def _windows(padded, oh, ow, kh, kw, stride_h, stride_w):
    """The (n, oh, ow, c, kh, kw) view of every window of a padded (n, H, W, c) array."""
    s_n, s_h, s_w, s_c = padded.strides
    n, _, _, c = padded.shape
    return as_strided(padded, (n, oh, ow, c, kh, kw),
                      (s_n, s_h * stride_h, s_w * stride_w, s_c, s_h, s_w), writeable=False)


def max_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("max_pool2d_forward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                     pad_w)
    if n * oh * ow * c == 0:
        return
    values = _padded(x[: n * h * w_ * c].reshape(n, h, w_, c), pad_h, pad_w, -np.inf)
    out[: n * oh * ow * c] = _windows(values, oh, ow, kh, kw, stride_h, stride_w).max(
        axis=(4, 5)).reshape(-1)


def max_pool2d_backward(x, out, gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                        pad_w):
    check_pool_sizes("max_pool2d_backward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    if n * h * w_ * c == 0:
        return
    dtype = gx.dtype.type
    values = _padded(x[: n * h * w_ * c].reshape(n, h, w_, c), pad_h, pad_w, -np.inf)
    inside = _padded(np.ones((1, h, w_, 1), bool), pad_h, pad_w, False)
    window_values = _windows(values, oh, ow, kh, kw, stride_h, stride_w)
    window_inside = _windows(inside, oh, ow, kh, kw, stride_h, stride_w)
    peak = out[: n * oh * ow * c].reshape(n, oh, ow, c, 1, 1)
    winners = (window_values == peak) & window_inside
    ties = winners.sum(axis=(4, 5))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = gy[: n * oh * ow * c].reshape(n, oh, ow, c) / ties.astype(gx.dtype)
    # A window without a winner (its maximum is NaN) sends NaN to every element it covers.
    share = np.where(ties > 0, share, dtype(np.nan))[..., None, None]
    sent = np.where(winners | (window_inside & (ties == 0)[..., None, None]), share, dtype(0))
    grad = np.zeros(values.shape, gx.dtype)
    for r in range(kh):
        for s in range(kw):
            rows = slice(r, r + stride_h * (oh - 1) + 1, stride_h)
            cols = slice(s, s + stride_w * (ow - 1) + 1, stride_w)
            grad[:, rows, cols] += sent[..., r, s]
    gx[: n * h * w_ * c] = grad[:, pad_h: pad_h + h, pad_w: pad_w + w_].reshape(-1)


def avg_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("avg_pool2d_forward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    if n * oh * ow * c == 0:
        return
    values = _padded(x[: n * h * w_ * c].reshape(n, h, w_, c), pad_h, pad_w, 0)
    total = np.zeros((n, oh, ow, c), x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # IEEE results (inf - inf is NaN), quietly
        for r in range(kh):
            for s in range(kw):
                total += values[:, r: r + stride_h * (oh - 1) + 1: stride_h,
                                s: s + stride_w * (ow - 1) + 1: stride_w]
        out[: n * oh * ow * c] = (total / x.dtype.type(kh * kw)).reshape(-1)


def avg_pool2d_backward(gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("avg_pool2d_backward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    if n * h * w_ * c == 0:
        return
    share = gy[: n * oh * ow * c].reshape(n, oh, ow, c) / gx.dtype.type(kh * kw)
    grad = np.zeros((n, h + 2 * pad_h, w_ + 2 * pad_w, c), gx.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for r in range(kh):
            for s in range(kw):
                grad[:, r: r + stride_h * (oh - 1) + 1: stride_h,
                     s: s + stride_w * (ow - 1) + 1: stride_w] += share
    gx[: n * h * w_ * c] = grad[:, pad_h: pad_h + h, pad_w: pad_w + w_].reshape(-1)
