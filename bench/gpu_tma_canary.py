"""Canary of the GPU check (bench layer): the TF32 matmul paths new to the hardware, launched as the
matmul launcher would on ragged edges and checked against float64, each case in a process of its
own (a faulting or hanging kernel takes down only its own): every pointer-load configuration with an
operand fed through registers, and every tensor-descriptor (TMA) configuration on operands stored in
every layout. Writes $OUT/tma_canary.json, and for gpu_check.sh to hand to the later stages
$OUT/register_a.txt (ENGINE_MATMUL_REGISTER_A: "on" if every register case came out right),
$OUT/warp_specialize.txt (ENGINE_MATMUL_WARP_SPECIALIZE: alike for the warp-specialized cases) and
$OUT/tma_layouts.txt (ENGINE_MATMUL_TMA: the layouts the kernel loads on which every case that
will run did, else "off"). Usage: python bench/gpu_tma_canary.py [--smoke] [--workers 12]
(one case: --case INDEX LAYOUTS [--registers])
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
    rel_err,
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
BUDGET_S = 110  # the whole canary, inside gpu_check.sh's 130 s stage limit
TOLERANCE = 1e-2  # TF32 keeps 10 mantissa bits: a right product is ~1e-3 off at most
# Right in every checked case, or a configuration this GPU cannot hold (the autotuner skips those).
USABLE = ("ok", "no_resources")


def canary_configs(smoke):
    from kernels_triton import matmul as triton_matmul

    if smoke:  # the interpreter's config list has no TMA entries: small ones of each kind
        return [triton_matmul._config(32, 32, 16, 2, 4, 2, persistent, True, split, ws)
                for persistent, split, ws in ((False, False, False), (True, False, False),
                                              (True, True, False), (False, False, True))]
    return [c for c in triton_matmul.matmul_configs("tf32") if c.kwargs["TMA"]]


# Stored layouts whose TF32 product feeds an operand through registers (A not K-major, or a
# row-major B swapped into A's place).
REGISTER_LAYOUTS = ("kn", "mk", "mn")


def register_configs(smoke):
    """Pointer-load configurations, each checked on every REGISTER_LAYOUTS product: the autotuned
    ones and the fixed one of small products."""
    from kernels_triton import matmul as triton_matmul

    if smoke:
        return [triton_matmul._config(32, 32, 16, 2, 4, 2, persistent) for persistent in
                (False, True)]
    return ([c for c in triton_matmul.matmul_configs("tf32") if not c.kwargs["TMA"]]
            + [triton_matmul.small_config()])


def _configs(smoke, registers):
    return register_configs(smoke) if registers else canary_configs(smoke)


def kernel_layout(layout):
    """The TMA layout the kernel loads for a TF32 product stored in `layout` (a K-major A with an
    N-major B runs as out^T = B^T A^T, loaded "mk", while ENGINE_MATMUL_REGISTER_A is on)."""
    import torch

    m, k, n = SMOKE_SHAPES[0]
    return tf32_stored_view(layout, torch.empty(m * k), torch.empty(k * n), m, k, n)[1]


def _product_error(config, layout, shape, seed, smoke):
    """Relative error of one product against float64 (NaN where tiles were never written)."""
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
    return rel_err(out.view(m, n), reference)


def run_case(index, layouts, smoke, registers=False):
    """One configuration on each of `layouts` (every shape for TMA, the first for registers);
    returns their records."""
    from triton.runtime.errors import OutOfResources

    config = _configs(smoke, registers)[index]
    shapes = SMOKE_SHAPES if smoke else SHAPES[:1] if registers else SHAPES
    records = []
    for layout in layouts:
        record = _record(config, layout, registers)
        errors, too_big = [], []
        for shape in shapes:
            # Shared memory depends on the sizes' divisibility (the epilogue's vector width): a
            # shape too big is skipped, as the autotuner does, and the others still count.
            try:
                errors.append(_product_error(config, layout, shape, index, smoke))
            except OutOfResources as error:
                too_big.append(f"{shape}: {str(error)[:160]}")
        if not errors:
            records.append(dict(record, status="no_resources", detail="; ".join(too_big)))
            continue
        if too_big:
            record["detail"] = "no resources for " + "; ".join(too_big)
        worst = max(errors, key=lambda e: (e != e, e))  # NaN counts as the worst
        records.append(dict(record, status="ok" if worst <= TOLERANCE else "wrong",
                            rel_err=worst))
    return records


def _record(config, layout, registers):
    """A case's record as the parent knows it before the child reports (config None: its keys)."""
    return {"config": config_label(config), "layout": layout,
            "path": "registers" if registers else "tma",
            "ws": bool(config and config.kwargs["WARP_SPECIALIZE"])}


def _child_environment():
    from kernels_triton.matmul_layouts import REGISTER_SWITCH, TMA_SWITCH, WARP_SPECIALIZE_SWITCH

    # Each case tries its own path whatever this process was told or the defaults leave off.
    env = dict(os.environ)
    env.update({TMA_SWITCH: "on", REGISTER_SWITCH: "on", WARP_SPECIALIZE_SWITCH: "on"})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _spawn(index, layouts, smoke, deadline, registers=False):
    """Run one case in a child process, within its own limit and the canary's `deadline`
    (perf_counter seconds); a crash, a hang or a wrong result is its records' status."""
    command = [sys.executable, os.path.abspath(__file__), "--case", str(index), ",".join(layouts)]
    command += ["--smoke"] if smoke else []
    command += ["--registers"] if registers else []
    config = _configs(smoke, registers)[index]
    records = [_record(config, layout, registers) for layout in layouts]
    limit = min(SMOKE_CASE_TIMEOUT_S if smoke else CASE_TIMEOUT_S,
                deadline - time.perf_counter())
    if limit <= 1:
        return [dict(record, status="not run (canary out of time)") for record in records]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=_child_environment(),
                              timeout=limit)
    except subprocess.TimeoutExpired:
        return [dict(record, status="timeout") for record in records]
    lines = done.stdout.strip().splitlines()
    try:
        return [dict(record, **result) for record, result in
                zip(records, json.loads(lines[-1]), strict=True)]
    except (IndexError, json.JSONDecodeError, TypeError, ValueError):
        return [dict(record, status=f"crashed (rc {done.returncode})",
                     detail=done.stderr.strip()[-600:]) for record in records]


