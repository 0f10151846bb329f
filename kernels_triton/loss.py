"""Softmax cross-entropy over the last axis of compact float32 logits (kernel layer): each row's
loss lse - z[label] and its gradient g * (softmax - one_hot). Rows are tiled like reduce.py's
logsumexp, and each row's lse is reduce_logsumexp's own (`row_logsumexp`).
"""

import triton
import triton.language as tl

from .common import cdiv, check_buffer
from .launch import launch
from .reduce import block_config, row_logsumexp


@triton.jit
def _row_labels(labels, rows, row_mask, classes):
    """(label index, valid) of each row: the float label is compared before the cast, so NaN,
    infinities and out-of-range values never become an index (index 0 where invalid)."""
    label = tl.load(labels + rows, mask=row_mask, other=-1.0)
    valid = row_mask & (label >= 0.0) & (label < classes)
    return tl.where(valid, label, 0.0).to(tl.int32), valid


@triton.jit
def _softmax_xent_kernel(z, labels, out, classes, rows_total, BLOCK_ROWS: tl.constexpr,
                         BLOCK_COLS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_mask = rows < rows_total
    row_start = rows[:, None] * classes
    lse = row_logsumexp(z, row_start, row_mask, classes, BLOCK_ROWS, BLOCK_COLS)
    index, valid = _row_labels(labels, rows, row_mask, classes)
    picked = tl.load(z + rows * classes + index, mask=valid, other=0.0)
    tl.store(out + rows, tl.where(valid, lse - picked, float("nan")), mask=row_mask)


@triton.jit
def _softmax_xent_grad_kernel(z, labels, g, out, classes, rows_total, BLOCK_ROWS: tl.constexpr,
                              BLOCK_COLS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_mask = rows < rows_total
    row_start = rows[:, None] * classes
    lse = row_logsumexp(z, row_start, row_mask, classes, BLOCK_ROWS, BLOCK_COLS)
    # Padding rows get lse 0 and read zeros: -inf - -inf there would make the interpreter warn.
    lse = tl.where(row_mask, lse, 0.0)
    index, valid = _row_labels(labels, rows, row_mask, classes)
    scale = tl.load(g + rows, mask=row_mask, other=0.0)
    cols = tl.arange(0, BLOCK_COLS)
    for start in range(0, classes, BLOCK_COLS):
        c = start + cols
        mask = row_mask[:, None] & (c < classes)[None, :]
        x = tl.load(z + row_start + c[None, :], mask=mask, other=0.0)
        one_hot = (c[None, :] == index[:, None]).to(tl.float32)
        grad = (tl.exp(x - lse[:, None]) - one_hot) * scale[:, None]
        tl.store(out + row_start + c[None, :], tl.where(valid[:, None], grad, float("nan")),
                 mask=mask)


def _check_sizes(name, classes, rows):
    if classes < 0 or rows < 0:
        raise ValueError(f"{name}: negative sizes classes={classes}, rows={rows}")


def softmax_xent(z, labels, out, classes, rows):
    """out[i] = lse_i - z[i, labels[i]], NaN where the label is not in [0, classes)."""
    _check_sizes("softmax_xent", classes, rows)
    check_buffer("softmax_xent logits", z, classes * rows)
    check_buffer("softmax_xent labels", labels, rows)
    check_buffer("softmax_xent out", out, rows)
    if rows == 0:
        return
    block_rows, block_cols, warps = block_config(classes, rows)
    launch(_softmax_xent_kernel, (cdiv(rows, block_rows),), (z, labels, out, classes, rows),
           {"BLOCK_ROWS": block_rows, "BLOCK_COLS": block_cols, "num_warps": warps})


def softmax_xent_grad(z, labels, g, out, classes, rows):
    """out[i, j] = g[i] * (exp(z[i, j] - lse_i) - (j == labels[i])), a NaN row where the label is
    not in [0, classes)."""
    _check_sizes("softmax_xent_grad", classes, rows)
    check_buffer("softmax_xent_grad logits", z, classes * rows)
    check_buffer("softmax_xent_grad labels", labels, rows)
    check_buffer("softmax_xent_grad g", g, rows)
    check_buffer("softmax_xent_grad out", out, classes * rows)
    if rows == 0 or classes == 0:
        return
    block_rows, block_cols, warps = block_config(classes, rows)
    launch(_softmax_xent_grad_kernel, (cdiv(rows, block_rows),),
           (z, labels, g, out, classes, rows),
           {"BLOCK_ROWS": block_rows, "BLOCK_COLS": block_cols, "num_warps": warps})
