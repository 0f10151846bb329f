"""Merge the GPU check's stage outputs ($OUT/*.json, stages.jsonl, tests.xml) into
$OUT/gpu_results.json and print the summary table with ratios against cuBLAS/cuDNN and the issue's
targets (matmul >= 0.8 of cuBLAS at 4096+, conv >= 0.5 of cuDNN). Bench layer.
Usage: python bench/gpu_report.py
"""

import json
import os
import xml.etree.ElementTree as ElementTree

from bench.gpu_common import config_tuple, out_dir, sweep_marks
from bench.gpu_decisions import CONV_TARGET, MATMUL_TARGET, decisions


def _load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _tests(path):
    if not os.path.exists(path):
        return None
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["failed"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter(
        "testcase") if case.find("failure") is not None or case.find("error") is not None][:50]
    return counts


def _err_cell(error, width=9):
    """torch's error in the same mode (absent from results written before it was recorded)."""
    return f"{error:>{width}.1e}" if error is not None else f"{'n/a':>{width}}"


def _ratio_cell(ratio, width):
    """A speed ratio, or n/a where none was measured."""
    return f"{ratio:>{width}.2f}" if ratio else f"{'n/a':>{width}}"


def _canary_path(record):
    """How a canary case loaded its tiles: through registers, or TMA in the layout it names."""
    if record.get("path") == "registers":
        return "registers"
    return f"loads {record.get('loads', '?')}"


def _timed_label(staged, stored=False):
    if staged is None:
        return ""
    how = "stored" if stored else "timed"  # stored: decided by an earlier process
    return f", {how}: staged" if staged else f", {how}: B read as stored"


def _sweep_cell(row):
    """One tile configuration's ratio to cuBLAS; a TF32 product more than 1 % off is wrong."""
    if "skipped" in row:
        return f"{tuple(row['config'])} skipped"
    if "ratio" not in row:
        return f"{tuple(row['config'])} error"
    wrong = "" if row.get("rel_err", 0) <= 1e-2 else " WRONG"  # NaN (tiles never written) too
    error = f" err {row['err_f64']:.1e}" if "err_f64" in row else ""
    spills = f" spills {row['spills']} B" if row.get("spills") else ""
    return f"{tuple(row['config'])} {row['ratio']:.2f}{error}{wrong}{spills}"


def _print_conv(conv):
    layer = conv.get("layer", {})
    print(f"\nconv N={layer.get('n')} C={layer.get('c')} K={layer.get('k')} "
          f"{layer.get('h')}x{layer.get('w')} {layer.get('kernel')}x{layer.get('kernel')} pad "
          f"{layer.get('pad')} (GFLOP/s; ratio = ours/cuDNN speed, target {CONV_TARGET}; graph = "
          "CUDA-graph replay, no launch overhead)")
    print(f"{'pass':>12} {'mode':>5} {'staging':>7} {'ours':>7} {'cuDNN':>7} {'ratio':>6} "
          f"{'graph':>6} {'target':>6} {'err':>8} {'cuDNN err':>9}  autotuned tile")
    for row in conv.get("rows", []):
        graph = row.get("graph_ratio")
        best = max(row["ratio"], graph or 0)
        staging = row.get("staging", "auto")
        target = ("ok" if best >= CONV_TARGET else "MISS") if staging == "auto" else ""
        print(f"{row['pass']:>12} {row['precision']:>5} {staging:>7} {row['ours_gflops']:>7.0f} "
              f"{row['torch_gflops']:>7.0f} {row['ratio']:>6.2f} "
              f"{_ratio_cell(graph, 6)} "
              f"{target:>6} {row['rel_err']:>8.1e} {_err_cell(row.get('torch_rel_err'))}  "
              f"{row.get('tile') or ''}")


def _tf32_candidates():
    """The TF32 autotune configurations as tuples (none where Triton does not import)."""
    try:
        from kernels_triton.matmul import matmul_configs
    except ImportError:
        return []
    return [config_tuple(config) for config in matmul_configs("tf32")]


