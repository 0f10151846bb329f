"""GPU matmul benchmark (bench layer): the cuda device's matmul (Triton) against torch.matmul
(cuBLAS) at 512 to 8192 (the small sizes show where staging pays), IEEE fp32 against
allow_tf32=False and TF32 against TF32 (plus our 3xTF32 against cuBLAS IEEE, for information).
IEEE and TF32 run twice: with the device's default operand staging (A or B relaid out for the
multiply unit, the copy timed as part of ours) and with staging off. Prints a table of TFLOP/s and
ratios; up to GRAPH_MAX also both sides replayed from a CUDA graph (kernel time without the host's
launch path, which a product this small may wait on); writes $OUT/matmul.json.
Usage: python bench/gpu_matmul.py [--sizes 512 1024 2048 4096 8192] [--smoke]
(--smoke: tiny sizes on the CPU interpreter, to check the script itself)
"""

import argparse

import torch

from bench.gpu_common import (
    Stopwatch,
    config_label,
    config_tuple,
    device_name,
    rel_err,
    save,
    time_ms,
    warm_up_gpu,
)
from engine.backend import cuda_device, cuda_staging
from kernels_triton import matmul as triton_matmul
from kernels_triton import matmul_layouts

DEVICE = "cuda"
# Up to this size a product's kernel takes tens of microseconds: the eager timing can include the
# host's launch time (auto and never ran the same kernel 2x apart at 1024 and 2048 on an H100).
GRAPH_MAX = 2048
# (ours, torch allow_tf32, our operand staging)
MODES = (("ieee", False, "auto"), ("ieee", False, "never"), ("tf32", True, "auto"),
         ("tf32", True, "never"),
         ("tf32x3", False, "auto"))


def measure(size, precision, allow_tf32, staging):
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    cuda_device.set_matmul_precision(precision)
    cuda_device.set_operand_staging(staging)
    gen = torch.Generator(device=DEVICE).manual_seed(size)
    a = torch.randn(size * size, device=DEVICE, generator=gen)
    b = torch.randn(size * size, device=DEVICE, generator=gen)
    out = torch.empty(size * size, device=DEVICE)
    a2, b2 = a.view(size, size), b.view(size, size)

    def ours():
        cuda_device.matmul(a, b, out, 1, size, size, size, 0, 0, size, 1, 0, 0, size, 1)

    def theirs():
        return torch.matmul(a2, b2)

    clock = Stopwatch()
    ours()  # autotunes on first call
    tune_s = clock.seconds()
    # A float64 product (cuBLAS DGEMM: about 20 ms at 8192 on an H100) measures both sides.
    reference = torch.matmul(a2.double(), b2.double())
    ours_err, theirs_err = rel_err(out.view(size, size), reference), rel_err(theirs(), reference)
    warm_up_gpu()
    ours_ms, theirs_ms = time_ms(ours), time_ms(theirs)
    ours_graph_ms = time_ms(ours, graph=True) if size <= GRAPH_MAX else None
    theirs_graph_ms = time_ms(theirs, graph=True) if ours_graph_ms else None
    flops = 2 * size ** 3
    config = triton_matmul.last_config()  # of the timed launches: the chosen staging's
    key = (1, size, size, size, (0, size, 1), (0, size, 1))
    return {"size": size, "precision": precision, "staging": staging,
            "torch_allow_tf32": allow_tf32,
            "ours_ms": ours_ms, "torch_ms": theirs_ms,
            "ours_tflops": flops / ours_ms / 1e9, "torch_tflops": flops / theirs_ms / 1e9,
            "ratio": theirs_ms / ours_ms, "ours_rel_err": ours_err, "torch_rel_err": theirs_err,
            "ours_graph_ms": ours_graph_ms, "torch_graph_ms": theirs_graph_ms,
            "graph_ratio": theirs_graph_ms / ours_graph_ms if theirs_graph_ms else None,
            "reference": "float64",
            "autotune_s": tune_s, "best_config": str(config), "best_tiles": config_label(config),
            "best_config_tuple": config_tuple(config) if config is not None else None,
            # True/False: the device timed staging against the copy-free kernel (operands swapped,
            # B^T through registers) and chose, in this process or an earlier one ("stored").
            "timed_staging": cuda_staging.timed_choices().get(key),
            "staging_stored": key in cuda_staging.stored_choices()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU interpreter")
    args = parser.parse_args()
    if args.smoke:
        global DEVICE
        DEVICE, args.sizes = "cpu", [16, 40]
    # The TMA layouts this process may load (gpu_check.sh sets them from the TMA canary).
    results = {"device": device_name(), "tma_layouts": sorted(matmul_layouts.TMA_ALLOWED),
               "register_a": matmul_layouts.REGISTER_A_ALLOWED,
               "warp_specialize": matmul_layouts.WARP_SPECIALIZE_ALLOWED, "rows": []}
    print(f"{'size':>6} {'mode':>7} {'staging':>7} {'ours TF/s':>10} {'torch TF/s':>11} "
          f"{'ours/torch':>10} {'ours err':>9} {'torch err':>9}")
    for precision, allow_tf32, staging in MODES:
        for size in args.sizes:
            try:
                row = measure(size, precision, allow_tf32, staging)
            except Exception as error:  # keep measuring the other points
                row = {"size": size, "precision": precision, "staging": staging,
                       "error": repr(error)}
                print(f"{size:>6} {precision:>7} {staging:>7} ERROR {error!r}")
            else:
                print(f"{size:>6} {precision:>7} {staging:>7} {row['ours_tflops']:>10.1f} "
                      f"{row['torch_tflops']:>11.1f} {row['ratio']:>10.2f} "
                      f"{row['ours_rel_err']:>9.1e} {row['torch_rel_err']:>9.1e}", flush=True)
            results["rows"].append(row)
            save("matmul", results)
    torch.backends.cuda.matmul.allow_tf32 = False
    cuda_device.set_matmul_precision("ieee")
    cuda_device.set_operand_staging("auto")


if __name__ == "__main__":
    main()
