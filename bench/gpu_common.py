"""Shared helpers of the GPU benchmarks (bench layer): output folder, timing with CUDA events via
triton.testing, and incremental JSON results (a stage killed by its timeout keeps what it measured).
"""

import json
import os
import time


def out_dir():
    path = os.environ.get("OUT", "./gpu_out")
    os.makedirs(path, exist_ok=True)
    return path


def save(name, payload):
    """Write $OUT/<name>.json atomically."""
    path = os.path.join(out_dir(), f"{name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, default=str)
    os.replace(tmp, path)


def rel_err(got, exact):
    """max |got - exact| / max |exact|, in float64: how the benchmarks report a result's error
    (`exact` is the float64 product, or cuBLAS's to tell a wrong kernel from a right one)."""
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


def device_name():
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke run)"


def time_ms(fn, graph=False):
    """Median milliseconds of fn() on the GPU; with graph=True replayed from a CUDA graph (kernel
    time without Python launch overhead), None when capture fails. Without a GPU (smoke runs of
    these scripts) one wall-clock call, no graph."""
    import torch
    import triton.testing

    if not torch.cuda.is_available():
        if graph:
            return None
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    if graph:
        try:
            return triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median")
        except Exception:  # capture can fail (allocator, sync); the eager number still stands
            return None
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def warm_up_gpu(seconds=0.3):
    """Keep the GPU busy for a moment so clocks have ramped up before a timing series (the first
    series after an idle phase otherwise reads slow)."""
    import torch

    if not torch.cuda.is_available():
        return
    x = torch.randn(2048, 2048, device="cuda")
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            x = torch.tanh(x @ x)  # bounded values; tanh keeps the loop numerically quiet
        torch.cuda.synchronize()


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return round(time.perf_counter() - self.start, 2)


# A matmul configuration as a tuple, in this order (the overhead sweep's rows, the decisions).
CONFIG_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "warps", "stages", "PERSISTENT", "TMA",
               "SPLIT_EPILOGUE", "WARP_SPECIALIZE")


def config_tuple(config):
    return tuple(config.kwargs.get(key, getattr(config, f"num_{key}", None))
                 for key in CONFIG_KEYS)


def config_label(config):
    """A matmul or conv autotune configuration in short: tile, warps, stages, persistent or
    not, TMA loads or not, epilogue split or not, warp-specialized or not."""
    if config is None:
        return None
    meta = config.kwargs
    return (f"{meta['BLOCK_M']}x{meta['BLOCK_N']}x{meta['BLOCK_K']} w{config.num_warps} "
            f"s{config.num_stages}{' persistent' if meta.get('PERSISTENT') else ''}"
            f"{' tma' if meta.get('TMA') else ''}{' split' if meta.get('SPLIT_EPILOGUE') else ''}"
            f"{' ws' if meta.get('WARP_SPECIALIZE') else ''}")


def stored_strides(layout, m, k, n):
    """(row, col) strides of A (m, k) and B (k, n) stored in `layout`, named by the unit-stride
    dimension of A, then of B ("kn": both row-major)."""
    return (k, 1) if layout[0] == "k" else (1, m), (n, 1) if layout[1] == "n" else (1, k)


def tf32_stored_view(layout, a, b, m, k, n):
    """The TF32 product of A (m, k) and B (k, n) stored in `layout`, no offsets, arranged as the
    matmul launcher hands it to the kernel: (`oriented`'s (a, b, m, n, a_offset, a_strides,
    b_offset, b_strides, transposed), the TMA layout descriptors can load, "" if none)."""
    from kernels_triton import matmul_layouts

    a_strides, b_strides = ((0, *strides) for strides in stored_strides(layout, m, k, n))
    found = matmul_layouts.descriptor_layout(a, b, m, k, n, 0, a_strides, 0, b_strides)
    if found != layout:
        raise RuntimeError(f"operands built for layout {layout} read as {found!r}")
    product = matmul_layouts.oriented("tf32", a, b, m, n, 0, a_strides, 0, b_strides)
    first, second, rows, cols, a_offset, a_str, b_offset, b_str, _ = product
    return product, matmul_layouts.descriptor_layout(first, second, rows, k, cols, a_offset, a_str,
                                                    b_offset, b_str)


def run_tf32_config(config, view, out, k, programs, register=None):
    """Launch a `tf32_stored_view` with exactly `config` on at most `programs` persistent
    programs, loading tiles by TMA when the configuration asks and the view allows; `register`
    as in `run_config`, which gives the compiled kernel back."""
    from kernels_triton import matmul as triton_matmul
    from kernels_triton import matmul_layouts

    (first, second, rows, cols, a_offset, a_strides, b_offset, b_strides, transposed), loads = view
    if config.kwargs["TMA"] and loads:
        matmul_layouts.use_descriptor_scratch(out)
    return triton_matmul.run_config(
        config, triton_matmul._tile_grid(rows, cols, 1, programs),
        (first, second, out, rows, cols, k, a_offset, *a_strides, b_offset, *b_strides), "tf32",
        loads, transposed, register)


def sweep_marks(row):
    """"  (rule, chosen)" and the like for a row of the conv weight gradient's slice sweep: the
    launcher's rule, and what the device chose by timing, in an earlier process ("stored")."""
    if "rule" not in row:  # results from before the timed choice: "chosen" was the rule
        return "  (rule)" if row.get("chosen") else ""
    marks = [name for name in ("rule", "chosen", "stored") if row.get(name)]
    return f"  ({', '.join(marks)})" if marks else ""
