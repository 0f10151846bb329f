"""Elementwise kernels over compact float32 data (kernel layer): binary (a OP b), scalar
(a OP value, value / a) and unary ops with numpy's semantics (NaN-propagating maximum, 0./1.
comparisons), the fused ReLU gradient and a + value * b, a OP a repeated row (a broadcast
bias or scale), and dropout with its mask from a counter-based hash. One kernel per arity (and
one each for a + value * b, the row ops and dropout); the op is a compile-time string, so each op
compiles once.
"""

import operator

import triton
import triton.language as tl

from .common import INT32_LIMIT, cdiv, check_buffer
from .launch import launch
from .memory import block_config

BINARY_OPS = ("add", "mul", "div", "maximum", "eq", "ge", "gt")
SCALAR_OPS = BINARY_OPS + ("power", "rdiv")
UNARY_OPS = ("neg", "log", "exp", "tanh", "relu", "sigmoid", "sqrt")
# Binary ops with no scalar form: g blocked where x <= 0 (the ReLU gradient).
GATE_OPS = ("relu_grad",)
# Integer powers up to this magnitude are repeated products (exact like numpy's powf for x**2).
MAX_INTEGER_POWER = 4
ROW_OPS = ("add", "mul")
# Dropout's limits (the protocol's): thresholds are 24-bit, seeds and indices 32-bit words.
DROPOUT_THRESHOLD_LIMIT = 2**24
DROPOUT_WORD = 2**32


@triton.jit
def _binary(a, b, OP: tl.constexpr):
    if OP == "add":
        r = a + b
    elif OP == "mul":
        r = a * b
    elif OP == "div":
        r = tl.div_rn(a, b)
    elif OP == "maximum":
        r = tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)
    elif OP == "eq":
        r = (a == b).to(tl.float32)
    elif OP == "ge":
        r = (a >= b).to(tl.float32)
    elif OP == "gt":
        r = (a > b).to(tl.float32)
    elif OP == "relu_grad":
        r = tl.where(b <= 0.0, 0.0, a)
    else:
        r = tl.div_rn(b, a)  # "rdiv": value / a
    return r


@triton.jit
def _integer_power(a, N: tl.constexpr, INVERT: tl.constexpr):
    r = tl.zeros_like(a) + 1.0
    for _ in tl.static_range(N):
        r = r * a
    if INVERT:
        r = tl.div_rn(1.0, r)
    return r


@triton.jit
def _real_power(a, value):
    # |a| ** value through exp2/log2, then C99 pow's sign rules: a finite negative base gives NaN
    # unless the exponent is an integer (odd keeps the sign); 0 ** value is 0, 1 or inf.
    magnitude = tl.abs(a)
    safe = tl.where(magnitude == 0.0, 1.0, magnitude)
    r = tl.exp2(value * tl.log2(safe))
    is_integer = tl.floor(value) == value
    is_odd = is_integer & (tl.floor(value * 0.5) * 2.0 != value)
    finite = tl.abs(a) < float("inf")
    r_negative = tl.where(is_integer, r, tl.where(finite, float("nan"), r))
    r = tl.where(a < 0.0, tl.where(is_odd, -r, r_negative), r)
    zero_result = tl.where(value > 0.0, 0.0, tl.where(value == 0.0, 1.0, float("inf")))
    return tl.where(magnitude == 0.0, zero_result, r)


@triton.jit
def _tanh(a):
    # exp(-2|a|) never overflows; below |a| = 1/8 the odd Taylor series avoids 1 - t cancellation.
    x = tl.abs(a)
    t = tl.exp(-2.0 * x)
    large = tl.div_rn(1.0 - t, 1.0 + t)
    x2 = x * x
    small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0
                                                                      + x2 * (62.0 / 2835.0)))))
    r = tl.where(x < 0.125, small, large)
    return tl.where(a < 0.0, -r, tl.where(a == a, r, a))


@triton.jit
def _unary(a, OP: tl.constexpr):
    if OP == "neg":
        r = -a
    elif OP == "log":
        r = tl.log(a)
    elif OP == "exp":
        r = tl.exp(a)
    elif OP == "tanh":
        r = _tanh(a)
    elif OP == "relu":
        r = tl.maximum(a, 0.0, propagate_nan=tl.PropagateNan.ALL)
    elif OP == "sigmoid":
        e = tl.exp(-tl.abs(a))
        r = tl.where(a >= 0.0, tl.div_rn(1.0, 1.0 + e), tl.div_rn(e, 1.0 + e))
        r = tl.where(a == a, r, a)
    else:
        r = tl.sqrt_rn(a)
    return r


