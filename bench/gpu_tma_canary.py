"""TMA canary of the GPU check (bench layer): every tensor-descriptor (TMA) configuration of the
TF32 matmul on every operand layout, each case in a process of its own (a faulting or hanging
kernel takes down only its own), checked against a float64 product on ragged edges. Writes
$OUT/tma_canary.json and $OUT/tma_layouts.txt: the ENGINE_MATMUL_TMA value (the layouts on which
every configuration came out right, else "off") that gpu_check.sh hands to the later stages.
Usage: python bench/gpu_tma_canary.py [--smoke] [--workers 8]   (one case: --case INDEX LAYOUT)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.gpu_common import device_name, out_dir, save

# Ragged against every tile (128, 256 and BLOCK_K 32) while keeping the 16-byte lines TMA needs and
# the divisibility by 16 that 4096 and 8192 have, so these compiles are the matmul stage's too.
SHAPE = (1040, 528, 1040)
SMOKE_SHAPE = (40, 20, 36)
CASE_TIMEOUT_S, SMOKE_CASE_TIMEOUT_S = 45, 120
TOLERANCE = 1e-2  # TF32 keeps 10 mantissa bits: a right product is ~1e-3 off at most


def canary_configs(smoke):
    from kernels_triton import matmul as triton_matmul

    if smoke:  # the interpreter's config list has no TMA entries: small ones of each kind
        return [triton_matmul._config(32, 32, 16, 2, 4, 2, persistent, True, split)
                for persistent, split in ((False, False), (True, False), (True, True))]
    return [c for c in triton_matmul.matmul_configs("tf32") if c.kwargs["TMA"]]


def _label(config):
    meta = config.kwargs
    return (f"{meta['BLOCK_M']}x{meta['BLOCK_N']}x{meta['BLOCK_K']} w{config.num_warps} "
            f"s{config.num_stages}{' persistent' if meta['PERSISTENT'] else ''}"
            f"{' split' if meta['SPLIT_EPILOGUE'] else ''}")


def run_case(index, layout, smoke):
    """One configuration on one layout; returns its record (ok, relative error)."""
    import torch

    from kernels_triton import matmul as triton_matmul

    config = canary_configs(smoke)[index]
    device = "cpu" if smoke else "cuda"
    m, k, n = SMOKE_SHAPE if smoke else SHAPE
    gen = torch.Generator(device=device).manual_seed(index)
    a = torch.randn(m * k, device=device, generator=gen)
    b = torch.randn(k * n, device=device, generator=gen)
    out = torch.full((m * n,), float("nan"), device=device)  # tiles never written show up
    a_strides = (k, 1) if layout[0] == "k" else (1, m)
    b_strides = (n, 1) if layout[1] == "n" else (1, k)
    found = triton_matmul.tma_layout(a, b, m, k, n, 0, (0, *a_strides), 0, (0, *b_strides))
    if found != layout:
        raise RuntimeError(f"operands built for layout {layout} read as {found!r}")
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count if not smoke else 3
    triton_matmul._use_descriptor_scratch(out)
    start = time.perf_counter()
    triton_matmul._matmul_kernel[triton_matmul._tile_grid(m, n, 1, sm_count)](
        a, b, out, m, n, k, 0, 0, *a_strides, 0, 0, *b_strides, PRECISION="tf32", EVEN_K=True,
        TMA_LAYOUT=layout, num_warps=config.num_warps, num_stages=config.num_stages,
        **config.kwargs)
    if not smoke:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    reference = (torch.as_strided(a, (m, k), a_strides).double()
                 @ torch.as_strided(b, (k, n), b_strides).double())
    error = ((out.view(m, n).double() - reference).abs().max() / reference.abs().max()).item()
    ok = error <= TOLERANCE  # False for NaN too
    return {"config": _label(config), "layout": layout, "status": "ok" if ok else "wrong",
            "rel_err": error, "first_call_s": round(seconds, 2)}


def _child_environment():
    from kernels_triton.matmul import TMA_SWITCH

    # Each case tries its own layout whatever this process was told.
    env = {key: value for key, value in os.environ.items() if key != TMA_SWITCH}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _spawn(index, layout, smoke):
    """Run one case in a child process; a crash, a hang or a wrong result is its record."""
    command = [sys.executable, os.path.abspath(__file__), "--case", str(index), layout]
    if smoke:
        command.append("--smoke")
    record = {"config": _label(canary_configs(smoke)[index]), "layout": layout}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=_child_environment(),
                              timeout=SMOKE_CASE_TIMEOUT_S if smoke else CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return dict(record, status="timeout")
    lines = done.stdout.strip().splitlines()
    try:
        return dict(record, **json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        return dict(record, status=f"crashed (rc {done.returncode})",
                    stderr=done.stderr.strip()[-600:])


def switch_value(records):
    """ENGINE_MATMUL_TMA for the later stages: the layouts on which every case came out right."""
    from kernels_triton.matmul import TMA_LAYOUTS

    allowed = [layout for layout in TMA_LAYOUTS
               if all(r["status"] == "ok" for r in records if r["layout"] == layout)]
    return ",".join(allowed) or "off"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU interpreter")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--case", nargs=2, metavar=("INDEX", "LAYOUT"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), args.case[1], args.smoke)))
        return
    from kernels_triton import matmul as triton_matmul

    cases = [(index, layout) for index in range(len(canary_configs(args.smoke)))
             for layout in triton_matmul.TMA_LAYOUTS]
    with ThreadPoolExecutor(max_workers=2 if args.smoke else args.workers) as pool:
        records = list(pool.map(lambda case: _spawn(*case, args.smoke), cases))
    switch = switch_value(records)
    save("tma_canary", {"device": device_name(), "shape": SMOKE_SHAPE if args.smoke else SHAPE,
                        "cases": records, "switch": switch})
    for record in records:
        print(f"{record['config']:>28} {record['layout']} "
              f"{record['status']:<12} {record.get('rel_err', float('nan')):.1e}")
        if "stderr" in record:
            print("    ", record["stderr"].replace("\n", "\n     "))
    with open(os.path.join(out_dir(), "tma_layouts.txt"), "w") as f:
        f.write(switch + "\n")
    print(f"{triton_matmul.TMA_SWITCH}={switch}")
    sys.exit(0 if all(r["status"] == "ok" for r in records) else 1)


if __name__ == "__main__":
    main()