def register_value(records):
    """ENGINE_MATMUL_REGISTER_A for the later stages: "on" when every register case came out
    right (or needed more than the GPU has), else "off"."""
    cases = [r for r in records if r["path"] == "registers"]
    return "on" if cases and all(r["status"] in USABLE for r in cases) else "off"


def warp_specialize_value(records):
    """ENGINE_MATMUL_WARP_SPECIALIZE for the later stages: "on" when every warp-specialized case
    came out right (or needed more than the GPU has), else "off"."""
    cases = [r for r in records if r["path"] == "tma" and r["ws"]]
    return "on" if cases and all(r["status"] in USABLE for r in cases) else "off"


def canary_cases(smoke, loads):
    """(configuration index, stored layouts, register case or not) of every case: register cases
    first, as every TF32 product whose operands are not both K-major takes that path; then each
    TMA configuration on each stored layout whose load (`loads[stored]`) the autotuner would time
    it on (warp specialization only where it applies)."""
    from kernels_triton import matmul, matmul_layouts

    return ([(index, REGISTER_LAYOUTS, True) for index in range(len(register_configs(smoke)))]
            + [(index, (layout,), False) for index, config in enumerate(canary_configs(smoke))
               for layout in matmul_layouts.TMA_LAYOUTS
               if matmul.timed_on(config, loads[layout])])


def switch_value(records, registers="on", warp_specialize="on"):
    """ENGINE_MATMUL_TMA for the later stages: the layouts the kernel loads (a TMA record's
    "loads") on which every case that will still run came out right (or needed more shared memory
    than the GPU has, which the autotuner skips): with warp specialization off, its cases do not
    count. With the register path off, a layout with A not K-major ("m...") would load without
    it, which no case ran: those stay off."""
    from kernels_triton.matmul_layouts import TMA_LAYOUTS

    cases = [r for r in records if r["path"] == "tma" and (warp_specialize == "on" or not r["ws"])]
    loaded = {r["loads"] for r in cases}
    allowed = [layout for layout in TMA_LAYOUTS if layout in loaded
               and all(r["status"] in USABLE for r in cases if r["loads"] == layout)
               and (registers == "on" or layout[0] == "k")]
    return ",".join(allowed) or "off"


def _write_atomically(name, value):
    """Written whole or not at all: gpu_check.sh reads a missing or empty file as the switch's
    fallback (TMA and warp specialization off, the register path on)."""
    path = os.path.join(out_dir(), name)
    with open(path + ".tmp", "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU interpreter")
    parser.add_argument("--workers", type=int, default=12)  # of the GPU machine's 16 cores
    parser.add_argument("--case", nargs=2, metavar=("INDEX", "LAYOUTS"))
    parser.add_argument("--registers", action="store_true", help="--case is a register case")
    args = parser.parse_args()
    if args.case:
        records = run_case(int(args.case[0]), args.case[1].split(","), args.smoke,
                           args.registers)
        print(json.dumps([{key: value for key, value in record.items()
                           if key not in _record(None, "", False)} for record in records]))
        return
    from kernels_triton import matmul_layouts

    # Name the loads and cases as the children run them: _child_environment turns every switch on.
    matmul_layouts.REGISTER_A_ALLOWED = matmul_layouts.WARP_SPECIALIZE_ALLOWED = True
    loads = {layout: kernel_layout(layout) for layout in matmul_layouts.TMA_LAYOUTS}
    cases = canary_cases(args.smoke, loads)
    deadline = time.perf_counter() + BUDGET_S
    with ThreadPoolExecutor(max_workers=2 if args.smoke else args.workers) as pool:
        records = [record for case_records in pool.map(
            lambda case: _spawn(case[0], case[1], args.smoke, deadline, case[2]), cases)
            for record in case_records]
    records = [dict(record, loads=loads[record["layout"]]) if record["path"] == "tma" else record
               for record in records]
    registers, specialized = register_value(records), warp_specialize_value(records)
    switch = switch_value(records, registers, specialized)
    save("tma_canary", {"device": device_name(), "shapes": SMOKE_SHAPES if args.smoke else SHAPES,
                        "cases": records, "switch": switch, "register_a": registers,
                        "warp_specialize": specialized})
    for record in records:
        path = f"loads {record['loads']}" if "loads" in record else "registers"
        print(f"{record['config']:>38} {record['layout']} ({path}) "
              f"{record['status']:<12} {record.get('rel_err', float('nan')):.1e}")
        if "detail" in record:
            print("    ", record["detail"].replace("\n", "\n     "))
    _write_atomically("register_a.txt", registers)
    _write_atomically("warp_specialize.txt", specialized)
    _write_atomically("tma_layouts.txt", switch)
    print(f"{matmul_layouts.REGISTER_SWITCH}={registers} "
          f"{matmul_layouts.WARP_SPECIALIZE_SWITCH}={specialized} "
          f"{matmul_layouts.TMA_SWITCH}={switch}")
    sys.exit(0 if all(r["status"] == "ok" for r in records) else 1)


if __name__ == "__main__":
    main()
