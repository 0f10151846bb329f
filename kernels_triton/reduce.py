"""Row reductions over the last axis of compact float32 data (kernel layer): sum, max and
logsumexp. Each program owns BLOCK_ROWS rows and walks the reduced axis in BLOCK_COLS chunks, so
any reduce size fits; max propagates NaN like numpy.
"""

import triton
import triton.language as tl

from .common import cdiv, check_buffer, interpreting, next_power_of_2
from .launch import launch

REDUCE_OPS = ("sum", "max", "logsumexp")


def block_config(reduce_size, out_size):
    """(BLOCK_ROWS, BLOCK_COLS, num_warps): at most 1024 columns, about 4096 elements a tile."""
    cols = min(next_power_of_2(max(reduce_size, 1)), 1024)
    rows = min(next_power_of_2(max(out_size, 1)), max(1, 4096 // cols))
    return rows, cols, 1 if interpreting() else 4


@triton.jit
def _reduce_kernel(a, out, reduce_size, out_size, IS_MAX: tl.constexpr,
                   BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_mask = rows < out_size
    cols = tl.arange(0, BLOCK_COLS)
    row_start = rows[:, None] * reduce_size
    if IS_MAX:
        acc = tl.full([BLOCK_ROWS, BLOCK_COLS], float("-inf"), tl.float32)
    else:
        acc = tl.zeros([BLOCK_ROWS, BLOCK_COLS], tl.float32)
    for start in range(0, reduce_size, BLOCK_COLS):
        c = start + cols
        mask = row_mask[:, None] & (c < reduce_size)[None, :]
        if IS_MAX:
            x = tl.load(a + row_start + c[None, :], mask=mask, other=float("-inf"))
            acc = tl.maximum(acc, x, propagate_nan=tl.PropagateNan.ALL)
        else:
            acc += tl.load(a + row_start + c[None, :], mask=mask, other=0.0)
    if IS_MAX:
        # tl.max does not promise NaN propagation: count NaNs separately.
        nans = tl.sum((acc != acc).to(tl.int32), axis=1)
        result = tl.where(nans > 0, float("nan"), tl.max(acc, axis=1))
    else:
        result = tl.sum(acc, axis=1)
    tl.store(out + rows, result, mask=row_mask)


@triton.jit
def row_logsumexp(z, row_start, row_mask, row_length, BLOCK_ROWS: tl.constexpr,
                  BLOCK_COLS: tl.constexpr):
    """The lse of each of BLOCK_ROWS rows starting at z + row_start ([BLOCK_ROWS, 1], int64), also
    softmax cross-entropy's (loss.py): -inf for an empty or masked row."""
    # Two passes: the maximum, then the sum of exp(x - maximum). A NaN may drop out of the maximum
    # (tl.maximum ignores it) but not out of the sum, so the row still gives NaN.
    cols = tl.arange(0, BLOCK_COLS)
    peak = tl.full([BLOCK_ROWS, BLOCK_COLS], float("-inf"), tl.float32)
    for start in range(0, row_length, BLOCK_COLS):
        c = start + cols
        mask = row_mask[:, None] & (c < row_length)[None, :]
        peak = tl.maximum(peak, tl.load(z + row_start + c[None, :], mask=mask,
                                        other=float("-inf")))
    row_peak = tl.max(peak, axis=1)
    # An infinite maximum shifts nothing: the sum then gives inf (an inf element) or 0 (all -inf,
    # and an empty row), whose log is -inf.
    shift = tl.where(tl.abs(row_peak) < float("inf"), row_peak, 0.0)
    total = tl.zeros([BLOCK_ROWS, BLOCK_COLS], tl.float32)
    for start in range(0, row_length, BLOCK_COLS):
        c = start + cols
        mask = row_mask[:, None] & (c < row_length)[None, :]
        x = tl.load(z + row_start + c[None, :], mask=mask, other=float("-inf"))
        total += tl.exp(x - shift[:, None])
    row_sum = tl.sum(total, axis=1)
    # log(0) = -inf written out: the interpreter's numpy would warn on every padding row.
    return tl.where(row_sum > 0.0, tl.log(tl.where(row_sum > 0.0, row_sum, 1.0)) + shift,
                    tl.where(row_sum == row_sum, float("-inf"), row_sum))


@triton.jit
def _logsumexp_kernel(a, out, reduce_size, out_size, BLOCK_ROWS: tl.constexpr,
                      BLOCK_COLS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_mask = rows < out_size
    lse = row_logsumexp(a, rows[:, None] * reduce_size, row_mask, reduce_size, BLOCK_ROWS,
                        BLOCK_COLS)
    tl.store(out + rows, lse, mask=row_mask)


def reduce(op, a, out, reduce_size, out_size):
    """out[i] = OP_j a[i * reduce_size + j] for op in REDUCE_OPS."""
    if op not in REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; choose one of {REDUCE_OPS}")
    if reduce_size < 0 or out_size < 0:
        raise ValueError(f"reduce_{op}: negative sizes reduce_size={reduce_size}, "
                         f"out_size={out_size}")
    if op == "max" and reduce_size == 0 and out_size > 0:
        raise ValueError("reduce_max over an empty axis has no identity")
    check_buffer(f"reduce_{op} input", a, reduce_size * out_size)
    check_buffer(f"reduce_{op} out", out, out_size)
    if out_size == 0:
        return
    rows, cols, warps = block_config(reduce_size, out_size)
    grid = (cdiv(out_size, rows),)
    if op == "logsumexp":
        launch(_logsumexp_kernel, grid, (a, out, reduce_size, out_size),
               {"BLOCK_ROWS": rows, "BLOCK_COLS": cols, "num_warps": warps})
    else:
        launch(_reduce_kernel, grid, (a, out, reduce_size, out_size),
               {"IS_MAX": op == "max", "BLOCK_ROWS": rows, "BLOCK_COLS": cols,
                "num_warps": warps})
