"""Where the time of a cuda-device product goes (bench layer): for matmul and conv calls with
operand staging on and off, the host microseconds per call (launch loop without syncs, and
cProfile's heaviest functions) and the device microseconds of each kernel (torch.profiler), then a
TF32 tile-configuration sweep at 8192, pointer and TMA loads, on a K-major (pre-staged) and on a
row-major B. Writes $OUT/overhead.json.
Usage: python bench/gpu_overhead_probe.py [--smoke]   (--smoke: tiny sizes, CPU interpreter)
"""

import argparse
import cProfile
import io
import pstats
import time

import torch

from bench.gpu_common import (
    config_tuple,
    device_name,
    rel_err,
    run_tf32_config,
    save,
    tf32_stored_view,
    time_ms,
)
from bench.gpu_conv import conv_passes
from engine.backend import cuda_device, cuda_staging
from kernels_triton import matmul as triton_matmul
from kernels_triton import matmul_layouts

DEVICE = "cuda"


def _matmul_case(size):
    gen = torch.Generator(device=DEVICE).manual_seed(size)
    a, b = (torch.randn(size * size, device=DEVICE, generator=gen) for _ in range(2))
    out = torch.empty(size * size, device=DEVICE)
    return lambda: cuda_device.matmul(a, b, out, 1, size, size, size, 0, 0, size, 1, 0, 0, size, 1)


def _conv_case(name, layer):
    n, h, w, c, k = layer
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(n * h * w * c, device=DEVICE, generator=gen)
    wt = torch.randn(9 * c * k, device=DEVICE, generator=gen)
    gy = torch.randn(n * h * w * k, device=DEVICE, generator=gen)
    out, gx, gw = (torch.empty_like(t) for t in (gy, x, wt))
    sizes = (n, h, w, c, k, 3, 3, h, w, 1, 1, 1, 1, 1, 1, 1)
    return conv_passes(x, wt, gy, out, gx, gw, sizes)[name]


def _set_modes(precision, staging):
    cuda_device.set_matmul_precision(precision)
    cuda_device.set_operand_staging(staging)


def _transpose_case(size, round_tf32=False):
    src = torch.randn(size * size, device=DEVICE)

    def fn():
        cuda_staging.relayout(cuda_device.alloc, src, 1, size, size, 0, (0, size, 1),
                              cols_contiguous=False, round_tf32=round_tf32)
    return fn


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def host_us(fn, calls=50):
    """Host time per call: a loop of launches without syncs (the GPU queue absorbs them)."""
    best = None
    for _ in range(3):
        _sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = (time.perf_counter() - start) / calls * 1e6
        _sync()
        best = elapsed if best is None else min(best, elapsed)
    return best


def _through_triton(measure, fn, calls):
    """`measure(fn, calls)` with every launch through Triton's own launch path, not repeated
    directly (kernels_triton/launch.py)."""
    from kernels_triton import launch

    launch.DIRECT_LAUNCH = False
    try:
        return measure(fn, calls=calls)
    finally:
        launch.DIRECT_LAUNCH = True


def kernel_us(fn, calls=20):
    """Device microseconds per call of each kernel the call launches."""
    if not torch.cuda.is_available():
        return {}
    from torch.profiler import ProfilerActivity, profile

    _sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        _sync()
    kernels = {}
    for event in prof.key_averages():
        total = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
        if total:
            kernels[event.key[:60]] = round(total / calls, 2)
    return kernels


def profile_top(fn, calls=100, top=14):
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    _sync()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# Pointer-load tiles: (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, warps, stages, persistent)
POINTER_TILES = [(128, 256, 32, 8, 8, 4, False), (256, 128, 32, 8, 8, 4, False),
                 (128, 256, 32, 16, 8, 4, False), (256, 128, 32, 8, 8, 3, True),
                 (128, 256, 32, 8, 8, 2, True), (128, 128, 32, 8, 8, 4, True)]
# Register-path tiles for the row-major B: a 64-wide K step halves the loop's barriers per
# multiply-add, and neither spills on sm_90 (bench/gpu_ir_probe.py). The first is a TF32 autotune
# candidate; the persistent one is not: on K-major operands it needs 256 KB of shared memory.
REGISTER_TILES = [(128, 256, 64, 8, 8, 2, False), (128, 128, 64, 8, 8, 3, True)]


