"""2-D max pooling over NHWC activations (kernel layer): the forward (each window's maximum, NaN if
one of its elements is NaN) and the input gradient as a gather (each input element sums what the
windows covering it send), one launch each, no atomics. Padding lies outside the input, never wins.
"""

import triton
import triton.language as tl

from .common import (
    cdiv,
    check_buffer,
    check_pixels,
    interpreting,
    next_power_of_2,
    pixel_coordinates,
)
from .launch import launch

# Channels per program on a GPU: a warp reads whole 128-byte lines of one pixel's channels.
MAX_BLOCK_C = 128
# Elements per program on a GPU (and its warps): enough loads in flight to hide memory latency.
TILE_ELEMENTS = 1024
TILE_WARPS = 4
INTERPRETER_BLOCK_P, INTERPRETER_BLOCK_C = 32, 16


def pool_blocks(c):
    """(BLOCK_P, BLOCK_C): pixels x channels of one program. Under the interpreter, whose cost is
    per operation and program, tiles small enough that test shapes span several of each."""
    if interpreting():
        return INTERPRETER_BLOCK_P, min(next_power_of_2(max(c, 1)), INTERPRETER_BLOCK_C)
    block_c = min(next_power_of_2(max(c, 1)), MAX_BLOCK_C)
    return TILE_ELEMENTS // block_c, block_c


