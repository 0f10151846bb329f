"""What the GPU check's numbers decide (bench layer), as rules written down before the run: whether
TF32 meets its target, what each way of reading a row-major B could reach with the best tile the
sweep found, whether every TF32 A should go through registers, which autotune candidates never won,
which conv passes miss their target and with which tile, whether direct launches stay on.
gpu_report.py prints them last, so that a short GPU session reads conclusions, not only tables.
"""

from bench.gpu_common import CONFIG_KEYS

# The targets, of cuBLAS at 4096 and above and of cuDNN.
MATMUL_TARGET, CONV_TARGET = 0.8, 0.5
TIE = 0.01  # speeds within 1 % are a tie at the sweep's timing noise
ROUNDED_A = "k_major, A rounded in registers"


def tuple_label(config):
    """A sweep configuration tuple (CONFIG_KEYS order) in short, like gpu_common.config_label.
    Tuples saved before the later keys existed lack them: those flags were off."""
    meta = dict(zip(CONFIG_KEYS, config))
    flags = [name for name, key in (("persistent", "PERSISTENT"), ("tma", "TMA"),
                                    ("split", "SPLIT_EPILOGUE"), ("ws", "WARP_SPECIALIZE"))
             if meta.get(key)]
    return " ".join([f"{meta['BLOCK_M']}x{meta['BLOCK_N']}x{meta['BLOCK_K']} w{meta['warps']} "
                     f"s{meta['stages']}"] + flags)


def _matmul_rows(results, precision, staging):
    return [row for row in (results.get("matmul") or {}).get("rows", [])
            if row.get("precision") == precision and row.get("staging", "auto") == staging
            and "ratio" in row]


def tf32_target(results):
    never = {row["size"]: row["ratio"] for row in _matmul_rows(results, "tf32", "never")}
    lines = []
    for row in _matmul_rows(results, "tf32", "auto"):
        if row["size"] < 4096:
            continue
        verdict = ("met" if row["ratio"] >= MATMUL_TARGET
                   else f"missed by {MATMUL_TARGET - row['ratio']:.2f}")
        stored = (f"; B read as stored (no copy): {never[row['size']]:.2f}"
                  if row["size"] in never else "")
        lines.append(f"TF32 {row['size']}: {row['ratio']:.2f} of cuBLAS, target {MATMUL_TARGET} "
                     f"{verdict}{stored}")
    return lines


def _sweep_groups(sweep):
    """The sweep's right rows (error within 1 % of cuBLAS) by B layout."""
    groups = {}
    for row in sweep.get("rows", []):
        if "ratio" in row and row.get("rel_err", 0) <= 1e-2:
            groups.setdefault(row.get("b_layout", "k_major"), []).append(row)
    return groups


def _copy_ms(results, size):
    """Device time of the staging copy of a size x size B (rounding to TF32 when measured)."""
    cases = (results.get("overhead") or {}).get("cases") or {}
    for name in (f"transpose {size} rounding to tf32", f"transpose {size}"):
        kernels = (cases.get(name) or {}).get("kernels_us")
        if kernels:
            return sum(kernels.values()) / 1e3
    return None


def row_major_b(results, candidates):
    """Each way of reading the benchmark's row-major B with the sweep's fastest tile for it,
    against the "auto" row: a faster way whose tile is no autotune candidate should become one."""
    sweep = (results.get("overhead") or {}).get("tf32_configs")
    if not sweep:
        return []
    cublas = sweep.get("cublas_ms")
    cublas = cublas.get("n_major") if isinstance(cublas, dict) else cublas
    groups, size = _sweep_groups(sweep), sweep["size"]
    copy = _copy_ms(results, size)
    ways = []
    if groups.get("k_major") and copy is not None:
        best = min(groups["k_major"], key=lambda row: row["ms"])
        ways.append(("copy B K-major, then", copy + best["ms"], best))
    if groups.get("n_major"):
        best = min(groups["n_major"], key=lambda row: row["ms"])
        ways.append(("B through registers,", best["ms"], best))
    auto = {row["size"]: row["ratio"] for row in _matmul_rows(results, "tf32", "auto")}
    lines = []
    for label, ms, row in ways:
        ratio = cublas / ms if cublas else float("nan")
        line = f"TF32 {size}, row-major B: {label} {tuple_label(row['config'])}: {ratio:.2f}"
        if size in auto and ratio > auto[size] * (1 + TIE):
            line += (f" (auto reached {auto[size]:.2f}: "
                     + ("the autotuner or the copy-or-registers timing missed it)"
                        if tuple(row["config"]) in candidates
                        else "promote this tile into matmul_configs)"))
        lines.append(line)
    return lines