@triton.jit
def _dropout_hash(seed_bits, index):
    # The protocol's hash in uint32 arithmetic, which wraps mod 2^32 like the spec's. seed_bits is
    # the seed's int32 bit pattern (see seed_bits below), index any integer type (truncated to 32
    # bits). Every constant is a uint32 tensor: a uint32 mixed with an int32 or int64 operand
    # would promote and stop wrapping, and a signed right shift would drag in the sign bit.
    x = index.to(tl.uint32) * tl.full([], 0x9E3779B9, tl.uint32)
    x = x ^ seed_bits.to(tl.uint32, bitcast=True)
    x = x ^ (x >> tl.full([], 16, tl.uint32))
    x = x * tl.full([], 0x85EBCA6B, tl.uint32)
    x = x ^ (x >> tl.full([], 13, tl.uint32))
    x = x * tl.full([], 0xC2B2AE35, tl.uint32)
    return x ^ (x >> tl.full([], 16, tl.uint32))


@triton.jit
def _ewise_kernel(a, b, out, size, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=1.0)
    y = tl.load(b + offs, mask=mask, other=1.0)
    tl.store(out + offs, _binary(x, y, OP), mask=mask)


@triton.jit
def _add_scaled_kernel(a, b, out, value, size, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=0.0)
    y = tl.load(b + offs, mask=mask, other=0.0)
    tl.store(out + offs, x + value * y, mask=mask)


@triton.jit
def _axpby_kernel(a, b, out, alpha, beta, size, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=0.0)
    y = tl.load(b + offs, mask=mask, other=0.0)
    tl.store(out + offs, alpha * x + beta * y, mask=mask)


# Seed and threshold stay plain int32 arguments: a launch would otherwise make a value of 1 a
# constant (and mark multiples of 16), compiling extra variants for particular seeds.
@triton.jit(do_not_specialize=["threshold", "seed"])
def _dropout_kernel(a, out, size, threshold, scale, seed, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=0.0)
    # hash >> 8 is below 2^24, so the comparison with the int32 threshold is exact in int32.
    keep = (_dropout_hash(seed, offs) >> tl.full([], 8, tl.uint32)).to(tl.int32) >= threshold
    # A select, not a product with the mask: a dropped NaN or inf must give 0.
    tl.store(out + offs, tl.where(keep, x * scale, 0.0), mask=mask)


@triton.jit
def _row_kernel(a, row, out, size, period, OP: tl.constexpr, WIDE_ROW: tl.constexpr,
                BLOCK: tl.constexpr):
    # Rows within int32 (common.INT32_LIMIT): one int64 remainder per program gives the block's
    # first row index, the per-element ones are int32.
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    mask = offs < size
    if WIDE_ROW:
        cols = offs % period
    else:
        cols = ((start % period).to(tl.int32) + tl.arange(0, BLOCK)) % period
    x = tl.load(a + offs, mask=mask, other=1.0)
    # Every lane's column lies in the row, masked ones included; the hot row stays in L1/L2.
    y = tl.load(row + cols)
    tl.store(out + offs, _binary(x, y, OP), mask=mask)


@triton.jit
def _scalar_kernel(a, out, value, size, OP: tl.constexpr, POWER: tl.constexpr,
                   INVERT: tl.constexpr, BLOCK: tl.constexpr):
    # OP "power": |exponent| POWER (1 / product when INVERT) for small integer exponents, the
    # square root when POWER is -2 (numpy's own fast path for 0.5), the general power when -1.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=1.0)
    if OP == "power":
        if POWER == -2:
            r = tl.sqrt_rn(x)
        elif POWER == -1:
            r = _real_power(x, value)
        else:
            r = _integer_power(x, POWER, INVERT)
    else:
        r = _binary(x, tl.zeros([BLOCK], tl.float32) + value, OP)
    tl.store(out + offs, r, mask=mask)