@triton.jit
def _tile(pixels, c, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Program ids run over channel blocks fastest, so neighbouring programs share pixels' lines.
    # Pixel indices are int32 (common.PIXEL_LIMIT says why; check_pool_args keeps them in it).
    c_blocks = tl.cdiv(c, BLOCK_C)
    pid = tl.program_id(0)
    p = (pid // c_blocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    ch = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    return p, ch, p < pixels, ch < c


@triton.jit
def _tap(n_i, oh_i, ow_i, r, s, h, wd, c, ch, stride_h, stride_w, pad_h, pad_w):
    """(offsets [P, C], inside [P]): where tap (r, s) of output pixels (n_i, oh_i, ow_i) reads x,
    and whether that lies inside x (padding lies outside)."""
    ih = oh_i * stride_h - pad_h + r
    iw = ow_i * stride_w - pad_w + s
    inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < wd)
    return (((n_i * h + ih) * wd + iw).to(tl.int64) * c)[:, None] + ch[None, :], inside


@triton.jit
def _covering_window(j, jj, n_i, ih_i, iw_i, oh, ow, c, ch, kh, kw, stride_h, stride_w, pad_h,
                     pad_w):
    """(offsets [P, C], covers [P], oh_i, ow_i) of the (j, jj)-th window that may cover input
    elements (n_i, ih_i, iw_i), counting back from the last window starting at or before them:
    element row ih lies in window row oh_i at tap r = ih + pad_h - oh_i * stride_h when
    0 <= r < kh, so at most cdiv(kh, stride_h) window rows cover it (one without overlap)."""
    oh_i = (ih_i + pad_h) // stride_h - j
    ow_i = (iw_i + pad_w) // stride_w - jj
    covers = ((oh_i >= 0) & (oh_i < oh) & (ih_i + pad_h - oh_i * stride_h < kh)
              & (ow_i >= 0) & (ow_i < ow) & (iw_i + pad_w - ow_i * stride_w < kw))
    return ((((n_i * oh + oh_i) * ow + ow_i).to(tl.int64) * c)[:, None] + ch[None, :], covers,
            oh_i, ow_i)


@triton.jit
def _forward_kernel(x, out, n, h, wd, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    p, ch, p_ok, c_ok = _tile(n * oh * ow, c, BLOCK_P, BLOCK_C)
    n_i, oh_i, ow_i = pixel_coordinates(p, oh, ow)
    peak = tl.full([BLOCK_P, BLOCK_C], float("-inf"), tl.float32)
    # tl.maximum may return the non-NaN operand (fmaxf), so NaNs are tracked on the side.
    seen_nan = tl.zeros([BLOCK_P, BLOCK_C], tl.int1)
    for r in range(0, kh):
        for s in range(0, kw):
            offsets, inside = _tap(n_i, oh_i, ow_i, r, s, h, wd, c, ch, stride_h, stride_w,
                                   pad_h, pad_w)
            value = tl.load(x + offsets, mask=(p_ok & inside)[:, None] & c_ok[None, :],
                            other=float("-inf"))
            peak = tl.maximum(peak, value)
            seen_nan = seen_nan | (value != value)
    peak = tl.where(seen_nan, float("nan"), peak)
    tl.store(out + (p.to(tl.int64) * c)[:, None] + ch[None, :], peak,
             mask=p_ok[:, None] & c_ok[None, :])


@triton.jit
def _window_ties(x, peak, n_i, oh_i, ow_i, h, wd, c, ch, live, kh, kw, stride_h, stride_w,
                 pad_h, pad_w, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # How many elements of x that window (oh_i, ow_i) covers equal its peak.
    ties = tl.zeros([BLOCK_P, BLOCK_C], tl.int32)
    for r in range(0, kh):
        for s in range(0, kw):
            offsets, inside = _tap(n_i, oh_i, ow_i, r, s, h, wd, c, ch, stride_h, stride_w,
                                   pad_h, pad_w)
            covered = live & inside[:, None]
            value = tl.load(x + offsets, mask=covered, other=float("nan"))
            ties += (covered & (value == peak)).to(tl.int32)
    return ties


@triton.jit
def _backward_kernel(x, out, gy, gx, n, h, wd, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                     pad_w, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Windows are visited by increasing tap row r, then column tap, the order in which the spec
    # adds them, so the sums agree to the bit.
    p, ch, p_ok, c_ok = _tile(n * h * wd, c, BLOCK_P, BLOCK_C)
    n_i, ih_i, iw_i = pixel_coordinates(p, h, wd)
    ok = p_ok[:, None] & c_ok[None, :]
    own = tl.load(x + (p.to(tl.int64) * c)[:, None] + ch[None, :], mask=ok, other=0.0)
    grad = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for j in range(0, tl.cdiv(kh, stride_h)):
        for jj in range(0, tl.cdiv(kw, stride_w)):
            o, covers, oh_i, ow_i = _covering_window(j, jj, n_i, ih_i, iw_i, oh, ow, c, ch, kh,
                                                     kw, stride_h, stride_w, pad_h, pad_w)
            live = (p_ok & covers)[:, None] & c_ok[None, :]
            peak = tl.load(out + o, mask=live, other=0.0)
            g = tl.load(gy + o, mask=live, other=0.0)
            ties = _window_ties(x, peak, n_i, oh_i, ow_i, h, wd, c, ch, live, kh, kw, stride_h,
                                stride_w, pad_h, pad_w, BLOCK_P, BLOCK_C)
            # A window with no winner (a NaN maximum) sends NaN to every element it covers.
            # div_rn: the plain `/` compiles to an approximate division (div.full.f32).
            share = tl.where(own == peak, tl.div_rn(g, tl.maximum(ties, 1).to(tl.float32)),
                             0.0)
            sent = tl.where(ties == 0, float("nan"), share)
            grad += tl.where(live, sent, 0.0)
    tl.store(gx + (p.to(tl.int64) * c)[:, None] + ch[None, :], grad, mask=ok)


def check_pool_args(name, sizes):
    """Raise ValueError unless every size is an int (they become constexprs and loop bounds) and,
    with channels to pool, the pixel counts and padded extents are within common.PIXEL_LIMIT. The
    geometry (positive kernel and stride, padding, output size) is the caller's to check, as
    engine.backend.cuda_device does with the spec's rules; a wrong one still reads and writes
    only inside the checked buffers, since every access is masked."""
    names = ("n", "h", "w", "c", "kh", "kw", "oh", "ow", "stride_h", "stride_w", "pad_h", "pad_w")
    for key, value in zip(names, sizes, strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: {key} must be an int, got {value!r}")
    n, h, w_, c, _, _, oh, ow, _, _, pad_h, pad_w = sizes
    if c > 0:  # no channels: nothing is launched, and the spec takes any pixel count
        check_pixels(name, n, h, w_, oh, ow, pad_h, pad_w)


def _launch(kernel, pixels, c, args):
    block_p, block_c = pool_blocks(c)
    grid = (cdiv(pixels, block_p) * cdiv(c, block_c),)
    launch(kernel, grid, args, {"BLOCK_P": block_p, "BLOCK_C": block_c,
                                "num_warps": 1 if interpreting() else TILE_WARPS})


def max_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    """out (n, oh, ow, c) = the maximum of each window of x (n, h, w_, c)."""
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    check_pool_args("max_pool2d_forward", sizes)
    check_buffer("max_pool2d_forward x", x, n * h * w_ * c)
    check_buffer("max_pool2d_forward out", out, n * oh * ow * c)
    if n * oh * ow * c == 0:
        return
    _launch(_forward_kernel, n * oh * ow, c, (x, out, *sizes))


def max_pool2d_backward(x, out, gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                        pad_w):
    """gx (n, h, w_, c) = the gradient of the forward for the cotangent gy (n, oh, ow, c): each
    window sends gy / ties to the elements of x equal to its out, NaN to all when none is."""
    sizes = (n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
    check_pool_args("max_pool2d_backward", sizes)
    for label, handle, size in (("x", x, n * h * w_ * c), ("out", out, n * oh * ow * c),
                                ("gy", gy, n * oh * ow * c), ("gx", gx, n * h * w_ * c)):
        check_buffer(f"max_pool2d_backward {label}", handle, size)
    if n * h * w_ * c == 0:
        return
    _launch(_backward_kernel, n * h * w_, c, (x, out, gy, gx, *sizes))
