"""Compile every Triton kernel variant (each op, rank, precision and autotune configuration) for an
H100 (sm_90) on a machine without a GPU: catches what the interpreter cannot (type errors, tl.dot
constraints, shared-memory overflow at ptxas time, 64-bit integer divisions). Bench layer; usage:
    python bench/gpu_compile_check.py [--quick]
"""

import argparse
import itertools
import os
import re
import sys
import time

POINTERS = {"a", "b", "out", "gate", "src", "dst", "x", "w", "gy", "gx", "partial", "z", "labels",
            "g", "stats", "xhat", "row", "weight", "bias", "weight_grad", "bias_grad",
            "running"}
# Pointers to another element type than float32.
TYPED_POINTERS = {"table": "*i64"}
FLOATS = ("value", "eps", "alpha", "beta", "scale", "weight_decay", "keep", "take", "step",
          "lookback", "keep1", "take1", "keep2", "take2")


def int64_divisions_allowed(fn, constexprs):
    """How many 64-bit integer divisions (div/rem .s64/.u64 in the PTX) a variant may hold: each
    is a call of about 90 instructions on sm_90, and per element they cost nearly as much as the
    work (the conv weight gradient's loop once spent three quarters as many instructions in them
    as in its multiply-adds). Only the paths for indices past int32 divide in 64 bits (None: any
    number), and the row kernel once per program, for its block's first column."""
    if constexprs.get("WIDE") or constexprs.get("WIDE_ROW"):
        return None
    return 1 if fn.__name__ == "_row_kernel" else 0


def _aligned(fn):
    """Part of the specialization a launch on fresh buffers with matrix sizes divisible by 16
    gets (torch allocations are 16-byte aligned, and Triton marks such arguments; real launches
    also mark strides and specialise unit ones). Shared-memory sizes depend on it: vector widths
    change the epilogue's layout conversion. bench/gpu_ir_probe.py uses the exact one."""
    return {(i,): [["tt.divisibility", 16]] for i, param in enumerate(fn.params)
            if param.name in POINTERS or param.name in TYPED_POINTERS
            or param.name in ("m", "n", "k", "group_stride", "member_stride")}


def _signature(fn, constexprs, int64=(), floats=FLOATS):
    signature = {}
    for param in fn.params:
        name = param.name
        # A plain argument among the constexprs is one a launch specializes (a unit stride).
        if param.is_constexpr or name in constexprs:
            signature[name] = "constexpr"
        elif name in POINTERS:
            signature[name] = "*fp32"
        elif name in TYPED_POINTERS:
            signature[name] = TYPED_POINTERS[name]
        elif name in floats:
            signature[name] = "fp32"
        else:
            wide = name in ("offset", "a_offset", "b_offset") or name in int64
            signature[name] = "i64" if wide else "i32"
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in constexprs]
    if missing:
        raise ValueError(f"{fn.__name__}: constexprs {missing} not given")
    return signature


def _matmul_operand_variants(precision, config):
    """(TMA layout, REGISTER_A, TRANSPOSED_OUT, WARP_SPECIALIZE) of every way the autotuner runs
    `config` on operands stored in each layout, with ENGINE_MATMUL_REGISTER_A on and off: TF32
    feeds an A that is not K-major through registers and swaps a K-major A with an N-major B
    (kernels_triton/matmul_layouts.py `oriented`); a warp-specialized configuration runs only
    where it gets that (`timed_on`)."""
    from kernels_triton import matmul_layouts

    if precision != "tf32":
        return [("", False, False, False)]
    found = []
    allowed = matmul_layouts.REGISTER_A_ALLOWED
    try:
        for matmul_layouts.REGISTER_A_ALLOWED in (True, False):
            found += [v for v in _stored_variants(config) if v not in found]
    finally:
        matmul_layouts.REGISTER_A_ALLOWED = allowed
    return found


def _stored_variants(config):
    import torch

    from bench.gpu_common import tf32_stored_view
    from kernels_triton import matmul, matmul_layouts

    found = []
    for stored in matmul_layouts.TMA_LAYOUTS:
        product, loads = tf32_stored_view(stored, torch.empty(32 * 16), torch.empty(16 * 48),
                                          32, 16, 48)
        layout = loads if config.kwargs["TMA"] else ""
        if not matmul.timed_on(config, loads):
            continue
        variant = (layout, matmul_layouts.register_a("tf32", product[5][2]), product[8],
                   matmul_layouts.warp_specialized(config.kwargs, layout))
        if variant not in found:
            found.append(variant)
    return found


