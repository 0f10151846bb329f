"""2-D convolution as implicit GEMM (kernel layer): forward, input gradient and weight gradient over
NHWC activations and (KH, KW, C/groups, K) weights, with stride, zero padding, dilation and groups.
No im2col buffer: every tile of the virtual patch matrix is gathered straight from the activations
with masks for the padding. Autotune configurations come from `conv_configs`. For TF32 tensor cores
the caller may pass K-major copies instead: weights as (K, KH, KW, C/groups) to the forward, and
channel-major (C, N, H, W) / (K, N, OH, OW) activations to the weight gradient; for FMA (IEEE) the
input gradient may take weights as (KH, KW, K, C/groups), N-major for its product.
"""

import functools

import triton
import triton.language as tl

from .common import (
    AUTOTUNE_CACHE,
    INT32_LIMIT,
    cdiv,
    check_buffer,
    check_pixels,
    grouped_tile,
    interpreting,
    pixel_coordinates,
)
from .compile_ahead import autotune
from .launch import launch
from .matmul import PRECISIONS

CONV_KINDS = ("forward", "input", "weight")


def _config(bm, bn, bk, group, warps, stages):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group},
                         num_warps=warps, num_stages=stages)


@functools.cache
def conv_configs(kind, precision):
    """Autotune candidates of one pass: one small tile under the interpreter, several on a GPU.
    BLOCK_K is the reduction tile (input channels, output channels, or pixels for "weight"). Built
    once and shared (not to be changed): small problems take the first on every launch."""
    if interpreting():
        return [_config(16, 16, 16, 1, 1, 1)]
    if kind == "weight":
        configs = [_config(64, 64, 64, 1, 4, 3), _config(64, 64, 128, 1, 4, 3),
                   _config(128, 64, 64, 1, 8, 3), _config(32, 64, 128, 1, 4, 4)]
        if precision == "ieee":
            # The IEEE matmul's best tile on an H100 (bench/results/gpu_check_h100.txt): less
            # shared memory than the others, so more of the short slice programs share a
            # multiprocessor, and more steps per slice for the pipeline.
            configs.append(_config(64, 64, 32, 1, 4, 4))
        return configs
    if precision == "ieee":
        return [_config(64, 64, 32, 8, 4, 3), _config(128, 64, 16, 8, 8, 3),
                _config(64, 64, 16, 8, 4, 4), _config(32, 64, 32, 8, 4, 4)]
    return [_config(128, 64, 32, 8, 4, 3), _config(64, 64, 32, 8, 4, 4),
            _config(128, 64, 64, 8, 8, 3), _config(32, 64, 32, 8, 4, 4)]


@triton.jit
def _pixel_rows(pid_m, pixels, height, width, BLOCK_M: tl.constexpr):
    # The rows of a per-pixel GEMM tile and each row's (image, y, x), in int32 like every pixel
    # index here (see the weight gradient). Rows past the last pixel wrap onto real ones, so
    # every load stays in bounds; the store masks them out.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    image, y, x = pixel_coordinates(rm % pixels, height, width)
    return rm, image, y, x


