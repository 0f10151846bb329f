"""Batched matrix multiply (kernel layer): a blocked kernel with grouped program ordering, explicit
(batch, row, col) strides for both operands so transposed or broadcast views need no copy, masks
for every shape and fp32 accumulation. Precision "ieee" (default), "tf32" or "tf32x3" is a
compile-time choice; autotune configurations come from `matmul_configs`, some of them (TF32) loading
tiles by tensor descriptor (TMA) where both operands allow it; TF32 takes an operand that is not
K-major through registers (matmul_layouts.py).
"""

import functools

import triton
import triton.language as tl

from . import matmul_layouts, matmul_plans
from .common import (
    AUTOTUNE_CACHE,
    MAX_GRID_BATCH,
    cdiv,
    check_buffer,
    check_strided,
    grouped_tile,
    interpreting,
    round_to_tf32,
)
from .compile_ahead import autotune
from .ewise import _dropout_hash, check_dropout
from .launch import launch
from .matmul_layouts import (
    oriented,
    register_a,
    tma_layout,
    use_descriptor_scratch,
    warp_specialized,
)
from .matmul_plans import epilogue_args

PRECISIONS = ("ieee", "tf32", "tf32x3")
# Problems below this many multiply-adds take one fixed configuration: autotuning every small
# shape of a training run would cost more than it saves.
AUTOTUNE_MIN_WORK = 1 << 24


def _config(bm, bn, bk, group, warps, stages, persistent=False, tma=False, split=False,
            ws=False):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group,
                          "PERSISTENT": persistent, "TMA": tma, "SPLIT_EPILOGUE": split,
                          "WARP_SPECIALIZE": ws},
                         num_warps=warps, num_stages=stages)


def matmul_configs(precision):
    """Autotune candidates: exactly one small tile under the interpreter, several on a GPU (tensor
    core tiles for tf32*, with TMA loads for tf32, FMA-friendly tiles for IEEE fp32)."""
    if interpreting():
        return [_config(16, 16, 16, 2, 1, 1)]
    if precision == "ieee":
        # 128x256x16 w8 s2 was one too: it spills accumulators inside the K loop (3 local loads
        # a step at 1024^3, 38 without the sizes' divisibility; sm_90 SASS, bench/gpu_sass_loops)
        # and won none of the H100's ten IEEE rows (bench/results/gpu_check_h100.txt), while
        # costing each new process its compiles.
        return [_config(128, 128, 16, 8, 8, 3), _config(128, 128, 32, 8, 8, 2),
                _config(128, 64, 32, 8, 4, 3), _config(64, 128, 32, 8, 4, 3),
                _config(64, 64, 32, 8, 4, 4)]
    tensor_core = [_config(128, 256, 32, 8, 8, 3), _config(256, 128, 32, 8, 8, 3),
                   _config(128, 256, 32, 8, 8, 4), _config(256, 128, 32, 8, 8, 4),
                   _config(128, 128, 32, 8, 8, 4), _config(128, 128, 32, 8, 4, 4),
                   _config(128, 128, 64, 8, 8, 3), _config(128, 64, 32, 8, 4, 4),
                   _config(64, 128, 32, 8, 4, 4), _config(64, 64, 32, 8, 4, 4),
                   _config(256, 128, 32, 8, 8, 3, True), _config(128, 256, 32, 8, 8, 2, True),
                   _config(128, 128, 32, 8, 8, 4, True)]
    if precision == "tf32x3":
        return tensor_core
    # Tensor-descriptor (TMA) loads, used when both operands are 16-byte aligned (see
    # `tma_layout`); they fit an H100's 227 KB of shared memory (bench/gpu_compile_check.py).
    # TF32 only: each configuration costs every new process a compile per operand layout, and
    # tf32x3 (three products per tile) has no speed target to buy with it. The last stores its
    # persistent 128x256 tile in two halves: the epilogue's layout conversion then needs half the
    # scratch, which leaves room for a third pipeline stage (about 213 KB of shared memory, where
    # the unsplit tile needs 279 KB, over sm_90's 227 KB). Its pointer-load twin is not a
    # candidate until measured (bench/gpu_overhead_probe.py times it): every new TMA kernel meets
    # hardware first in the GPU check's canary, which a pointer kernel would bypass. The last three
    # warp-specialize the K loop where it compiles (matmul_layouts.warp_specialized): 4 warps
    # issue the loads while 8 more run wgmma (384 threads), the way CUTLASS's fastest Hopper
    # kernels are built; the best software-pipelined tile (pointer loads) reached 0.81 of cuBLAS
    # on K-major operands (bench/results/gpu_overhead_h100.json). Before them comes one more
    # pointer-load tile, for the register path (an operand that is not K-major, see
    # matmul_layouts.py): a 64-wide K step halves the loop's waits per multiply-add there, in 246
    # registers without spills and 160 KB of shared memory on sm_90 (bench/gpu_ir_probe.py); on
    # K-major operands it measured 0.65 of cuBLAS and should lose.
    return tensor_core + [
        _config(128, 256, 64, 8, 8, 2),
        _config(128, 256, 32, 8, 8, 3, tma=True), _config(128, 256, 32, 8, 8, 4, tma=True),
        _config(256, 128, 32, 8, 8, 3, tma=True), _config(256, 128, 32, 8, 8, 3, True, True),
        _config(128, 128, 32, 8, 8, 4, True, True),
        _config(128, 256, 32, 8, 8, 3, True, True, split=True),
        _config(256, 128, 32, 8, 4, 3, tma=True, ws=True),
        _config(128, 256, 32, 8, 4, 2, tma=True, ws=True),
        _config(128, 128, 32, 8, 4, 4, tma=True, ws=True)]