def variants(quick):
    from kernels_triton import (
        conv,
        ewise,
        loss,
        matmul,
        memory,
        norm,
        optim,
        pool,
        pool_avg,
        reduce,
        transpose,
    )

    for rank in range(memory.MAX_RANK + 1):
        for mode, wide in itertools.product(("gather", "scatter", "fill"), (False, True)):
            # A view past int32 indices has a size the launch passes as i64.
            yield memory._strided_kernel, {"MODE": mode, "RANK": rank, "WIDE": wide,
                                           "BLOCK": 1024, "_int64": ("size",) if wide else ()}
    yield memory._fill_kernel, {"BLOCK": 1024}
    for op in ewise.BINARY_OPS + ewise.GATE_OPS:
        yield ewise._ewise_kernel, {"OP": op, "BLOCK": 1024}
    yield ewise._add_scaled_kernel, {"BLOCK": 1024}
    yield ewise._axpby_kernel, {"BLOCK": 1024}
    # Launched with seed and threshold as unspecialized i32 (ewise.seed_bits), scale fp32.
    yield ewise._dropout_kernel, {"BLOCK": 1024}
    for decay, momentum, lookback, aligned in itertools.product((False, True), repeat=4):
        if momentum or not lookback:
            yield optim._sgd_kernel, {"DECAY": decay, "MOMENTUM": momentum, "LOOKBACK": lookback,
                                      "ALIGNED": aligned, "BLOCK": 1024}
    for decay, aligned in itertools.product((False, True), repeat=2):
        yield optim._adam_kernel, {"DECAY": decay, "ALIGNED": aligned, "BLOCK": 1024}
    for op in ewise.ROW_OPS:
        # A launch specializes a period of 1 to a constant and passes one past int32 as i64.
        for wide, specialized in ((False, {}), (False, {"period": 1}),
                                  (True, {"_int64": ("period",)})):
            yield ewise._row_kernel, {"OP": op, "WIDE_ROW": wide, "BLOCK": 1024, **specialized}
    for op in ewise.SCALAR_OPS:
        powers = (-2, -1, 0, 3) if op == "power" else (-1,)
        for power in powers:
            yield ewise._scalar_kernel, {"OP": op, "POWER": power, "INVERT": power == 3,
                                         "BLOCK": 1024}
    for op in ewise.UNARY_OPS:
        yield ewise._unary_kernel, {"OP": op, "BLOCK": 1024}
    for is_max in (False, True):
        for rows, cols in ((1, 1024), (4, 1024), (64, 64), (1, 1)):
            yield reduce._reduce_kernel, {"IS_MAX": is_max, "BLOCK_ROWS": rows,
                                          "BLOCK_COLS": cols}
    for rows, cols in ((1, 1024), (64, 64), (1, 1)):
        yield reduce._logsumexp_kernel, {"BLOCK_ROWS": rows, "BLOCK_COLS": cols}
    for kernel in (loss._softmax_xent_kernel, loss._softmax_xent_grad_kernel):
        for rows, cols in ((1, 1024), (4, 1024), (256, 16), (1, 1)):
            yield kernel, {"BLOCK_ROWS": rows, "BLOCK_COLS": cols}
    # (BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS) of norm.block_config, then of
    # norm.parameter_grad_config: per row, generic and with the unit member stride a launch on
    # compact data specializes; per column, where the configs require a unit group stride, always
    # specialized. Plain, per-group affine (batch norm) and per-member affine (layer norm); the
    # forward's batch norm also with the running statistics' update (RUNNING), and both affine
    # passes with the ReLU after the layer (RELU forward, GATED backward).
    norm_tiles = {norm._norm_forward_kernel: ((1, 1024, 1), (4, 1024, 1), (64, 64, 1), (1, 1, 1),
                                              (8, 512, 0), (32, 128, 0), (4, 1024, 0), (1, 1, 0))}
    norm_tiles[norm._norm_backward_kernel] = norm_tiles[norm._norm_forward_kernel]
    norm_tiles[norm._member_parameter_grad_kernel] = ((128, 32, 1), (4, 32, 1), (1, 1, 1),
                                                      (128, 32, 0), (4, 8, 0), (1, 1, 0))
    for kernel, tiles in norm_tiles.items():
        forms = ({"GATED": False}, {"GATED": True}) if (
            kernel is norm._member_parameter_grad_kernel) else (
            {"AFFINE": False, "PER_MEMBER": False}, {"AFFINE": True, "PER_MEMBER": False},
            {"AFFINE": True, "PER_MEMBER": True})
        if kernel is norm._norm_backward_kernel:
            # The affine backward also gated by the ReLU after the layer (GATED).
            forms = [dict(form, GATED=False) for form in forms] + [
                dict(form, GATED=True) for form in forms if form["AFFINE"]]
        if kernel is norm._norm_forward_kernel:
            forms = [dict(form, RUNNING=False, RELU=False) for form in forms] + [
                {"AFFINE": True, "PER_MEMBER": False, "RUNNING": True, "RELU": False},
                {"AFFINE": True, "PER_MEMBER": False, "RUNNING": True, "RELU": True},
                {"AFFINE": True, "PER_MEMBER": True, "RUNNING": False, "RELU": True}]
        for (groups, members, axis), form in itertools.product(tiles, forms):
            unit = ({}, {"member_stride": 1}) if axis == 1 else ({"group_stride": 1},)
            for specialized in unit:
                yield kernel, {"BLOCK_GROUPS": groups, "BLOCK_MEMBERS": members,
                               "MEMBER_AXIS": axis, **form, **specialized}
    yield conv._sum_splits_kernel, {"BLOCK": 128, "SPLIT_BLOCK": 32}
    # pool.pool_blocks: the channel block is the channel count's power of two, up to the maximum
    # (each of the few tiles compiles in well under a second, so --quick keeps them all).
    channel_blocks = [1 << i for i in range(pool.MAX_BLOCK_C.bit_length())]
    pool_kernels = (pool._forward_kernel, pool._backward_kernel, pool_avg._avg_forward_kernel,
                    pool_avg._avg_backward_kernel)
    for kernel, block_c in itertools.product(pool_kernels, channel_blocks):
        yield kernel, {"BLOCK_P": pool.TILE_ELEMENTS // block_c, "BLOCK_C": block_c,
                       "_warps": pool.TILE_WARPS}
    # A launch specializes sizes of 1 to constants: a 1x1 window at stride 1 makes the average's
    # window area a compile-time product.
    for kernel in pool_kernels[2:]:
        yield kernel, {"BLOCK_P": pool.TILE_ELEMENTS // 16, "BLOCK_C": 16, "kh": 1, "kw": 1,
                       "stride_h": 1, "stride_w": 1, "_warps": pool.TILE_WARPS}
    for rounding in (False, True):
        yield transpose._transpose_kernel, {"BLOCK_R": 64, "BLOCK_C": 64, "ROUND_TF32": rounding,
                                            "_warps": 4}
    for precision in matmul.PRECISIONS:
        configs = matmul.matmul_configs(precision) + [matmul.small_config()]
        if quick:  # the first configuration, and the first with TMA loads where there is one
            configs = configs[:1] + [c for c in configs if c.kwargs["TMA"]][:1]
        for config in configs:
            # The epilogues: GATED (a backward product fused with ReLU's gradient) loads the gate
            # where the tile is stored, which can change the epilogue's layouts and shared
            # memory; BIASED and RELU (a layer's forward, with or without its ReLU, or a ReLU
            # layer without bias) load a row or add an instruction; DROPOUT hashes each
            # element's index (a layer's forward, and the gated backward after it).
            for even_k, (layout, register_a, transposed, specialized), epilogue in \
                    itertools.product((False, True), _matmul_operand_variants(precision, config),
                                      ((False, False, False, False), (True, False, False, False),
                                       (False, True, False, False), (False, False, True, False),
                                       (False, True, True, False), (False, True, True, True),
                                       (True, False, False, True))):
                gated, relu, biased, dropout = epilogue
                yield matmul._matmul_kernel, dict(config.kwargs, PRECISION=precision,
                                                  EVEN_K=even_k, TMA_LAYOUT=layout,
                                                  REGISTER_A=register_a,
                                                  TRANSPOSED_OUT=transposed,
                                                  WARP_SPECIALIZE=specialized, GATED=gated,
                                                  RELU=relu, BIASED=biased, DROPOUT=dropout,
                                                  _warps=config.num_warps,
                                                  _stages=config.num_stages)
    for kind, kernel in conv._KERNELS.items():
        for precision in matmul.PRECISIONS:
            configs = conv.conv_configs(kind, precision)
            for config in configs[:1] if quick else configs:
                for vec in (1, 4) if config is configs[0] else (4,):
                    yield kernel, dict(config.kwargs, PRECISION=precision, VEC=vec,
                                       _warps=config.num_warps, _stages=config.num_stages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first autotune config only")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: this compiles the GPU variants")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", 90, 32)
    failures, count, start = [], 0, time.perf_counter()
    for fn, constexprs in variants(args.quick):
        options = {"num_warps": constexprs.pop("_warps", 4), "num_stages": constexprs.pop(
            "_stages", 3)}
        int64 = constexprs.pop("_int64", ())
        label = f"{fn.__name__} {constexprs} {options}"
        try:
            source = ASTSource(fn, _signature(fn, constexprs, int64), constexprs=constexprs,
                               attrs=_aligned(fn))
            compiled = triton.compile(source, target=target, options=options)
            shared = compiled.metadata.shared
            if shared > 227 * 1024:
                failures.append(f"{label}: {shared} bytes of shared memory")
            divisions = len(re.findall(r"\b(?:div|rem)\.[su]64\b", compiled.asm["ptx"]))
            allowed = int64_divisions_allowed(fn, constexprs)
            if allowed is not None and divisions > allowed:
                failures.append(f"{label}: {divisions} 64-bit integer divisions, {allowed} "
                                f"allowed")
        except Exception as error:  # report every failing variant, not only the first
            failures.append(f"{label}: {type(error).__name__}: {str(error)[:400]}")
        count += 1
    print(f"compiled {count} variants for sm_90 in {time.perf_counter() - start:.0f} s, "
          f"{len(failures)} failed")
    for failure in failures:
        print("FAIL", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