@triton.jit
def _unary_kernel(a, out, size, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < size
    x = tl.load(a + offs, mask=mask, other=1.0)
    tl.store(out + offs, _unary(x, OP), mask=mask)


def _checked(names, buffers, size):
    for name, buffer in zip(names, buffers, strict=True):
        check_buffer(name, buffer, size)
    block, warps = block_config()
    return (cdiv(size, block),), block, warps


def ewise(op, a, b, out, size):
    """out[0:size] = a OP b for op in BINARY_OPS + GATE_OPS."""
    if op not in BINARY_OPS + GATE_OPS:
        raise ValueError(f"unknown binary op {op!r}; choose one of {BINARY_OPS + GATE_OPS}")
    grid, block, warps = _checked(("a", "b", "out"), (a, b, out), size)
    if size:
        launch(_ewise_kernel, grid, (a, b, out, size), {"OP": op, "BLOCK": block,
                                                         "num_warps": warps})


def scalar(op, a, value, out, size):
    """out[0:size] = a OP value (op "rdiv": value / a) for op in SCALAR_OPS."""
    if op not in SCALAR_OPS:
        raise ValueError(f"unknown scalar op {op!r}; choose one of {SCALAR_OPS}")
    grid, block, warps = _checked(("a", "out"), (a, out), size)
    value = float(value)
    power = -1
    if op == "power" and value.is_integer() and abs(value) <= MAX_INTEGER_POWER:
        power = int(abs(value))
    elif op == "power" and value == 0.5:
        power = -2
    if size:
        launch(_scalar_kernel, grid, (a, out, value, size),
               {"OP": op, "POWER": power, "INVERT": value < 0, "BLOCK": block,
                "num_warps": warps})


def add_scaled(a, b, value, out, size):
    """out[0:size] = a + value * b (one fused multiply-add on a GPU)."""
    grid, block, warps = _checked(("a", "b", "out"), (a, b, out), size)
    if size:
        launch(_add_scaled_kernel, grid, (a, b, out, float(value), size),
               {"BLOCK": block, "num_warps": warps})


def axpby(a, b, alpha, beta, out, size):
    """out[0:size] = alpha * a + beta * b (one product fused into the sum on a GPU)."""
    grid, block, warps = _checked(("a", "b", "out"), (a, b, out), size)
    if size:
        launch(_axpby_kernel, grid, (a, b, out, float(alpha), float(beta), size),
               {"BLOCK": block, "num_warps": warps})


def seed_bits(seed):
    """The int32 with the bits of uint32 `seed`: the launch then types it i32 (a value past 2^31
    would travel as i64) and the kernel bitcasts it back."""
    return seed - DROPOUT_WORD if seed >= DROPOUT_WORD // 2 else seed


def check_dropout(size, threshold, scale, seed):
    """Raise naming the value unless dropout over `size` elements can draw its mask (also the
    matmul kernel's dropout epilogue's check)."""
    threshold, seed = operator.index(threshold), operator.index(seed)
    if size > DROPOUT_WORD:
        raise ValueError(f"size {size} exceeds 2^32: dropout indices are 32-bit")
    if not 0 <= threshold <= DROPOUT_THRESHOLD_LIMIT:
        raise ValueError(f"threshold {threshold} outside [0, 2^24]")
    if not 0 <= seed < DROPOUT_WORD:
        raise ValueError(f"seed {seed} outside [0, 2^32)")


def dropout(a, out, size, threshold, scale, seed):
    """out[i] = a[i] * scale where (hash(seed, i) >> 8) >= threshold, else 0, for i < size (the
    protocol's ewise_dropout; out may be a)."""
    threshold, seed = operator.index(threshold), operator.index(seed)
    check_dropout(size, threshold, scale, seed)
    grid, block, warps = _checked(("a", "out"), (a, out), size)
    if size:
        launch(_dropout_kernel, grid, (a, out, size, threshold, float(scale), seed_bits(seed)),
               {"BLOCK": block, "num_warps": warps})


def row_op(op, a, row, out, size, period):
    """out[i] = a[i] OP row[i % period] for i < size, op in ROW_OPS; size a multiple of period."""
    if op not in ROW_OPS:
        raise ValueError(f"unknown row op {op!r}; choose one of {ROW_OPS}")
    grid, block, warps = _checked(("a", "out"), (a, out), size)
    if size and period < 1:
        raise ValueError(f"period must be >= 1 for a nonempty input, got {period}")
    if size % max(period, 1):
        raise ValueError(f"size {size} is not a multiple of the row's period {period}")
    check_buffer("row", row, period if size else 0)
    if size:
        launch(_row_kernel, grid, (a, row, out, size, period),
               {"OP": op, "WIDE_ROW": period > INT32_LIMIT - block, "BLOCK": block,
                "num_warps": warps})


def unary(op, a, out, size):
    """out[0:size] = f(a) for f in UNARY_OPS."""
    if op not in UNARY_OPS:
        raise ValueError(f"unknown unary op {op!r}; choose one of {UNARY_OPS}")
    grid, block, warps = _checked(("a", "out"), (a, out), size)
    if size:
        launch(_unary_kernel, grid, (a, out, size), {"OP": op, "BLOCK": block,
                                                      "num_warps": warps})