def _sweep_configs(smoke):
    """The configurations to time on a K-major and on a row-major B: pointer-load tiles, the TMA
    ones the tf32 autotuner tries, then (never yet run on hardware) the pointer twin of each
    split-epilogue TMA configuration, not an autotune candidate until measured here, and for the
    row-major B the REGISTER_TILES. Third, the best K-major tiles of each kind (pointer, TMA,
    warp-specialized) again with their K-major A through registers, rounded to TF32 on the way:
    what rounding both operands (cuBLAS's error) would cost where staging leaves B K-major."""
    if smoke:
        tiles = [triton_matmul._config(16, 16, 16, 2, 1, 1)]
        tma = [triton_matmul._config(16, 32, 16, 2, 1, 1, True, True, split=True),
               triton_matmul._config(16, 32, 16, 2, 1, 1, tma=True, ws=True)]
        return tiles + tma, tiles + tma, tiles + tma[1:]
    tma = [c for c in triton_matmul.matmul_configs("tf32") if c.kwargs["TMA"]]
    split_twins = [triton_matmul._config(
        *(c.kwargs[key] for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M")), c.num_warps,
        c.num_stages, c.kwargs["PERSISTENT"], tma=False, split=True)
        for c in tma if c.kwargs["SPLIT_EPILOGUE"]]
    tiles = [triton_matmul._config(*tile) for tile in POINTER_TILES]
    register_tiles = [triton_matmul._config(*tile) for tile in REGISTER_TILES]
    plain_tma = [c for c in tma if not c.kwargs["PERSISTENT"] and not c.kwargs["WARP_SPECIALIZE"]]
    specialized = [c for c in tma if c.kwargs["WARP_SPECIALIZE"]]
    return (tiles + tma + split_twins, tiles + tma + split_twins + register_tiles,
            tiles[:1] + plain_tma[:1] + specialized[:1])


def _time_config(fn, out, reference, exact, cublas_ms):
    """Error against cuBLAS's `reference` (a kernel more than 1 % off is wrong) and the float64
    product `exact`, speed against cuBLAS, and the registers and spilled bytes per thread of the
    compiled kernel `fn` returns, of one forced configuration (ptxas spills a large tile's
    accumulators when registers run out: a tile that spills is rarely worth its compile)."""
    try:
        out.fill_(float("nan"))  # a kernel that skips tiles must not pass on stale output
        compiled = fn()
        errors = {"rel_err": rel_err(out, reference), "err_f64": rel_err(out, exact)}
        ms = time_ms(fn)
        return {**errors, "ms": ms, "ratio": cublas_ms / ms,
                "registers": getattr(compiled, "n_regs", None),
                "spills": getattr(compiled, "n_spills", None)}
    except Exception as error:  # out of shared memory and the like: others still run
        return {"error": repr(error)[:200]}


def tf32_config_sweep(size, save_rows):
    """Our TF32 kernel, tile configuration by configuration, pointer or tensor-descriptor (TMA)
    loads, against cuBLAS TF32 in the same run and layout: on a K-major B (as staging leaves it)
    and on the row-major B as stored (no staging: the launcher swaps the operands, B^T first and
    through registers, and writes the result transposed back); last, K-major tiles with A too
    through registers, on B rounded as staging leaves it (both operands rounded, as cuBLAS's
    error suggests it does). Each row's errors are against cuBLAS's product and the float64 one;
    `save_rows(result)` runs after every row."""
    torch.backends.cuda.matmul.allow_tf32 = True
    a = torch.randn(size * size, device=DEVICE)
    b = torch.randn(size * size, device=DEVICE)
    # B as a staging copy leaves it, rounded to nearest TF32 (kernels_triton/common.py), for the
    # group that rounds A too; the references stay those of b.
    b_rounded = ((b.view(torch.int32) + 0x1000) & -0x2000).view(torch.float32)
    out = torch.empty(size * size, device=DEVICE)
    sm_count = 1
    if torch.cuda.is_available():
        sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    result = {"size": size, "rows": [], "cublas_ms": {}, "cublas_err_f64": {}}
    k_major, n_major, rounded_a = _sweep_configs(not torch.cuda.is_available())
    # B layout: (B as cuBLAS sees it, our stored layout of A and B, configs to try, A forced
    # through registers or not (None: as the launcher decides), the B our kernel reads)
    layouts = {"k_major": (b.view(size, size).t(), "kk", k_major, None, b),
               "n_major": (b.view(size, size), "kn", n_major, None, b),
               "k_major, A rounded in registers": (b.view(size, size).t(), "kk", rounded_a, True,
                                                   b_rounded)}
    for b_layout, (b_matrix, stored, tiles, register, b_read) in layouts.items():
        view = tf32_stored_view(stored, a, b_read, size, size, size)
        tma_layout = view[1]
        reference = torch.matmul(a.view(size, size), b_matrix)
        exact = torch.matmul(a.view(size, size).double(), b_matrix.double())
        cublas_ms = time_ms(lambda b_matrix=b_matrix: torch.matmul(a.view(size, size), b_matrix))
        result["cublas_ms"][b_layout] = cublas_ms
        result["cublas_err_f64"][b_layout] = rel_err(reference, exact)
        for config in tiles:
            def fn(config=config, view=view, register=register):
                return run_tf32_config(config, view, out, size, sm_count, register)
            row = {"b_layout": b_layout, "config": config_tuple(config)}
            if register and not matmul_layouts.REGISTER_A_ALLOWED:
                row["skipped"] = f"{matmul_layouts.REGISTER_SWITCH} is off"
            elif config.kwargs["TMA"] and tma_layout not in matmul_layouts.TMA_ALLOWED:
                row["skipped"] = f"{matmul_layouts.TMA_SWITCH} leaves {tma_layout} out"
            elif config.kwargs["TMA"] and not triton_matmul.timed_on(config, tma_layout):
                row["skipped"] = f"not an autotune candidate on {tma_layout or 'pointer loads'}"
            else:
                row.update(_time_config(fn, out.view(size, size), reference, exact, cublas_ms))
            result["rows"].append(row)
            print("tf32 config", row, flush=True)
            save_rows(result)
    return result


def main():
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU interpreter")
    smoke = parser.parse_args().smoke
    if smoke:
        DEVICE = "cpu"
    small, mid, big = (16, 32, 48) if smoke else (512, 1024, 8192)
    layer = (2, 5, 5, 4, 6) if smoke else (32, 16, 16, 64, 64)
    # name: (matmul precision, operand staging, call); the modes are set before each case.
    cases = {f"matmul ieee {small} auto": ("ieee", "auto", _matmul_case(small)),
             f"matmul ieee {small} never": ("ieee", "never", _matmul_case(small)),
             f"matmul tf32 {mid} auto": ("tf32", "auto", _matmul_case(mid)),
             f"matmul tf32 {mid} never": ("tf32", "never", _matmul_case(mid)),
             f"matmul tf32 {big} auto": ("tf32", "auto", _matmul_case(big)),
             f"transpose {small}": ("ieee", "auto", _transpose_case(small)),
             f"transpose {big}": ("ieee", "auto", _transpose_case(big)),
             f"transpose {big} rounding to tf32": ("ieee", "auto", _transpose_case(big, True))}
    # The passes that stage in each mode.
    for name, precision in (("forward", "tf32"), ("weight_grad", "tf32"), ("input_grad", "ieee")):
        for staging in ("auto", "never"):
            cases[f"conv {name} {precision} {staging}"] = (precision, staging,
                                                           _conv_case(name, layer))
    results = {"device": device_name(), "cases": {}}
    for name, (precision, staging, fn) in cases.items():
        _set_modes(precision, staging)
        for _ in range(3):
            fn()  # autotunes and compiles
        row = {"host_us": round(host_us(fn, calls=5 if smoke else 50), 1),
               "host_us_through_triton": round(_through_triton(host_us, fn, 5 if smoke else 50),
                                               1),
               "eager_ms": time_ms(fn), "graph_ms": time_ms(fn, graph=True),
               "kernels_us": kernel_us(fn)}
        results["cases"][name] = row
        print(name, row, flush=True)
        save("overhead", results)
    for name in (f"matmul ieee {small} auto", f"matmul ieee {small} never",
                 "conv weight_grad tf32 auto"):
        precision, staging, fn = cases[name]
        _set_modes(precision, staging)
        text = profile_top(fn, calls=5 if smoke else 100)
        results.setdefault("profiles", {})[name] = text
        print(f"--- cProfile {name}\n{text}", flush=True)
    save("overhead", results)

    def save_sweep(sweep):
        results["tf32_configs"] = sweep
        save("overhead", results)

    tf32_config_sweep(64 if smoke else big, save_sweep)
    _set_modes("ieee", "auto")


if __name__ == "__main__":
    main()
