"""Memory kernels (kernel layer): fill, and the strided gather (compact) and scatters (ewise and
scalar setitem) for views of rank up to 8. Shape and strides travel as eight padded scalar pairs,
innermost dimension first, and RANK is a compile-time constant so unused dimensions cost nothing.
"""

import triton
import triton.language as tl

from .common import INT32_LIMIT, cdiv, check_buffer, check_strided, interpreting
from .launch import launch

MAX_RANK = 8


def block_config():
    """(BLOCK, num_warps) of these memory-bound kernels: a plain wide block, no autotuning."""
    return (1024, 1) if interpreting() else (1024, 4)


@triton.jit
def _fill_kernel(out, value, size, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out + offs, tl.zeros([BLOCK], tl.float32) + value, mask=offs < size)


@triton.jit
def _dim_step(rest, addr, n, stride):
    outer = rest // n
    return outer, addr + (rest - outer * n).to(tl.int64) * stride


@triton.jit
def _strided_address(linear, offset, RANK: tl.constexpr,
                     n0, n1, n2, n3, n4, n5, n6, n7, t0, t1, t2, t3, t4, t5, t6, t7):
    # Peel row-major coordinates off `linear`, innermost dimension (n0, stride t0) first, in the
    # index's own type (int32 unless the view is huge: common.INT32_LIMIT says why); the address
    # is int64.
    rest = linear
    addr = linear.to(tl.int64) * 0 + offset
    if RANK > 0:
        rest, addr = _dim_step(rest, addr, n0, t0)
    if RANK > 1:
        rest, addr = _dim_step(rest, addr, n1, t1)
    if RANK > 2:
        rest, addr = _dim_step(rest, addr, n2, t2)
    if RANK > 3:
        rest, addr = _dim_step(rest, addr, n3, t3)
    if RANK > 4:
        rest, addr = _dim_step(rest, addr, n4, t4)
    if RANK > 5:
        rest, addr = _dim_step(rest, addr, n5, t5)
    if RANK > 6:
        rest, addr = _dim_step(rest, addr, n6, t6)
    if RANK > 7:
        rest, addr = _dim_step(rest, addr, n7, t7)
    return addr


@triton.jit
def _strided_kernel(src, dst, value, size, offset,
                    n0, n1, n2, n3, n4, n5, n6, n7, t0, t1, t2, t3, t4, t5, t6, t7,
                    MODE: tl.constexpr, RANK: tl.constexpr, WIDE: tl.constexpr,
                    BLOCK: tl.constexpr):
    # MODE "gather": dst[i] = src[addr(i)]; "scatter": dst[addr(i)] = src[i];
    # "fill": dst[addr(i)] = value. WIDE: indices past int32.
    if WIDE:
        linear = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        linear = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = linear < size
    addr = _strided_address(linear, offset, RANK,
                            n0, n1, n2, n3, n4, n5, n6, n7, t0, t1, t2, t3, t4, t5, t6, t7)
    if MODE == "gather":
        tl.store(dst + linear, tl.load(src + addr, mask=mask), mask=mask)
    elif MODE == "scatter":
        tl.store(dst + addr, tl.load(src + linear, mask=mask), mask=mask)
    else:
        tl.store(dst + addr, tl.zeros([BLOCK], tl.float32) + value, mask=mask)


def collapse_dims(shape, strides):
    """The same view with size-1 dimensions dropped and adjacent dimensions merged where the outer
    stride equals inner stride times inner extent (fewer dimensions, fewer divisions)."""
    dims = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    merged = []
    for n, s in dims:
        if merged and merged[-1][1] == s * n:
            outer_n, _ = merged.pop()
            merged.append((outer_n * n, s))
        else:
            merged.append((n, s))
    return tuple(n for n, _ in merged), tuple(s for _, s in merged)


def wide_indices(size, block):
    """Whether a strided launch over `size` elements in blocks of `block` needs int64 indices:
    its last block reaches index cdiv(size, block) * block - 1."""
    return cdiv(size, block) * block - 1 > INT32_LIMIT


def _launch_strided(mode, src, dst, value, shape, strides, offset):
    size = 1
    for n in shape:
        size *= n
    if size == 0:
        return
    shape, strides = collapse_dims(shape, strides)
    if len(shape) > MAX_RANK:
        raise ValueError(f"strided views support rank <= {MAX_RANK}, got shape {shape}")
    pad = MAX_RANK - len(shape)
    extents = tuple(reversed(shape)) + (1,) * pad
    steps = tuple(reversed(strides)) + (0,) * pad
    block, warps = block_config()
    launch(_strided_kernel, (cdiv(size, block),),
           (src, dst, float(value), size, offset, *extents, *steps),
           {"MODE": mode, "RANK": len(shape), "WIDE": wide_indices(size, block), "BLOCK": block,
            "num_warps": warps})


def fill(out, value, size):
    """out[0:size] = value."""
    check_buffer("fill out", out, size)
    if size == 0:
        return
    block, warps = block_config()
    launch(_fill_kernel, (cdiv(size, block),), (out, float(value), size),
           {"BLOCK": block, "num_warps": warps})


def compact(a, out, shape, strides, offset):
    """out[i] = a[offset + sum_d idx_d(i) * strides[d]] over row-major `shape`."""
    check_strided("compact input", a, shape, strides, offset)
    check_buffer("compact out", out, _prod(shape))
    _launch_strided("gather", a, out, 0.0, tuple(shape), tuple(strides), offset)


def ewise_setitem(a, out, shape, strides, offset):
    """out[offset + sum_d idx_d(i) * strides[d]] = a[i], `a` compact."""
    check_strided("setitem out", out, shape, strides, offset)
    check_buffer("setitem input", a, _prod(shape))
    _launch_strided("scatter", a, out, 0.0, tuple(shape), tuple(strides), offset)


def scalar_setitem(size, value, out, shape, strides, offset):
    """out[offset + sum_d idx_d(i) * strides[d]] = value; size must equal prod(shape)."""
    if size != _prod(shape):
        raise ValueError(f"scalar_setitem: size {size} != prod(shape) of {tuple(shape)}")
    check_strided("setitem out", out, shape, strides, offset)
    _launch_strided("fill", out, out, value, tuple(shape), tuple(strides), offset)


def _prod(shape):
    size = 1
    for n in shape:
        size *= n
    return size
