"""Batched tiled transpose (kernel layer): copies a strided (batch, rows, cols) view into a compact
(batch, cols, rows) buffer, optionally rounding to nearest TF32: the cuda device's staging copy of
tensor-core operands into the layout they are read fastest in (engine/backend/cuda_staging.py).
"""

import triton
import triton.language as tl

from .common import MAX_GRID_BATCH, cdiv, check_buffer, check_strided, interpreting, round_to_tf32
from .launch import launch


def tile_config():
    """(BLOCK_R, BLOCK_C, num_warps): one tile is read along its source's unit stride and written
    along rows, the compiler staging it through shared memory between the two."""
    return (16, 16, 1) if interpreting() else (64, 64, 4)


@triton.jit
def _transpose_kernel(src, dst, rows, cols, offset, stride_b, stride_r, stride_c,
                      BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ROUND_TF32: tl.constexpr):
    # dst[t, j, i] = src[offset + t*stride_b + i*stride_r + j*stride_c]; grid (tiles, batch).
    pid = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    tiles_c = tl.cdiv(cols, BLOCK_C)
    ri = (pid // tiles_c) * BLOCK_R + tl.arange(0, BLOCK_R)
    rj = (pid % tiles_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (ri[:, None] < rows) & (rj[None, :] < cols)
    tile = tl.load(src + offset + batch * stride_b + ri[:, None].to(tl.int64) * stride_r
                   + rj[None, :].to(tl.int64) * stride_c, mask=mask)
    if ROUND_TF32:
        tile = round_to_tf32(tile)
    tl.store(dst + batch * rows * cols + rj[None, :].to(tl.int64) * rows + ri[:, None], tile,
             mask=mask)


def transpose(src, dst, batch, rows, cols, offset, batch_stride, row_stride, col_stride,
              round_tf32=False):
    """dst (batch, cols, rows) compact = the transpose of each (rows, cols) matrix of the view
    src[offset + t*batch_stride + i*row_stride + j*col_stride], each element rounded to nearest
    TF32 (as `common.round_to_tf32`) with `round_tf32`."""
    if min(batch, rows, cols) < 0:
        raise ValueError(f"transpose: negative size in batch={batch}, rows={rows}, cols={cols}")
    check_strided("transpose src", src, (batch, rows, cols), (batch_stride, row_stride, col_stride),
                  offset)
    check_buffer("transpose dst", dst, batch * rows * cols)
    if batch * rows * cols == 0:
        return
    block_r, block_c, warps = tile_config()
    tiles = cdiv(rows, block_r) * cdiv(cols, block_c)
    for first in range(0, batch, MAX_GRID_BATCH):
        chunk = min(MAX_GRID_BATCH, batch - first)
        launch(_transpose_kernel, (tiles, chunk),
               (src, dst[first * rows * cols:], rows, cols, offset + first * batch_stride,
                batch_stride, row_stride, col_stride),
               {"BLOCK_R": block_r, "BLOCK_C": block_c, "ROUND_TF32": bool(round_tf32),
                "num_warps": warps})