@functools.cache
def small_config():
    """The fixed configuration of small problems (and of everything under the interpreter); made
    once: small products are the host-bound ones, and a Config costs a microsecond to build."""
    if interpreting():
        return matmul_configs("ieee")[0]
    return _config(64, 64, 32, 8, 4, 3)


@triton.jit
def _descriptor(base, rows, cols, row_stride, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    return tl.make_tensor_descriptor(base, [rows, cols], [row_stride, 1], [BLOCK_ROWS, BLOCK_COLS])


@triton.jit
def _matmul_tile(a, b, out, gate, bias, threshold, scale, seed, first, m, n, k, tile, batch,
                 a_offset, stride_ab, stride_am, stride_ak, b_offset, stride_bb, stride_bk,
                 stride_bn, PRECISION: tl.constexpr, EVEN_K: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 GROUP_M: tl.constexpr, TMA_LAYOUT: tl.constexpr, SPLIT_EPILOGUE: tl.constexpr,
                 REGISTER_A: tl.constexpr, TRANSPOSED_OUT: tl.constexpr,
                 WARP_SPECIALIZE: tl.constexpr,
                 GATED: tl.constexpr, RELU: tl.constexpr, BIASED: tl.constexpr,
                 DROPOUT: tl.constexpr):
    # With a TMA_LAYOUT, `a` and `b` are tensor descriptors of this batch's operands, each over
    # its matrix or its transpose, whichever has unit column stride ("k" or "m" for A, "k" or
    # "n" for B): the copy engine fetches whole tiles and fills the out-of-bounds part with zeros,
    # so neither addresses nor masks are computed per element.
    pid_m, pid_n = grouped_tile(tile, m, n, BLOCK_M, BLOCK_N, GROUP_M)
    # Edge masks rather than wrapping indices (% m) keep rm/rn provably contiguous, so loads along
    # a unit-stride dimension vectorize.
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm[:, None] < m
    n_ok = rn[None, :] < n
    rk = tl.arange(0, BLOCK_K)
    if TMA_LAYOUT == "":
        a_ptrs = (a + a_offset + batch * stride_ab + rm[:, None].to(tl.int64) * stride_am
                  + rk[None, :] * stride_ak)
        b_ptrs = (b + b_offset + batch * stride_bb + rk[:, None] * stride_bk
                  + rn[None, :].to(tl.int64) * stride_bn)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for kb in tl.range(0, tl.cdiv(k, BLOCK_K), warp_specialize=WARP_SPECIALIZE):
        if TMA_LAYOUT != "":
            a_tile, b_tile = _tma_tiles(a, b, pid_m * BLOCK_M, pid_n * BLOCK_N, kb * BLOCK_K,
                                        TMA_LAYOUT)
        elif EVEN_K:
            a_tile = tl.load(a_ptrs, mask=m_ok, other=0.0)
            b_tile = tl.load(b_ptrs, mask=n_ok, other=0.0)
        else:
            k_left = k - kb * BLOCK_K
            a_tile = tl.load(a_ptrs, mask=m_ok & (rk[None, :] < k_left), other=0.0)
            b_tile = tl.load(b_ptrs, mask=n_ok & (rk[:, None] < k_left), other=0.0)
        if REGISTER_A:
            # TF32 wgmma reads shared tiles only K-major but takes A from registers in any
            # layout. An elementwise step between load and dot makes the compiler feed A from
            # registers, so an A tile that is not K-major arrives by 16-byte async copies as
            # stored, instead of 4 bytes at a time into a turned-round shared tile.
            a_tile = round_to_tf32(a_tile)
        acc = tl.dot(a_tile, b_tile, acc, input_precision=PRECISION)
        if TMA_LAYOUT == "":
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
    if TRANSPOSED_OUT:
        row_starts = batch * m * n + rm[:, None]
    else:
        row_starts = batch * m * n + rm[:, None].to(tl.int64) * n
    # A gate loaded beside a large accumulator spills (sm_90 ptxas: a 128x256 TF32 tile, 248
    # bytes a thread), and so does dropout's hash (32 bytes); stored one column half at a time,
    # they do not. Triton 3.6's warp specialization fails to compile the split with a gate.
    if SPLIT_EPILOGUE or ((GATED or DROPOUT) and not WARP_SPECIALIZE
                          and BLOCK_M * BLOCK_N >= 128 * 128):
        _store_halves(out, row_starts, gate, bias, rm[:, None], acc, m_ok, pid_n * BLOCK_N, m, n,
                      threshold, scale, seed, first, BLOCK_M, BLOCK_N, TRANSPOSED_OUT, GATED,
                      RELU, BIASED, DROPOUT)
    else:
        _store_columns(out, row_starts, gate, bias, rm[:, None], acc, m_ok, rn, m, n, threshold,
                       scale, seed, first, TRANSPOSED_OUT, GATED, RELU, BIASED, DROPOUT)


@triton.jit
def _store_columns(out, row_starts, gate, bias, rm, values, m_ok, rn, m, n, threshold, scale,
                   seed, first, TRANSPOSED_OUT: tl.constexpr, GATED: tl.constexpr,
                   RELU: tl.constexpr, BIASED: tl.constexpr, DROPOUT: tl.constexpr):
    # Columns rn of rows rm (a column vector) of the tile whose rows start `row_starts` elements
    # into out; with TRANSPOSED_OUT the (m, n) result lands transposed, column j of the tile at
    # element j * m (see matmul_layouts.oriented). An element's offset is its index in the
    # result as laid out. The epilogues, in the protocol's order: BIASED adds the bias of the
    # result's column (the tile's row when transposed); DROPOUT draws its mask from the index
    # (plus `first`, the chunk's first element), as the elementwise kernel does; the gate is
    # laid out as the result, and GATED zeroes the
    # elements whose gate is <= 0 (ReLU's gradient; a NaN gate passes the product on); RELU
    # applies ReLU as the elementwise kernel does (a NaN stays NaN).
    mask = m_ok & (rn[None, :] < n)
    if TRANSPOSED_OUT:
        offsets = row_starts + rn[None, :].to(tl.int64) * m
    else:
        offsets = row_starts + rn[None, :]
    if BIASED:
        if TRANSPOSED_OUT:
            values = values + tl.load(bias + rm, mask=m_ok, other=0.0)
        else:
            values = values + tl.load(bias + rn[None, :], mask=rn[None, :] < n, other=0.0)
    if DROPOUT:
        index = first + offsets
        keep = (_dropout_hash(seed, index) >> tl.full([], 8, tl.uint32)).to(tl.int32) >= threshold
        values = tl.where(keep, values * scale, 0.0)
    if GATED:
        values = tl.where(tl.load(gate + offsets, mask=mask, other=1.0) <= 0.0, 0.0, values)
    if RELU:
        values = tl.maximum(values, 0.0, propagate_nan=tl.PropagateNan.ALL)
    tl.store(out + offsets, values, mask=mask)


@triton.jit
def _store_halves(out, row_starts, gate, bias, rm, acc, m_ok, col, m, n, threshold, scale, seed,
                  first, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  TRANSPOSED_OUT: tl.constexpr,
                  GATED: tl.constexpr, RELU: tl.constexpr, BIASED: tl.constexpr,
                  DROPOUT: tl.constexpr):
    # Columns [0, BLOCK_N/2) and [BLOCK_N/2, BLOCK_N) of the tile, converted and stored one after
    # the other.
    left, right = tl.split(tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1)))
    rn = col + tl.arange(0, BLOCK_N // 2)
    _store_columns(out, row_starts, gate, bias, rm, left, m_ok, rn, m, n, threshold, scale, seed,
                   first, TRANSPOSED_OUT, GATED, RELU, BIASED, DROPOUT)
    _store_columns(out, row_starts, gate, bias, rm, right, m_ok, rn + BLOCK_N // 2, m, n,
                   threshold, scale, seed, first, TRANSPOSED_OUT, GATED, RELU, BIASED, DROPOUT)


@triton.jit
def _tma_tiles(a, b, row, col, depth, TMA_LAYOUT: tl.constexpr):
    # A tile stored transposed (M- or N-major) comes back transposed: an A tile then reaches
    # wgmma through registers (REGISTER_A), a B tile is turned round in shared memory by the
    # compiler, tile by tile, instead of the whole operand being copied first.
    if TMA_LAYOUT == "kk" or TMA_LAYOUT == "kn":
        a_tile = a.load([row, depth])
    else:
        a_tile = a.load([depth, row]).T
    if TMA_LAYOUT == "kk" or TMA_LAYOUT == "mk":
        b_tile = b.load([col, depth]).T
    else:
        b_tile = b.load([depth, col])
    return a_tile, b_tile


# Dropout's seed and threshold stay plain int32 arguments (as in the elementwise kernel): a launch
# would otherwise specialize a value of 1 or a multiple of 16, compiling variants per seed.
@triton.jit(do_not_specialize=["threshold", "seed", "first"])
def _matmul_kernel(a, b, out, m, n, k, a_offset, stride_ab, stride_am, stride_ak,
                   b_offset, stride_bb, stride_bk, stride_bn, gate, bias, threshold, scale, seed,
                   first,
                   PRECISION: tl.constexpr, EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                   PERSISTENT: tl.constexpr, TMA: tl.constexpr, TMA_LAYOUT: tl.constexpr,
                   SPLIT_EPILOGUE: tl.constexpr, REGISTER_A: tl.constexpr,
                   TRANSPOSED_OUT: tl.constexpr, WARP_SPECIALIZE: tl.constexpr,
                   GATED: tl.constexpr, RELU: tl.constexpr, BIASED: tl.constexpr,
                   DROPOUT: tl.constexpr):
    # out[t, i, j] = sum_l A[t, i, l] B[t, l, j], plus bias[j] when BIASED, through dropout when
    # DROPOUT, zeroed where gate[t, i, j] <= 0 when GATED, then through ReLU when RELU (`gate`
    # and `bias` are read only when asked for); grid (programs, batch): one program per output
    # tile, or (PERSISTENT) one per multiprocessor striding over the tiles in a loop nest the
    # compiler flattens into one pipeline, so a tile's epilogue overlaps the next tile's loads.
    # A TMA configuration on operands that descriptors cannot address (TMA_LAYOUT "") runs as
    # its pointer-load twin, so a cached autotune choice is never wrong, only slower.
    LAYOUT: tl.constexpr = TMA_LAYOUT if TMA else ""
    batch = tl.program_id(1).to(tl.int64)
    a_src = a
    b_src = b
    if LAYOUT == "kk" or LAYOUT == "kn":
        a_src = _descriptor(a + a_offset + batch * stride_ab, m, k, stride_am, BLOCK_M, BLOCK_K)
    if LAYOUT == "mk" or LAYOUT == "mn":
        a_src = _descriptor(a + a_offset + batch * stride_ab, k, m, stride_ak, BLOCK_K, BLOCK_M)
    if LAYOUT == "kk" or LAYOUT == "mk":
        b_src = _descriptor(b + b_offset + batch * stride_bb, n, k, stride_bn, BLOCK_N, BLOCK_K)
    if LAYOUT == "kn" or LAYOUT == "mn":
        b_src = _descriptor(b + b_offset + batch * stride_bb, k, n, stride_bk, BLOCK_K, BLOCK_N)
    if PERSISTENT:
        tiles = tl.cdiv(m, BLOCK_M) * tl.cdiv(n, BLOCK_N)
        for tile in tl.range(tl.program_id(0), tiles, tl.num_programs(0), flatten=True):
            _matmul_tile(a_src, b_src, out, gate, bias, threshold, scale, seed, first, m, n, k,
                         tile, batch, a_offset, stride_ab, stride_am, stride_ak, b_offset,
                         stride_bb, stride_bk, stride_bn, PRECISION, EVEN_K, BLOCK_M, BLOCK_N,
                         BLOCK_K, GROUP_M, LAYOUT, SPLIT_EPILOGUE, REGISTER_A, TRANSPOSED_OUT,
                         WARP_SPECIALIZE, GATED, RELU, BIASED, DROPOUT)
    else:
        _matmul_tile(a_src, b_src, out, gate, bias, threshold, scale, seed, first, m, n, k,
                     tl.program_id(0), batch, a_offset, stride_ab, stride_am, stride_ak, b_offset,
                     stride_bb, stride_bk, stride_bn, PRECISION, EVEN_K, BLOCK_M, BLOCK_N,
                     BLOCK_K, GROUP_M, LAYOUT, SPLIT_EPILOGUE, REGISTER_A, TRANSPOSED_OUT,
                     WARP_SPECIALIZE, GATED, RELU, BIASED, DROPOUT)


def timed_on(config, layout):
    """Whether the autotuner times `config` on operands loaded as `layout` ("" where descriptors
    cannot address them): there, a TMA configuration would run as its pointer-load twin, and the
    pointer-load configurations are that case's candidates; a warp-specialized one only where it
    gets warp specialization (its plain twin, 4 warps on a large tile, would spill)."""
    if not layout:
        return not config.kwargs["TMA"]
    return not config.kwargs["WARP_SPECIALIZE"] or warp_specialized(config.kwargs, layout)


def _tma_fallback(configs, named_args, **kwargs):
    """Autotune pruning to the configurations `timed_on` the layout. With none left, all run: TMA
    ones as pointer loads and warp-specialized ones plain, as the heuristics normalise them."""
    return [c for c in configs if timed_on(c, kwargs.get("TMA_LAYOUT", ""))] or configs


# Heuristics run after the autotune key is taken, in this order. Pointer-load configurations ignore
# the layout and TMA ones the K remainder (the copy engine pads it), so both are normalised: each
# variant is compiled once, not once per layout or remainder seen. Warp specialization follows
# the normalised layout.
_matmul_even_k = triton.heuristics(
    {"TMA_LAYOUT": lambda args: args["TMA_LAYOUT"] if args["TMA"] else "",
     "EVEN_K": lambda args: bool(args["TMA_LAYOUT"]) or args["k"] % args["BLOCK_K"] == 0,
     "WARP_SPECIALIZE": lambda args: warp_specialized(args, args["TMA_LAYOUT"])})(
         _matmul_kernel)
# Unit strides, the TMA layout, the register path and the swap are part of the key: an operand's
# layout changes which tile shape wins. So do the gate and dropout: loaded or hashed in the
# accumulator's layout, each holds registers per element of the tile in the epilogue (large tiles
# store in halves for them). The precision too, though each has its own autotuner: choices
# persist on disk (AUTOTUNE_CACHE) under a key of the kernel's source, the tuning key and the
# candidates, which is all that tells the precisions, or the register path's switch, apart.
_TUNING = {p: autotune(_matmul_even_k, configs=matmul_configs(p),
                       key=["m", "n", "k", "stride_ak", "stride_bk", "TMA_LAYOUT",
                            "TRANSPOSED_OUT", "GATED", "DROPOUT", "PRECISION", "REGISTER_A"],
                       prune_configs_by={"early_config_prune": _tma_fallback},
                       cache_results=AUTOTUNE_CACHE)
           for p in PRECISIONS}
_AUTOTUNED = {p: tuning.autotuner for p, tuning in _TUNING.items()}


def run_config(config, grid, args, precision, layout, transposed, register=None, gate=None,
               relu=False, bias=None, dropout=None, first=0):
    """Launch the kernel on `args` (as `matmul` builds them) with exactly `config`, setting what
    the autotuner's heuristics would; `layout` applies to a TMA configuration only. `register`
    True or False forces A through registers (rounded to TF32) or not, for measurements; None
    leaves it to `register_a`. The epilogues: `bias` (a buffer of the result's columns) is added,
    `dropout` (threshold, scale, seed; elements indexed from `first`) drops, `gate` (a buffer laid
    out as the result) gates, `relu` applies ReLU. Returns
    Triton's compiled kernel, whose n_regs and n_spills a launch on a GPU fills in."""
    kwargs = _keywords(config, args, precision, layout, transposed, register, gate, relu, bias,
                       dropout)
    _LAST["config"] = config
    return launch(_matmul_kernel, grid(config.kwargs),
                  (*args, *epilogue_args(args[2], gate, bias, dropout, first)), kwargs)


def _keywords(config, args, precision, layout, transposed, register, gate, relu, bias, dropout):
    """The kernel's keyword arguments for `run_config`'s launch."""
    layout = layout if config.kwargs["TMA"] else ""
    k, stride_ak = args[5], args[9]
    if register is None:
        register = register_a(precision, stride_ak)
    meta = config.kwargs
    # The options as the autotuner passes them (num_ctas too): Triton's cache keys on them, so a
    # launch of an autotuned choice reuses the kernel its timing compiled.
    keywords = {"PRECISION": precision, "EVEN_K": bool(layout) or k % meta["BLOCK_K"] == 0,
                "TMA_LAYOUT": layout, "REGISTER_A": register, "TRANSPOSED_OUT": transposed,
                "GATED": gate is not None, "RELU": relu, "BIASED": bias is not None,
                "DROPOUT": dropout is not None, **config.all_kwargs()}
    if meta["WARP_SPECIALIZE"]:
        keywords["WARP_SPECIALIZE"] = warp_specialized(meta, layout)
    return keywords


# The configuration each autotune key chose, by a finer key of our own (every size, stride and
# offset of the launch, which holds the autotuner's). After a key's first launch the kernel is
# called with its configuration directly: the autotuner builds a dictionary of all arguments and a
# dtype string per buffer on every call, a fifth of a small product's host time on an H100
# (bench/results/gpu_overhead_h100.json). Bounded, since offsets vary with the views multiplied.
_CHOSEN = {}
_CHOSEN_LIMIT = 4096
_LAST = {"config": None}


def last_config():
    """The configuration of the latest product that ran the matmul kernel (None before one): what
    the autotuner chose for it, or the fixed small-problem one."""
    return _LAST["config"]


def _autotuned_launch(grid, args, gate, relu, bias, dropout, first, precision, layout,
                      transposed):
    autotuner = _AUTOTUNED[precision]
    key = (precision, layout, transposed, gate is None, dropout is None, args[0].dtype,
           *args[3:])
    # A choice stands while the candidates it was chosen from do (tests replace the list).
    chosen = _CHOSEN.get(key)
    if chosen is not None and chosen[0] is autotuner.configs:
        run_config(chosen[1], grid, args, precision, layout, transposed, gate=gate, relu=relu,
                   bias=bias, dropout=dropout, first=first)
        return
    autotuner.best_config = None  # set again by a run that chose (tools may stand in for one)
    _TUNING[precision].launch(
        grid, (*args, *epilogue_args(args[2], gate, bias, dropout, first)),
        {"PRECISION": precision, "TMA_LAYOUT": layout, "TRANSPOSED_OUT": transposed,
         "GATED": gate is not None, "RELU": relu, "BIASED": bias is not None,
         "DROPOUT": dropout is not None, "REGISTER_A": register_a(precision, args[9])})
    config = _LAST["config"] = autotuner.best_config
    if config is not None:
        if len(_CHOSEN) >= _CHOSEN_LIMIT:
            _CHOSEN.clear()
        _CHOSEN[key] = (autotuner.configs, config)


def _tile_grid(m, n, batch, sm_count):
    def grid(meta):
        tiles = cdiv(m, meta["BLOCK_M"]) * cdiv(n, meta["BLOCK_N"])
        return (min(tiles, sm_count or tiles) if meta["PERSISTENT"] else tiles, batch)
    return grid


def check_args(a, b, out, batch, m, k, n, a_offset, a_strides, b_offset, b_strides, gate=None,
               bias=None):
    """Raise naming the problem unless the sizes are valid and both views, `out`, the gate and the
    bias (when given) fit their buffers (also called by the cuda device before it copies an
    operand). Returns the elements the views of A and B need their buffers to hold."""
    if min(batch, m, k, n) < 0:
        raise ValueError(f"matmul: negative size in batch={batch}, m={m}, k={k}, n={n}")
    a_needs = check_strided("matmul a", a, (batch, m, k), a_strides, a_offset)
    b_needs = check_strided("matmul b", b, (batch, k, n), b_strides, b_offset)
    check_buffer("matmul out", out, batch * m * n)
    if gate is not None:
        check_buffer("matmul gate", gate, batch * m * n)
    if bias is not None:
        check_buffer("matmul bias", bias, n)
    return a_needs, b_needs


def matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, gate=None, relu=False,
           bias=None, dropout=None, precision="ieee", sm_count=None):
    """out (batch, m, n) compact = A @ B with A[t, i, l] = a[a_offset + t*a_batch_stride +
    i*a_row_stride + l*a_col_stride] and B alike, with the epilogues `bias` (n elements, added to
    every row), `dropout` ((threshold, scale, seed), as ewise_dropout), `gate` (compact,
    batch * m * n: zeroed where it is <= 0) and `relu`, in that order; see
    engine/backend/protocol.py. `sm_count`
    (the GPU's multiprocessors) sizes the grid of persistent configurations."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown matmul precision {precision!r}; choose one of {PRECISIONS}")
    # The layout switches too: tools and tests change them (read at import otherwise).
    plan_key = (precision, batch, m, k, n, a_offset, a_batch_stride, a_row_stride, a_col_stride,
                b_offset, b_batch_stride, b_row_stride, b_col_stride, gate is None, relu,
                bias is None, dropout is None, sm_count, matmul_layouts.REGISTER_A_ALLOWED,
                matmul_layouts.WARP_SPECIALIZE_ALLOWED)
    plan = matmul_plans.PLANS.get(plan_key)
    if plan is not None and matmul_plans.launch_planned(plan, a, b, out, gate, bias, dropout):
        _LAST["config"] = small_config()
        return
    a_strides = (a_batch_stride, a_row_stride, a_col_stride)
    b_strides = (b_batch_stride, b_row_stride, b_col_stride)
    needs = check_args(a, b, out, batch, m, k, n, a_offset, a_strides, b_offset, b_strides, gate,
                       bias)
    if dropout is not None:
        check_dropout(batch * m * n, *dropout)
    if batch * m * n == 0:
        return
    size, columns = batch * m * n, n
    a, b, m, n, a_offset, a_strides, b_offset, b_strides, transposed = oriented(
        precision, a, b, m, n, a_offset, a_strides, b_offset, b_strides)
    for first in range(0, batch, MAX_GRID_BATCH):
        chunk = min(MAX_GRID_BATCH, batch - first)
        args = (a, b, out[first * m * n:], m, n, k, a_offset + first * a_strides[0], *a_strides,
                b_offset + first * b_strides[0], *b_strides)
        chunk_gate = None if gate is None else gate[first * m * n:]
        grid = _tile_grid(m, n, chunk, sm_count)
        if interpreting() or m * n * k >= AUTOTUNE_MIN_WORK:
            # Only tf32 has TMA configurations (see `matmul_configs`).
            layout = "" if precision != "tf32" else tma_layout(
                a, b, m, k, n, args[6], args[7:10], args[10], args[11:14])
            if layout:
                use_descriptor_scratch(out)
            _autotuned_launch(grid, args, chunk_gate, relu, bias, dropout, first * m * n,
                              precision, layout, transposed)
        else:
            # The heuristics' values are known here: calling the kernel itself skips their
            # per-launch argument dictionaries (small products are the host-bound ones).
            config = small_config()
            run_config(config, grid, args, precision, "", transposed, gate=chunk_gate, relu=relu,
                       bias=bias, dropout=dropout, first=first * m * n)
            if batch <= MAX_GRID_BATCH:  # one chunk: a plan launches it whole
                matmul_plans.remember(plan_key, _matmul_kernel, needs, size, columns, transposed,
                                      args[3:], grid(config.kwargs),
                                      _keywords(config, args, precision, "", transposed, None,
                                                chunk_gate, relu, bias, dropout))
