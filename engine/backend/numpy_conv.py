"""The numpy specification of the device protocol's convolution functions (see protocol.py).
Backend layer; numpy_device re-exports these. NHWC activations, (KH, KW, C/groups, K) weights,
implicit zero padding; loops run over the KH x KW kernel taps only, never over pixels.
"""

import numpy as np


def _check(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
           groups):
    if groups < 1 or c % groups or k % groups:
        raise ValueError(f"conv2d: groups={groups} must divide input channels {c} and output "
                         f"channels {k}")
    if min(stride_h, stride_w, dil_h, dil_w) < 1 or min(pad_h, pad_w) < 0:
        raise ValueError(f"conv2d: stride {(stride_h, stride_w)} and dilation {(dil_h, dil_w)} "
                         f"must be >= 1, padding {(pad_h, pad_w)} >= 0")
    span_h = h + 2 * pad_h - dil_h * (kh - 1) - 1
    span_w = w_ + 2 * pad_w - dil_w * (kw - 1) - 1
    if span_h < 0 or span_w < 0:
        raise ValueError(f"conv2d: kernel {(kh, kw)} (dilation {(dil_h, dil_w)}) is larger than "
                         f"the padded input {(h + 2 * pad_h, w_ + 2 * pad_w)}")
    if (oh, ow) != (span_h // stride_h + 1, span_w // stride_w + 1):
        raise ValueError(f"conv2d: output size {(oh, ow)} does not match input {(h, w_)}, kernel "
                         f"{(kh, kw)}, stride {(stride_h, stride_w)}, padding {(pad_h, pad_w)}, "
                         f"dilation {(dil_h, dil_w)}")


def _tap(ky, kx, oh, ow, stride_h, stride_w, dil_h, dil_w):
    """The (rows, cols) slices of the padded input that kernel tap (ky, kx) reads."""
    rows = slice(ky * dil_h, ky * dil_h + stride_h * (oh - 1) + 1, stride_h)
    cols = slice(kx * dil_w, kx * dil_w + stride_w * (ow - 1) + 1, stride_w)
    return rows, cols


def conv2d_forward(x, w, out, n, h, w_, c, k, kh, kw, oh, ow,
                   stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    _check(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    xv = x[: n * h * w_ * c].reshape(n, h, w_, c)
    wv = w[: kh * kw * cg * k].reshape(kh, kw, cg, groups, kg)
    padded = np.pad(xv, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    y = np.zeros((n, oh, ow, groups, kg), dtype=out.dtype)
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = _tap(ky, kx, oh, ow, stride_h, stride_w, dil_h, dil_w)
            patch = padded[:, rows, cols, :].reshape(n, oh, ow, groups, cg)
            y += np.einsum("nhwgc,cgk->nhwgk", patch, wv[ky, kx])
    out[: y.size] = y.reshape(-1)


def conv2d_backward_input(gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow,
                          stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    _check(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    gyv = gy[: n * oh * ow * k].reshape(n, oh, ow, groups, kg)
    wv = w[: kh * kw * cg * k].reshape(kh, kw, cg, groups, kg)
    padded = np.zeros((n, h + 2 * pad_h, w_ + 2 * pad_w, c), dtype=gx.dtype)
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = _tap(ky, kx, oh, ow, stride_h, stride_w, dil_h, dil_w)
            # One tap's strided slice never revisits a pixel, so += on the view is exact.
            padded[:, rows, cols, :] += np.einsum("nhwgk,cgk->nhwgc", gyv, wv[ky, kx]).reshape(
                n, oh, ow, c)
    gx[: n * h * w_ * c] = padded[:, pad_h: pad_h + h, pad_w: pad_w + w_, :].reshape(-1)


def conv2d_backward_weight(x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow,
                           stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    _check(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    xv = x[: n * h * w_ * c].reshape(n, h, w_, c)
    gyv = gy[: n * oh * ow * k].reshape(n, oh, ow, groups, kg)
    padded = np.pad(xv, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    result = np.zeros((kh, kw, cg, groups, kg), dtype=gw.dtype)
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = _tap(ky, kx, oh, ow, stride_h, stride_w, dil_h, dil_w)
            patch = padded[:, rows, cols, :].reshape(n, oh, ow, groups, cg)
            result[ky, kx] = np.einsum("nhwgc,nhwgk->cgk", patch, gyv)
    gw[: result.size] = result.reshape(-1)
