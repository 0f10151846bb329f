"""Batched matrix multiply (kernel layer): a blocked kernel with grouped program ordering, explicit
(batch, row, col) strides for both operands so transposed or broadcast views need no copy, masks
for every shape and fp32 accumulation. Precision "ieee" (default), "tf32" or "tf32x3" is a
compile-time choice; autotune configurations come from `matmul_configs`.
"""

import triton
import triton.language as tl

from .common import MAX_GRID_BATCH, cdiv, check_buffer, check_strided, interpreting

PRECISIONS = ("ieee", "tf32", "tf32x3")
# Problems below this many multiply-adds take one fixed configuration: autotuning every small
# shape of a training run would cost more than it saves.
AUTOTUNE_MIN_WORK = 1 << 24


def _config(bm, bn, bk, group, warps, stages, persistent=False):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group,
                          "PERSISTENT": persistent}, num_warps=warps, num_stages=stages)


def matmul_configs(precision):
    """Autotune candidates: exactly one small tile under the interpreter, several on a GPU (tensor
    core tiles for tf32*, FMA-friendly tiles for IEEE fp32)."""
    if interpreting():
        return [_config(16, 16, 16, 2, 1, 1)]
    if precision == "ieee":
        return [_config(128, 128, 16, 8, 8, 3), _config(128, 128, 32, 8, 8, 2),
                _config(128, 64, 32, 8, 4, 3), _config(64, 128, 32, 8, 4, 3),
                _config(128, 256, 16, 8, 8, 2), _config(64, 64, 32, 8, 4, 4)]
    return [_config(128, 256, 32, 8, 8, 3), _config(256, 128, 32, 8, 8, 3),
            _config(128, 256, 32, 8, 8, 4), _config(256, 128, 32, 8, 8, 4),
            _config(128, 128, 32, 8, 8, 4), _config(128, 128, 32, 8, 4, 4),
            _config(128, 128, 64, 8, 8, 3), _config(128, 64, 32, 8, 4, 4),
            _config(64, 128, 32, 8, 4, 4), _config(64, 64, 32, 8, 4, 4),
            _config(256, 128, 32, 8, 8, 3, True), _config(128, 256, 32, 8, 8, 2, True),
            _config(128, 128, 32, 8, 8, 4, True)]


def small_config():
    """The fixed configuration of small problems (and of everything under the interpreter)."""
    if interpreting():
        return matmul_configs("ieee")[0]
    return _config(64, 64, 32, 8, 4, 3)