def main():
    out = out_dir()
    stages = []
    if os.path.exists(os.path.join(out, "stages.jsonl")):
        with open(os.path.join(out, "stages.jsonl")) as f:
            stages = [json.loads(line) for line in f if line.strip()]
    results = {"stages": stages, "env": _load(os.path.join(out, "env.json")),
               "tests": _tests(os.path.join(out, "tests.xml")),
               "matmul": _load(os.path.join(out, "matmul.json")),
               "conv": _load(os.path.join(out, "conv.json")),
               "conv_large": _load(os.path.join(out, "conv_large.json")),
               "train": _load(os.path.join(out, "train.json")),
               "overhead": _load(os.path.join(out, "overhead.json")),
               "compile_ahead": _load(os.path.join(out, "compile_ahead.json")),
               "tma_canary": _load(os.path.join(out, "tma_canary.json"))}
    with open(os.path.join(out, "gpu_results.json"), "w") as f:
        json.dump(results, f, indent=1)

    print("env:", results["env"])
    print("stages:", ", ".join(f"{s['stage']} rc={s['rc']} {s['seconds']}s" for s in stages))
    if results["tests"]:
        t = results["tests"]
        print(f"tests: {t['tests']} run, {t['failures']} failures, {t['errors']} errors, "
              f"{t['skipped']} skipped")
        for name in t["failed"]:
            print("  FAILED", name)
    canary = results["tma_canary"]
    if canary:
        bad = [f"{r['config']} {r['layout']} ({_canary_path(r)}): {r['status']}"
               for r in canary["cases"] if r["status"] != "ok"]
        print(f"\ncanary: {len(canary['cases']) - len(bad)}/{len(canary['cases'])} cases right; "
              f"later stages ran with ENGINE_MATMUL_REGISTER_A={canary.get('register_a', 'on')} "
              f"ENGINE_MATMUL_WARP_SPECIALIZE={canary.get('warp_specialize', '?')} "
              f"ENGINE_MATMUL_TMA={canary['switch']}")
        for line in bad:
            print("  ", line)
    tma_layouts = (results["matmul"] or {}).get("tma_layouts")
    register_a = {True: "on", False: "off"}.get((results["matmul"] or {}).get("register_a"), "?")
    print(f"\nmatmul (TFLOP/s; ratio = ours/cuBLAS speed, target {MATMUL_TARGET} at 4096+; graph = "
          "CUDA-graph replay, where measured; TMA "
          f"layouts {'unknown' if tma_layouts is None else ','.join(tma_layouts) or 'none'}; "
          f"register path {register_a})")
    print(f"{'size':>6} {'mode':>7} {'staging':>7} {'ours':>7} {'cuBLAS':>7} {'ratio':>6} "
          f"{'graph':>6} {'target':>6} {'err':>8} {'cuBLAS err':>10}  autotuned tiles")
    for row in (results["matmul"] or {}).get("rows", []):
        if "error" in row:
            print(f"{row['size']:>6} {row['precision']:>7} ERROR {row['error'][:80]}")
            continue
        staging = row.get("staging", "auto")
        # The target applies to the device's default; other rows are for comparison.
        target = "" if row["size"] < 4096 or row["precision"] == "tf32x3" or staging != "auto" \
            else ("ok" if row["ratio"] >= MATMUL_TARGET else "MISS")
        print(f"{row['size']:>6} {row['precision']:>7} {staging:>7} {row['ours_tflops']:>7.1f} "
              f"{row['torch_tflops']:>7.1f} {row['ratio']:>6.2f} "
              f"{_ratio_cell(row.get('graph_ratio'), 6)} {target:>6} "
              f"{row['ours_rel_err']:>8.1e} {_err_cell(row.get('torch_rel_err'), 10)}  "
              f"{row.get('best_tiles') or ''}"
              f"{_timed_label(row.get('timed_staging'), row.get('staging_stored'))}")
    for name in ("conv", "conv_large"):
        if results[name]:
            _print_conv(results[name])
    sweep = (results["conv"] or {}).get("weight_grad_splits") or []
    if sweep:
        print("\nconv weight gradient against reduction slices (ms; graph ms)")
        for row in sweep:
            graph = f"{row['graph_ms']:.4f}" if row.get("graph_ms") else "n/a"
            layout = (f"x/gy channel-major {row.get('x_channel_major', 0):d}/"
                      f"{row.get('gy_channel_major', 0):d}")
            print(f"  {row['precision']:>5} splits={row['splits']:<3} {layout} {row['ms']:.4f}  "
                  f"{graph}  {row.get('tile') or ''}{sweep_marks(row)}")
    train = results["train"]
    if train:
        print(f"\ntraining ({train['mode']}):")
        for run in train["runs"]:
            print("  ", {k: v for k, v in run.items() if k not in ("output_tail", "losses")})
        if train.get("step_ms"):
            print("   a training step, second half of the run (ms):", train["step_ms"])
        profile = train.get("cuda_profile")
        if profile:
            print(f"   cuda run under cProfile: {profile['total_s']} s, launch entries called "
                  f"{profile['launch_calls']}; top cumulative, then top own time:")
            # The top 8 of each (train.json holds 20): the output that comes back is cut short.
            for line in profile["top_cumulative"][:8] + ["..."] + profile["top_own"][:8]:
                print("    ", line)
    ahead = results["compile_ahead"]
    if ahead:
        print(f"\nfirst autotuning of the conv layer and a 1024^3 product ({ahead['precision']}), "
              f"compiles only: {ahead['one_at_a_time_s']} s one at a time, {ahead['ahead_s']} s "
              f"with {ahead['compiled_ahead']} candidates compiled ahead on {ahead['threads']} "
              f"threads ({ahead['one_at_a_time_s'] / ahead['ahead_s']:.2f}x)")
    overhead = results["overhead"]
    if overhead:
        print("\nhost time per call (us, launch loop without syncs; then with every launch "
              "through Triton's launch path) and device time per kernel (us)")
        for name, row in overhead["cases"].items():
            kernels = ", ".join(f"{k} {v}" for k, v in row["kernels_us"].items())
            through = row.get("host_us_through_triton")
            through = f" ({through:.1f})" if through is not None else ""
            print(f"  {name:<28} host {row['host_us']:>7.1f}{through}  {kernels}")
        sweep = overhead.get("tf32_configs")
        if sweep:
            print(f"TF32 {sweep['size']}^3, ours/cuBLAS by tile config (BLOCK_M, BLOCK_N, "
                  "BLOCK_K, GROUP_M, warps, stages, persistent, tma, split epilogue, "
                  "warp-specialized) and error against float64:")
            for b_layout in dict.fromkeys(row.get("b_layout", "k_major")
                                          for row in sweep["rows"]):
                cublas_err = sweep.get("cublas_err_f64", {}).get(b_layout)
                print(f"  B {b_layout} (cuBLAS err {_err_cell(cublas_err, 0)}):", ", ".join(
                    _sweep_cell(row) for row in sweep["rows"]
                    if row.get("b_layout", "k_major") == b_layout))
    print("\nwhat the numbers decide (bench/gpu_decisions.py):")
    try:
        lines = decisions(results, _tf32_candidates())
    except Exception as error:  # the tables above and gpu_results.json matter more
        lines = [f"the rules failed on these results: {error!r}"]
    for line in lines:
        print("  ", line)
    print(f"\nwrote {os.path.join(out, 'gpu_results.json')}")


if __name__ == "__main__":
    main()