def register_rounding(results):
    """The rule of the sixth session: if A rounded in registers (both operands rounded, cuBLAS's
    error) costs at most TIE on the best K-major tile, route every TF32 A through registers."""
    sweep = (results.get("overhead") or {}).get("tf32_configs")
    if not sweep:
        return []
    groups = _sweep_groups(sweep)
    plain = {tuple(row["config"]): row for row in groups.get("k_major", [])}
    pairs = [(row, plain[tuple(row["config"])]) for row in groups.get(ROUNDED_A, [])
             if tuple(row["config"]) in plain]
    if not pairs:
        return ["A rounded in registers: no row to compare (cut by the budget, or wrong)"]
    best_rounded = min(row["ms"] for row, _ in pairs)
    best_plain = min(twin["ms"] for _, twin in pairs)
    cost = best_rounded / best_plain - 1
    speeds = ", ".join(f"{tuple_label(row['config'])} {twin['ms'] / row['ms']:.3f}x speed"
                       for row, twin in pairs)
    verdict = ("route every TF32 A through registers (matmul_layouts.register_a) and update "
               "LAYOUTS in tests/kernels/test_triton_matmul_tf32_layouts.py"
               if cost <= TIE else "keep register_a as it is")
    err = [row.get("err_f64") for row, _ in pairs if row.get("err_f64") is not None]
    err_text = f", error {min(err):.1e}" if err else ""
    return [f"A rounded in registers: best tile {cost:+.1%} against the best twin{err_text} "
            f"({speeds}): {verdict}"]


def unused_candidates(results, candidates):
    won = {tuple(row["best_config_tuple"]) for row in _matmul_rows(results, "tf32", "auto")
           + _matmul_rows(results, "tf32", "never") if row.get("best_config_tuple")}
    # With warp specialization off (the default, or the canary's switch) those candidates were
    # never timed: they had no chance to win a row.
    if (results.get("tma_canary") or {}).get("warp_specialize", "off") != "on":
        ws = CONFIG_KEYS.index("WARP_SPECIALIZE")
        candidates = [config for config in candidates if not config[ws]]
    if not won or not candidates:
        return []
    unused = [config for config in candidates if config not in won]
    return [f"TF32 autotune candidates that won no matmul row: {len(unused)} of "
            f"{len(candidates)} (each costs every new process a compile per layout; drop only "
            f"those the sweep also ranks low)"]


def conv_targets(results):
    """The conv layer's passes under the device's default staging against their target (the
    better of the eager and the CUDA-graph ratio), a miss with the tile the autotuner chose."""
    rows = [row for row in (results.get("conv") or {}).get("rows", [])
            if row.get("staging", "auto") == "auto" and "ratio" in row]
    misses = []
    for row in rows:
        best = max(row["ratio"], row.get("graph_ratio") or 0)
        if best < CONV_TARGET:
            tile = f", tile {row['tile']}" if row.get("tile") else ""
            misses.append(f"{row['pass']} {row['precision']} {best:.2f}{tile}")
    if not rows:
        return []
    return [f"conv layer: {len(rows) - len(misses)} of {len(rows)} passes at {CONV_TARGET} of "
            f"cuDNN or better" + (f"; missed: {'; '.join(misses)}" if misses else "")]


def training(results):
    per_step = (results.get("train") or {}).get("step_ms") or {}
    cuda, cpu = per_step.get("cuda"), per_step.get("cpu")
    if not cuda or not cpu:
        return []
    return [f"training: a step takes {cuda:.2f} ms on cuda, {cpu:.2f} ms on cpu "
            f"({cuda / cpu:.1f}x)"]


def direct_launches(results):
    """Whether direct launches (kernels_triton/launch.py) stay on: a failed bit-identity test
    (tests/kernels/test_cuda_direct_launch.py) turns them off; otherwise the overhead probe's
    host time per call against launching through Triton says what they save."""
    failed = [name for name in (results.get("tests") or {}).get("failed", [])
              if "test_cuda_direct_launch" in name]
    if failed:
        return [f"direct launches: {len(failed)} bit-identity test(s) failed "
                f"({'; '.join(failed)}): set ENGINE_DIRECT_LAUNCH=off and look at "
                "kernels_triton/launch.py"]
    ratios = sorted(row["host_us"] / row["host_us_through_triton"]
                    for row in ((results.get("overhead") or {}).get("cases") or {}).values()
                    if row.get("host_us") and row.get("host_us_through_triton"))
    if not ratios:
        return []
    return [f"direct launches: host time per call {ratios[len(ratios) // 2]:.2f} of Triton's "
            f"launch path (median of {len(ratios)} cases); keep them"]


def decisions(results, candidates=()):
    """The conclusions as lines; `candidates` are the TF32 autotune configurations as tuples."""
    candidates = [tuple(config) for config in candidates]
    return (tf32_target(results) + row_major_b(results, candidates)
            + register_rounding(results) + unused_candidates(results, candidates)
            + conv_targets(results) + training(results) + direct_launches(results))