@triton.jit
def _forward_kernel(x, w, out, batch, h, wd, c, k, kh, kw, oh, ow, stride_h, stride_w,
                    pad_h, pad_w, dil_h, dil_w, c_per_group, k_per_group, w_rsc_stride,
                    w_out_stride, PRECISION: tl.constexpr, VEC: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    GROUP_M: tl.constexpr):
    # GEMM per group: rows = output pixels (n, oh, ow), cols = output channels of the group,
    # reduction = (r, s, input channel of the group), walked as one flat loop so it pipelines.
    # Weight (r, s, c, k) sits at ((r*kw + s)*c_per_group + c)*w_rsc_stride + k*w_out_stride.
    group = tl.program_id(1)
    pixels = batch * oh * ow
    pid_m, pid_n = grouped_tile(tl.program_id(0), pixels, k_per_group, BLOCK_M, BLOCK_N, GROUP_M)
    rm, n_i, oh_i, ow_i = _pixel_rows(pid_m, pixels, oh, ow, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rn < k_per_group
    out_channel = group * k_per_group + rn
    rc = tl.arange(0, BLOCK_K)
    c_blocks = tl.cdiv(c_per_group, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for step in range(0, kh * kw * c_blocks):
        rs = step // c_blocks
        cc = (step - rs * c_blocks) * BLOCK_K + rc
        r = rs // kw
        ih = oh_i * stride_h - pad_h + r * dil_h
        iw = ow_i * stride_w - pad_w + (rs - r * kw) * dil_w
        inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < wd)
        c_ok = cc < c_per_group
        pixel = tl.multiple_of(((n_i * h + ih) * wd + iw).to(tl.int64) * c
                               + group * c_per_group, VEC)
        x_tile = tl.load(x + pixel[:, None] + cc[None, :], mask=inside[:, None] & c_ok[None, :],
                         other=0.0)
        w_tile = tl.load(w + (rs * c_per_group + cc)[:, None] * w_rsc_stride
                         + out_channel[None, :] * w_out_stride,
                         mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(x_tile, w_tile, acc, input_precision=PRECISION)
    tl.store(out + rm[:, None].to(tl.int64) * k + out_channel[None, :], acc,
             mask=(rm[:, None] < pixels) & n_ok[None, :])


@triton.jit
def _input_grad_kernel(gy, w, gx, batch, h, wd, c, k, kh, kw, oh, ow, stride_h, stride_w,
                       pad_h, pad_w, dil_h, dil_w, c_per_group, k_per_group, w_tap_stride,
                       w_in_stride, w_out_stride, PRECISION: tl.constexpr, VEC: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       GROUP_M: tl.constexpr):
    # GEMM per group: rows = input pixels (n, ih, iw), cols = input channels of the group,
    # reduction = (r, s, output channel of the group). Output pixel oh = (ih + pad - r*dil) / stride
    # contributes only when that division is exact and in range. Weight (r, s, c, k) sits at
    # (r*kw + s)*w_tap_stride + c*w_in_stride + k*w_out_stride.
    group = tl.program_id(1)
    pixels = batch * h * wd
    pid_m, pid_n = grouped_tile(tl.program_id(0), pixels, c_per_group, BLOCK_M, BLOCK_N, GROUP_M)
    rm, n_i, ih_i, iw_i = _pixel_rows(pid_m, pixels, h, wd, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    in_channel = rn % c_per_group
    rk = tl.arange(0, BLOCK_K)
    k_blocks = tl.cdiv(k_per_group, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for step in range(0, kh * kw * k_blocks):
        rs = step // k_blocks
        kk = (step - rs * k_blocks) * BLOCK_K + rk
        r = rs // kw
        h_num = ih_i + pad_h - r * dil_h
        w_num = iw_i + pad_w - (rs - r * kw) * dil_w
        # Divide only non-negative numerators (C and numpy disagree on negative ones).
        h_safe = tl.where(h_num >= 0, h_num, 0)
        w_safe = tl.where(w_num >= 0, w_num, 0)
        oh_i = h_safe // stride_h
        ow_i = w_safe // stride_w
        hit = ((h_num >= 0) & (h_safe == oh_i * stride_h) & (oh_i < oh)
               & (w_num >= 0) & (w_safe == ow_i * stride_w) & (ow_i < ow))
        k_ok = kk < k_per_group
        pixel = tl.multiple_of(((n_i * oh + oh_i) * ow + ow_i).to(tl.int64) * k
                               + group * k_per_group, VEC)
        gy_tile = tl.load(gy + pixel[:, None] + kk[None, :], mask=hit[:, None] & k_ok[None, :],
                          other=0.0)
        w_tile = tl.load(w + rs * w_tap_stride + in_channel[None, :] * w_in_stride
                         + (group * k_per_group + kk)[:, None] * w_out_stride,
                         mask=k_ok[:, None], other=0.0)
        acc = tl.dot(gy_tile, w_tile, acc, input_precision=PRECISION)
    tl.store(gx + rm[:, None].to(tl.int64) * c + (group * c_per_group + rn)[None, :], acc,
             mask=(rm[:, None] < pixels) & (rn[None, :] < c_per_group))


@triton.jit
def _weight_grad_kernel(x, gy, partial, batch, h, wd, c, k, kh, kw, oh, ow, stride_h, stride_w,
                        pad_h, pad_w, dil_h, dil_w, c_per_group, k_per_group, splits,
                        x_pixel_stride, x_channel_stride, gy_pixel_stride, gy_channel_stride,
                        PRECISION: tl.constexpr, VEC: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    # One program: one kernel tap (r, s), a tile of input channels x output channels of a group,
    # and one of `splits` slices of the output pixels (the reduction); partial sums of slice j go
    # to partial[j * kh*kw*c_per_group*k:] (the launcher adds the slices when splits > 1).
    # Pixel p, channel j of x sit at p*x_pixel_stride + j*x_channel_stride (gy alike).
    group = tl.program_id(1)
    split = tl.program_id(2)
    tiles_c = tl.cdiv(c_per_group, BLOCK_M)
    tiles_k = tl.cdiv(k_per_group, BLOCK_N)
    pid = tl.program_id(0)
    rs = pid // (tiles_c * tiles_k)
    pid_c = (pid // tiles_k) % tiles_c
    pid_k = pid % tiles_k
    r = rs // kw
    s = rs - r * kw
    rc = pid_c * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_k * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ok = rc < c_per_group
    n_ok = rn < k_per_group
    rp = tl.arange(0, BLOCK_K)
    # Pixel indices are int32 (common.PIXEL_LIMIT says why and check_conv_sizes keeps them in it).
    pixels = batch * oh * ow
    per_split = tl.cdiv(tl.cdiv(pixels, BLOCK_K), splits) * BLOCK_K
    p_first = min(split.to(tl.int64) * per_split, pixels)
    p_begin = p_first.to(tl.int32)
    p_end = min(p_first + per_split, pixels).to(tl.int32)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for p0 in range(p_begin, p_end, BLOCK_K):
        p = p0 + rp
        p_ok = p < p_end
        n_i, oh_i, ow_i = pixel_coordinates(p, oh, ow)
        ih = oh_i * stride_h - pad_h + r * dil_h
        iw = ow_i * stride_w - pad_w + s * dil_w
        inside = p_ok & (ih >= 0) & (ih < h) & (iw >= 0) & (iw < wd)
        # 64-bit channel offsets: channel-major strides are whole images (n*h*w elements).
        pixel = tl.multiple_of(((n_i * h + ih) * wd + iw).to(tl.int64) * x_pixel_stride
                               + group.to(tl.int64) * c_per_group * x_channel_stride, VEC)
        x_tile = tl.load(x + pixel[None, :] + rc[:, None].to(tl.int64) * x_channel_stride,
                         mask=c_ok[:, None] & inside[None, :], other=0.0)
        gy_tile = tl.load(gy + p[:, None].to(tl.int64) * gy_pixel_stride
                          + (group * k_per_group + rn)[None, :].to(tl.int64) * gy_channel_stride,
                          mask=p_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(x_tile, gy_tile, acc, input_precision=PRECISION)
    gw_size = kh * kw * c_per_group * k
    dst = (partial + split.to(tl.int64) * gw_size + (rs * c_per_group + rc)[:, None] * k
           + (group * k_per_group + rn)[None, :])
    tl.store(dst, acc, mask=c_ok[:, None] & n_ok[None, :])


@triton.jit
def _sum_splits_kernel(partial, out, size, splits, BLOCK: tl.constexpr,
                       SPLIT_BLOCK: tl.constexpr):
    # out[i] = sum_j partial[j * size + i]. A (SPLIT_BLOCK, BLOCK) tile per step puts the loads of
    # many slices in flight at once: one slice per step waits out a memory latency per slice.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    slices = tl.arange(0, SPLIT_BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for first in range(0, splits, SPLIT_BLOCK):
        j = first + slices
        tile = tl.load(partial + j[:, None].to(tl.int64) * size + offs[None, :],
                       mask=(j[:, None] < splits) & mask[None, :], other=0.0)
        acc += tl.sum(tile, axis=0)
    tl.store(out + offs, acc, mask=mask)


# Autotune keys: the sizes, and the strides that say which layout an operand has. Each kernel is
# keyed on those it takes (Triton 3.9 rejects key names that are not kernel arguments), and on the
# precision: choices persist on disk (AUTOTUNE_CACHE) under a key of the kernel's source, the
# tuning key and the candidates, and the precisions' candidates can be the same list.
_SIZE_KEYS = ["batch", "h", "wd", "c", "k", "kh", "kw", "oh", "ow", "stride_h", "stride_w",
              "pad_h", "pad_w", "dil_h", "dil_w", "c_per_group", "k_per_group", "splits",
              "w_out_stride", "w_in_stride", "x_channel_stride"]
_KERNELS = {"forward": _forward_kernel, "input": _input_grad_kernel,
            "weight": _weight_grad_kernel}


def _vector_width(channels, per_group):
    # Pixel starts (multiples of the channel count plus a group offset) are 16-byte aligned when
    # both are multiples of 4 floats; telling the compiler lets it vectorize the gathers.
    return 4 if channels % 4 == 0 and per_group % 4 == 0 else 1


_VECTORIZED = {
    "forward": triton.heuristics({"VEC": lambda args: _vector_width(args["c"],
                                                                    args["c_per_group"])}),
    "input": triton.heuristics({"VEC": lambda args: _vector_width(args["k"],
                                                                  args["k_per_group"])}),
    # Channel-major x has unit pixel stride: no alignment to promise.
    "weight": triton.heuristics({"VEC": lambda args: _vector_width(args["c"], args["c_per_group"])
                                 if args["x_channel_stride"] == 1 else 1}),
}
_LAUNCHABLE = {kind: _VECTORIZED[kind](kernel) for kind, kernel in _KERNELS.items()}
_TUNING = {(kind, p): autotune(
    kernel, configs=conv_configs(kind, p),
    key=[name for name in _SIZE_KEYS if name in _KERNELS[kind].arg_names] + ["PRECISION"],
    cache_results=AUTOTUNE_CACHE)
    for kind, kernel in _LAUNCHABLE.items() for p in PRECISIONS}
_AUTOTUNED = {key: tuning.autotuner for key, tuning in _TUNING.items()}
# Problems below this many multiply-adds take the first GPU configuration without autotuning.
AUTOTUNE_MIN_WORK = 1 << 24


def check_conv_sizes(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                     dil_h, dil_w, groups):
    """Raise ValueError naming the problem unless the sizes describe a valid convolution."""
    sizes = dict(n=n, h=h, w=w_, c=c, k=k, kh=kh, kw=kw, oh=oh, ow=ow, stride_h=stride_h,
                 stride_w=stride_w, pad_h=pad_h, pad_w=pad_w, dil_h=dil_h, dil_w=dil_w,
                 groups=groups)
    for name, value in sizes.items():
        low = 0 if name in ("n", "pad_h", "pad_w") else 1
        if not isinstance(value, int) or value < low:
            raise ValueError(f"conv2d: {name} must be an int >= {low}, got {value!r}")
    if c % groups or k % groups:
        raise ValueError(f"conv2d: groups={groups} must divide input channels {c} and output "
                         f"channels {k}")
    expected = ((h + 2 * pad_h - dil_h * (kh - 1) - 1) // stride_h + 1,
                (w_ + 2 * pad_w - dil_w * (kw - 1) - 1) // stride_w + 1)
    if min(expected) < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} (dilation {dil_h}x{dil_w}) is larger than the "
                         f"padded input {h + 2 * pad_h}x{w_ + 2 * pad_w}")
    if (oh, ow) != expected:
        raise ValueError(f"conv2d: output size {oh}x{ow} does not match the expected "
                         f"{expected[0]}x{expected[1]}")
    check_pixels("conv2d", n, h, w_, oh, ow, pad_h, pad_w)
    weight = kh * kw * (c // groups) * k
    if weight > INT32_LIMIT:
        raise ValueError(f"conv2d: the weight's kh*kw*c/groups*k = {weight} elements is more than "
                         f"the {INT32_LIMIT} the kernels index in int32")


_OPERANDS = {"forward": ("conv2d_forward", "x", "w", "out"),
             "input": ("conv2d_backward_input", "gy", "w", "gx"),
             "weight": ("conv2d_backward_weight", "x", "gy", "gw")}


def check_pass(kind, first, second, result, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
               pad_h, pad_w, dil_h, dil_w, groups):
    """Raise naming the problem unless the sizes are valid and the three buffers of pass `kind`
    (CONV_KINDS; operands in the launcher's order) hold them. The cuda device calls it before it
    copies an operand, so bad input is reported by the pass the caller used."""
    check_conv_sizes(n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h,
                     dil_w, groups)
    sizes = {"x": n * h * w_ * c, "gx": n * h * w_ * c, "out": n * oh * ow * k,
             "gy": n * oh * ow * k, "w": kh * kw * (c // groups) * k,
             "gw": kh * kw * (c // groups) * k}
    label, *names = _OPERANDS[kind]
    for name, handle in zip(names, (first, second, result), strict=True):
        check_buffer(f"{label} {name}", handle, sizes[name])


def weight_grad_splits(n, oh, ow, c, k, kh, kw, groups, sm_count, per_sm=2, min_pixels=256):
    """How many slices of the pixel reduction the weight gradient should use so that at most
    `per_sm` programs run per multiprocessor (its tile grid alone is small: kh*kw*C*K/groups/64^2),
    each slice at least `min_pixels` pixels. Rounded down: a few programs over that would run as a
    second, nearly empty wave. Two per multiprocessor is the rule; on a GPU the cuda device times
    one, two and four, slices down to 128 pixels, once per shape (the H100's best were two for
    IEEE, one for TF32, one for TF32 on channel-major copies: bench/results/gpu_check_h100.txt;
    four for IEEE while the kernel still divided pixel indices in int64)."""
    programs = kh * kw * cdiv(c // groups, 64) * cdiv(k // groups, 64) * groups
    return max(1, min((per_sm * sm_count) // programs, cdiv(n * oh * ow, min_pixels)))


# The configuration each autotune key chose, by every size and stride of the launch (which hold
# the autotuner's key): later launches of the key skip the autotuner, whose argument dictionaries
# cost a small layer's step as much as a launch. Bounded, like matmul's.
_CHOSEN = {}
_CHOSEN_LIMIT = 4096


class _NamedArgs:
    """A launch's positional arguments by kernel parameter name, as heuristics read them."""

    __slots__ = ("positions", "args")

    def __init__(self, positions, args):
        self.positions, self.args = positions, args

    def __getitem__(self, name):
        return self.args[self.positions[name]]


_POSITIONS = {kind: {name: i for i, name in enumerate(kernel.arg_names)}
              for kind, kernel in _KERNELS.items()}


def _vector_arg(kind, args):
    """VEC as the kernel's heuristic sets it for a launch with positional `args`."""
    return _LAUNCHABLE[kind].values["VEC"](_NamedArgs(_POSITIONS[kind], args))


def _launch(kind, args, grid, work, precision):
    if precision not in PRECISIONS:
        raise ValueError(f"unknown conv precision {precision!r}; choose one of {PRECISIONS}")
    tuning = _TUNING[(kind, precision)]
    if interpreting():
        tuning.launch(grid, args, {"PRECISION": precision})
        return
    if work >= AUTOTUNE_MIN_WORK:
        key = (kind, precision, args[3:])
        chosen = _CHOSEN.get(key)
        # A choice stands while the candidates it was chosen from do (tests replace the list).
        if chosen is None or chosen[0] is not tuning.autotuner.configs:
            tuning.autotuner.best_config = None
            tuning.launch(grid, args, {"PRECISION": precision})
            if tuning.autotuner.best_config is not None:
                if len(_CHOSEN) >= _CHOSEN_LIMIT:
                    _CHOSEN.clear()
                _CHOSEN[key] = (tuning.autotuner.configs, tuning.autotuner.best_config)
            return
        config = tuning.autotuner.best_config = chosen[1]  # as if the autotuner had chosen
    else:
        config = conv_configs(kind, precision)[0]
    # The options as the autotuner passes them (num_ctas too): Triton's cache keys on them.
    launch(_KERNELS[kind], grid(config.kwargs), args,
           {"PRECISION": precision, "VEC": _vector_arg(kind, args), **config.all_kwargs()})


def conv2d_forward(x, w, out, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                   dil_h, dil_w, groups, precision="ieee", w_transposed=False):
    """out (n, oh, ow, k) = conv of x (n, h, w_, c) with w (kh, kw, c/groups, k), or with w
    (k, kh, kw, c/groups) when w_transposed."""
    check_pass("forward", x, w, out, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h,
               pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    if n == 0:
        return
    grid = lambda meta: (cdiv(n * oh * ow, meta["BLOCK_M"]) * cdiv(kg, meta["BLOCK_N"]), groups)
    w_strides = (1, kh * kw * cg) if w_transposed else (k, 1)
    args = (x, w, out, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h,
            dil_w, cg, kg, *w_strides)
    _launch("forward", args, grid, n * oh * ow * k * kh * kw * cg, precision)


def conv2d_backward_input(gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                          pad_h, pad_w, dil_h, dil_w, groups, precision="ieee", w_tap_major=False):
    """gx (n, h, w_, c) = gradient of the forward with respect to x, given gy (n, oh, ow, k).
    With w_tap_major the weights are laid out (kh, kw, k, c/groups)."""
    check_pass("input", gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h,
               pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    if n == 0:
        return
    grid = lambda meta: (cdiv(n * h * w_, meta["BLOCK_M"]) * cdiv(cg, meta["BLOCK_N"]), groups)
    w_strides = (k * cg, 1, cg) if w_tap_major else (cg * k, k, 1)
    args = (gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h,
            dil_w, cg, kg, *w_strides)
    _launch("input", args, grid, n * h * w_ * c * kh * kw * kg, precision)


def conv2d_backward_weight(x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                           pad_h, pad_w, dil_h, dil_w, groups, precision="ieee", splits=1,
                           workspace=None, x_channel_major=False, gy_channel_major=False,
                           checked=False):
    """gw (kh, kw, c/groups, k) = gradient of the forward with respect to w. With splits > 1 the
    pixel reduction is cut into slices whose partial sums go to `workspace` (splits * gw size
    elements, caller-allocated) and are then added in a fixed order (deterministic). With
    x_channel_major x is laid out (c, n, h, w_), with gy_channel_major gy is (k, n, oh, ow).
    `checked`: the caller has run `check_pass` on these sizes and buffers (the cuda device must,
    before it sizes the workspace), so it is not run twice per launch."""
    if not checked:
        check_pass("weight", x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                   pad_h, pad_w, dil_h, dil_w, groups)
    cg, kg = c // groups, k // groups
    gw_size = kh * kw * cg * k
    if not isinstance(splits, int) or splits < 1:
        raise ValueError(f"conv2d_backward_weight: splits must be an int >= 1, got {splits!r}")
    if splits > 1:
        if workspace is None:
            raise ValueError("conv2d_backward_weight: splits > 1 needs a workspace buffer")
        check_buffer("conv2d_backward_weight workspace", workspace, splits * gw_size)
    partial = gw if splits == 1 else workspace
    grid = lambda meta: (kh * kw * cdiv(cg, meta["BLOCK_M"]) * cdiv(kg, meta["BLOCK_N"]), groups,
                         splits)
    layout = ((1, n * h * w_) if x_channel_major else (c, 1)) + (
        (1, n * oh * ow) if gy_channel_major else (k, 1))
    args = (x, gy, partial, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
            dil_h, dil_w, cg, kg, splits, *layout)
    _launch("weight", args, grid, n * oh * ow * k * kh * kw * cg, precision)
    if splits > 1:
        block, split_block = (16, 4) if interpreting() else (128, 32)
        launch(_sum_splits_kernel, (cdiv(gw_size, block),), (workspace, gw, gw_size, splits),
               {"BLOCK": block, "SPLIT_BLOCK": split_block,
                "num_warps": 1 if interpreting() else 4})