@triton.jit
def _matmul_tile(a, b, out, m, n, k, tile, batch, a_offset, stride_ab, stride_am, stride_ak,
                 b_offset, stride_bb, stride_bk, stride_bn, PRECISION: tl.constexpr,
                 EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    num_pid_m = tl.cdiv(m, BLOCK_M)
    num_pid_n = tl.cdiv(n, BLOCK_N)
    # Grouped ordering: GROUP_M row tiles advance together so their B columns stay in L2.
    pids_in_group = GROUP_M * num_pid_n
    first_pid_m = (tile // pids_in_group) * GROUP_M
    group_rows = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (tile % pids_in_group) % group_rows
    pid_n = (tile % pids_in_group) // group_rows
    # Edge masks rather than wrapping indices (% m) keep rm/rn provably contiguous, so loads along
    # a unit-stride dimension vectorize.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm[:, None] < m
    n_ok = rn[None, :] < n
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = (a + a_offset + batch * stride_ab + rm[:, None].to(tl.int64) * stride_am
              + rk[None, :] * stride_ak)
    b_ptrs = (b + b_offset + batch * stride_bb + rk[:, None] * stride_bk
              + rn[None, :].to(tl.int64) * stride_bn)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for kb in range(0, tl.cdiv(k, BLOCK_K)):
        if EVEN_K:
            a_tile = tl.load(a_ptrs, mask=m_ok, other=0.0)
            b_tile = tl.load(b_ptrs, mask=n_ok, other=0.0)
        else:
            k_left = k - kb * BLOCK_K
            a_tile = tl.load(a_ptrs, mask=m_ok & (rk[None, :] < k_left), other=0.0)
            b_tile = tl.load(b_ptrs, mask=n_ok & (rk[:, None] < k_left), other=0.0)
        acc = tl.dot(a_tile, b_tile, acc, input_precision=PRECISION)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    out_ptrs = out + batch * m * n + rm[:, None].to(tl.int64) * n + rn[None, :]
    tl.store(out_ptrs, acc, mask=m_ok & n_ok)


@triton.jit
def _matmul_kernel(a, b, out, m, n, k, a_offset, stride_ab, stride_am, stride_ak,
                   b_offset, stride_bb, stride_bk, stride_bn,
                   PRECISION: tl.constexpr, EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                   PERSISTENT: tl.constexpr):
    # out[t, i, j] = sum_l A[t, i, l] B[t, l, j]; grid (programs, batch): one program per output
    # tile, or (PERSISTENT) one per multiprocessor striding over the tiles in a loop nest the
    # compiler flattens into one pipeline, so a tile's epilogue overlaps the next tile's loads.
    batch = tl.program_id(1).to(tl.int64)
    if PERSISTENT:
        tiles = tl.cdiv(m, BLOCK_M) * tl.cdiv(n, BLOCK_N)
        for tile in tl.range(tl.program_id(0), tiles, tl.num_programs(0), flatten=True):
            _matmul_tile(a, b, out, m, n, k, tile, batch, a_offset, stride_ab, stride_am,
                         stride_ak, b_offset, stride_bb, stride_bk, stride_bn, PRECISION, EVEN_K,
                         BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
    else:
        _matmul_tile(a, b, out, m, n, k, tl.program_id(0), batch, a_offset, stride_ab, stride_am,
                     stride_ak, b_offset, stride_bb, stride_bk, stride_bn, PRECISION, EVEN_K,
                     BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)


_matmul_even_k = triton.heuristics(
    {"EVEN_K": lambda args: args["k"] % args["BLOCK_K"] == 0})(_matmul_kernel)
# Unit strides are part of the key: an operand's layout changes which tile shape wins.
_AUTOTUNED = {p: triton.autotune(configs=matmul_configs(p),
                                 key=["m", "n", "k", "stride_ak", "stride_bk"])(_matmul_even_k)
              for p in PRECISIONS}


def _tile_grid(m, n, batch, sm_count):
    def grid(meta):
        tiles = cdiv(m, meta["BLOCK_M"]) * cdiv(n, meta["BLOCK_N"])
        return (min(tiles, sm_count or tiles) if meta["PERSISTENT"] else tiles, batch)
    return grid


def check_args(a, b, out, batch, m, k, n, a_offset, a_strides, b_offset, b_strides):
    """Raise naming the problem unless the sizes are valid and both views and `out` fit their
    buffers (also called by the cuda device before it copies an operand)."""
    if min(batch, m, k, n) < 0:
        raise ValueError(f"matmul: negative size in batch={batch}, m={m}, k={k}, n={n}")
    check_strided("matmul a", a, (batch, m, k), a_strides, a_offset)
    check_strided("matmul b", b, (batch, k, n), b_strides, b_offset)
    check_buffer("matmul out", out, batch * m * n)


def matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, precision="ieee",
           sm_count=None):
    """out (batch, m, n) compact = A @ B with A[t, i, l] = a[a_offset + t*a_batch_stride +
    i*a_row_stride + l*a_col_stride] and B alike; see engine/backend/protocol.py. `sm_count`
    (the GPU's multiprocessors) sizes the grid of persistent configurations."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown matmul precision {precision!r}; choose one of {PRECISIONS}")
    check_args(a, b, out, batch, m, k, n, a_offset, (a_batch_stride, a_row_stride, a_col_stride),
               b_offset, (b_batch_stride, b_row_stride, b_col_stride))
    if batch * m * n == 0:
        return
    for first in range(0, batch, MAX_GRID_BATCH):
        chunk = min(MAX_GRID_BATCH, batch - first)
        args = (a, b, out[first * m * n:], m, n, k,
                a_offset + first * a_batch_stride, a_batch_stride, a_row_stride, a_col_stride,
                b_offset + first * b_batch_stride, b_batch_stride, b_row_stride, b_col_stride)
        if interpreting() or m * n * k >= AUTOTUNE_MIN_WORK:
            _AUTOTUNED[precision][_tile_grid(m, n, chunk, sm_count)](*args, PRECISION=precision)
        else:
            config = small_config()
            _matmul_even_k[_tile_grid(m, n, chunk, sm_count)](
                *args, PRECISION=precision, num_warps=config.num_warps,
                num_stages=config.num_stages, **config.kwargs)
