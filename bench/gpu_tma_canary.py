"""TMA canary of the GPU check (bench layer): every tensor-descriptor (TMA) configuration of the
TF32 matmul on operands stored in every layout, launched as the matmul launcher would, each case
in a process of its own (a faulting or hanging kernel takes down only its own), checked against a
float64 product on ragged edges. Writes $OUT/tma_canary.json and $OUT/tma_layouts.txt: the
ENGINE_MATMUL_TMA value (the layouts the kernel loads on which every case came out right, else
"off") that gpu_check.sh hands to the later stages.
Usage: python bench/gpu_tma_canary.py [--smoke] [--workers 8]   (one case: --case INDEX LAYOUT)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.gpu_common import (
    config_label,
    device_name,
    out_dir,
    run_tf32_config,
    save,
    stored_strides,
    tf32_stored_view,
)

# Ragged against every tile (128, 256, BLOCK_K 32, and a right half of a split epilogue cut short)
# with 16-byte lines as TMA needs: one shape with sizes divisible by 16 like 4096 and 8192 (so
# these compiles are the matmul stage's too), one with sizes 4 past a multiple of 16, which
# Triton specialises and compiles apart (a hidden size of 100 is one).
SHAPES = ((1040, 528, 1168), (1028, 516, 1172))
SMOKE_SHAPES = ((40, 20, 36),)
# Programs of a persistent configuration: fewer than the tiles, so each runs the flattened
# multi-tile loop (the next tile's loads over this one's epilogue) with a ragged last round.
PERSISTENT_PROGRAMS, SMOKE_PERSISTENT_PROGRAMS = 16, 3
CASE_TIMEOUT_S, SMOKE_CASE_TIMEOUT_S = 40, 120
BUDGET_S = 85  # the whole canary, inside gpu_check.sh's 100 s stage limit
TOLERANCE = 1e-2  # TF32 keeps 10 mantissa bits: a right product is ~1e-3 off at most
# Right in every checked case, or a configuration this GPU cannot hold (the autotuner skips those).
USABLE = ("ok", "no_resources")


def canary_configs(smoke):
    from kernels_triton import matmul as triton_matmul

    if smoke:  # the interpreter's config list has no TMA entries: small ones of each kind
        return [triton_matmul._config(32, 32, 16, 2, 4, 2, persistent, True, split)
                for persistent, split in ((False, False), (True, False), (True, True))]
    return [c for c in triton_matmul.matmul_configs("tf32") if c.kwargs["TMA"]]


def kernel_layout(layout):
    """The TMA layout the kernel loads for a TF32 product stored in `layout` (a K-major A with an
    N-major B runs as out^T = B^T A^T, loaded "mk")."""
    import torch

    m, k, n = SMOKE_SHAPES[0]
    return tf32_stored_view(layout, torch.empty(m * k), torch.empty(k * n), m, k, n)[1]


def _product_error(config, layout, shape, seed, smoke):
    """Relative error of one TMA product against float64 (NaN where tiles were never written)."""
    import torch

    device = "cpu" if smoke else "cuda"
    m, k, n = shape
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(m * k, device=device, generator=gen)
    b = torch.randn(k * n, device=device, generator=gen)
    out = torch.full((m * n,), float("nan"), device=device)
    run_tf32_config(config, tf32_stored_view(layout, a, b, m, k, n), out, k,
                    SMOKE_PERSISTENT_PROGRAMS if smoke else PERSISTENT_PROGRAMS)
    a_strides, b_strides = stored_strides(layout, m, k, n)
    reference = (torch.as_strided(a, (m, k), a_strides).double()
                 @ torch.as_strided(b, (k, n), b_strides).double())
    return ((out.view(m, n).double() - reference).abs().max() / reference.abs().max()).item()


def run_case(index, layout, smoke):
    """One configuration on one layout, every shape; returns its record."""
    from triton.runtime.errors import OutOfResources

    config = canary_configs(smoke)[index]
    record = {"config": config_label(config), "layout": layout}
    try:
        errors = [_product_error(config, layout, shape, index, smoke)
                  for shape in (SMOKE_SHAPES if smoke else SHAPES)]
    except OutOfResources as error:  # the autotuner skips such a configuration too
        return dict(record, status="no_resources", detail=str(error)[:200])
    worst = max(errors, key=lambda e: (e != e, e))  # NaN counts as the worst
    return dict(record, status="ok" if worst <= TOLERANCE else "wrong", rel_err=worst)


def _child_environment():
    from kernels_triton.matmul_layouts import TMA_SWITCH

    # Each case tries its own layout whatever this process was told.
    env = {key: value for key, value in os.environ.items() if key != TMA_SWITCH}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _spawn(index, layout, smoke, deadline):
    """Run one case in a child process, within its own limit and the canary's `deadline`
    (perf_counter seconds); a crash, a hang or a wrong result is its record."""
    command = [sys.executable, os.path.abspath(__file__), "--case", str(index), layout]
    if smoke:
        command.append("--smoke")
    record = {"config": config_label(canary_configs(smoke)[index]), "layout": layout}
    limit = min(SMOKE_CASE_TIMEOUT_S if smoke else CASE_TIMEOUT_S,
                deadline - time.perf_counter())
    if limit <= 1:
        return dict(record, status="not run (canary out of time)")
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=_child_environment(),
                              timeout=limit)
    except subprocess.TimeoutExpired:
        return dict(record, status="timeout")
    lines = done.stdout.strip().splitlines()
    try:
        return dict(record, **json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        return dict(record, status=f"crashed (rc {done.returncode})",
                    detail=done.stderr.strip()[-600:])


def switch_value(records):
    """ENGINE_MATMUL_TMA for the later stages: the layouts the kernel loads (a record's "loads")
    on which every case came out right (or needed more shared memory than the GPU has, which the
    autotuner skips)."""
    from kernels_triton.matmul_layouts import TMA_LAYOUTS

    loaded = {r["loads"] for r in records}
    allowed = [layout for layout in TMA_LAYOUTS if layout in loaded
               and all(r["status"] in USABLE for r in records if r["loads"] == layout)]
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
    from kernels_triton import matmul_layouts

    cases = [(index, layout) for index in range(len(canary_configs(args.smoke)))
             for layout in matmul_layouts.TMA_LAYOUTS]
    deadline = time.perf_counter() + BUDGET_S
    with ThreadPoolExecutor(max_workers=2 if args.smoke else args.workers) as pool:
        records = list(pool.map(lambda case: _spawn(*case, args.smoke, deadline), cases))
    loads = {layout: kernel_layout(layout) for layout in matmul_layouts.TMA_LAYOUTS}
    records = [dict(record, loads=loads[record["layout"]]) for record in records]
    switch = switch_value(records)
    save("tma_canary", {"device": device_name(), "shapes": SMOKE_SHAPES if args.smoke else SHAPES,
                        "cases": records, "switch": switch})
    for record in records:
        print(f"{record['config']:>38} {record['layout']} (loads {record['loads']}) "
              f"{record['status']:<12} {record.get('rel_err', float('nan')):.1e}")
        if "detail" in record:
            print("    ", record["detail"].replace("\n", "\n     "))
    # Written whole or not at all: gpu_check.sh reads a missing or empty file as "off".
    path = os.path.join(out_dir(), "tma_layouts.txt")
    with open(path + ".tmp", "w") as f:
        f.write(switch + "\n")
    os.replace(path + ".tmp", path)
    print(f"{matmul_layouts.TMA_SWITCH}={switch}")
    sys.exit(0 if all(r["status"] == "ok" for r in records) else 1)


if __name__ == "__main__":
    main()
