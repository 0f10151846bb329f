"""The GPU check's decision rules (bench/gpu_decisions.py) on a made-up run: the TF32 target, the
fastest way to read a row-major B and whether its tile must be promoted, the register-rounding
rule, unused autotune candidates, the conv passes' targets, direct launches, and nothing at all
from an empty run.
Tests of the bench layer.
"""

import copy

from bench.gpu_decisions import decisions

CANDIDATE = (128, 256, 32, 8, 8, 4, False, False, False, False)
OTHER_CANDIDATE = (256, 128, 32, 8, 8, 3, False, True, False, False)
SWEEP_ONLY = (128, 128, 64, 8, 8, 3, True, False, False, False)
RUN = {
    "matmul": {"rows": [
        {"size": 4096, "precision": "tf32", "staging": "auto", "ratio": 0.77,
         "best_config_tuple": list(CANDIDATE)},
        {"size": 8192, "precision": "tf32", "staging": "auto", "ratio": 0.79,
         "best_config_tuple": list(CANDIDATE)},
        {"size": 8192, "precision": "tf32", "staging": "never", "ratio": 0.41},
        {"size": 8192, "precision": "ieee", "staging": "auto", "ratio": 0.94},
    ]},
    "overhead": {
        "cases": {"transpose 8192 rounding to tf32": {"kernels_us": {"_transpose_kernel": 182.0}}},
        "tf32_configs": {"size": 8192, "cublas_ms": {"k_major": 2.9, "n_major": 2.93}, "rows": [
            {"b_layout": "k_major", "config": list(CANDIDATE), "ms": 3.6, "rel_err": 1e-4,
             "ratio": 0.81},
            {"b_layout": "n_major", "config": list(SWEEP_ONLY), "ms": 3.5, "rel_err": 1e-4,
             "ratio": 0.84},
            # A wrong kernel is fastest of all and must not count.
            {"b_layout": "n_major", "config": list(OTHER_CANDIDATE), "ms": 1.0, "rel_err": 0.5,
             "ratio": 2.9},
            {"b_layout": "k_major, A rounded in registers", "config": list(CANDIDATE),
             "ms": 3.62, "rel_err": 1e-4, "ratio": 0.80, "err_f64": 2.9e-4},
        ]}},
    "train": {"step_ms": {"cuda": 6.0, "cpu": 3.0}},
}


def test_decisions_of_a_run():
    lines = decisions(RUN, [CANDIDATE, OTHER_CANDIDATE])
    assert lines[0] == "TF32 4096: 0.77 of cuBLAS, target 0.8 missed by 0.03"
    assert lines[1] == ("TF32 8192: 0.79 of cuBLAS, target 0.8 missed by 0.01; B read as stored "
                        "(no copy): 0.41")
    # 2.93 / (0.182 + 3.6): the copy costs the K-major tile its lead.
    assert lines[2] == "TF32 8192, row-major B: copy B K-major, then 128x256x32 w8 s4: 0.77"
    assert lines[3] == ("TF32 8192, row-major B: B through registers, 128x128x64 w8 s3 "
                        "persistent: 0.84 (auto reached 0.79: promote this tile into "
                        "matmul_configs)")
    assert lines[4].startswith("A rounded in registers: best tile +0.6% against the best twin, "
                               "error 2.9e-04")
    assert lines[4].endswith("route every TF32 A through registers (matmul_layouts.register_a) "
                             "and update LAYOUTS in tests/kernels/test_triton_matmul_tf32_"
                             "layouts.py")
    assert lines[5].startswith("TF32 autotune candidates that won no matmul row: 1 of 2")
    assert lines[6] == "training: a step takes 6.00 ms on cuda, 3.00 ms on cpu (2.0x)"
    assert len(lines) == 7


def test_a_slower_rounded_a_keeps_the_rule_and_a_candidate_is_not_promoted():
    run = copy.deepcopy(RUN)
    rows = run["overhead"]["tf32_configs"]["rows"]
    rows[3]["ms"] = 3.8  # 5.6 % slower than its twin
    rows[1]["config"] = list(OTHER_CANDIDATE)
    lines = decisions(run, [CANDIDATE, OTHER_CANDIDATE])
    assert lines[3].endswith("(auto reached 0.79: the autotuner or the copy-or-registers timing "
                             "missed it)")
    assert lines[4].endswith("keep register_a as it is")


def test_an_empty_or_cut_short_run_decides_nothing_it_cannot():
    assert decisions({}) == []
    cut = {"overhead": {"tf32_configs": {"size": 8192, "cublas_ms": 2.9, "rows": []}}}
    assert decisions(cut) == ["A rounded in registers: no row to compare (cut by the budget, "
                              "or wrong)"]


def test_a_sweep_saved_before_the_later_keys_still_reads():
    # The last H100 run's sweep: 8-field tuples, one cuBLAS time, rows without a B layout.
    run = {"overhead": {
        "cases": {"transpose 8192": {"kernels_us": {"_transpose_kernel": 186.0}}},
        "tf32_configs": {"size": 8192, "cublas_ms": 2.93, "rows": [
            {"config": [128, 256, 32, 8, 8, 4, False, False], "ms": 3.62, "ratio": 0.81}]}}}
    assert decisions(run)[0] == ("TF32 8192, row-major B: copy B K-major, then 128x256x32 w8 s4: "
                                 "0.77")


def test_warp_specialized_candidates_count_only_where_they_could_run():
    warp_specialized = CANDIDATE[:-1] + (True,)
    candidates = [CANDIDATE, OTHER_CANDIDATE, warp_specialized]
    assert "won no matmul row: 1 of 2" in decisions(RUN, candidates)[5]
    run = dict(RUN, tma_canary={"warp_specialize": "on"})
    assert "won no matmul row: 2 of 3" in decisions(run, candidates)[5]


def test_conv_passes_against_their_target():
    """The better of the eager and the graph ratio counts, only under the default staging, and a
    miss names its tile."""
    rows = [
        {"pass": "forward", "precision": "ieee", "staging": "auto", "ratio": 0.64,
         "graph_ratio": 1.49, "tile": "64x64x32 w4 s3"},
        {"pass": "input_grad", "precision": "ieee", "staging": "auto", "ratio": 0.44,
         "graph_ratio": 0.52},
        {"pass": "weight_grad", "precision": "ieee", "staging": "auto", "ratio": 0.28,
         "graph_ratio": 0.48, "tile": "64x64x64 w4 s3"},
        {"pass": "weight_grad", "precision": "tf32", "staging": "auto", "ratio": 0.52,
         "graph_ratio": None},
        {"pass": "input_grad", "precision": "ieee", "staging": "always", "ratio": 0.21,
         "graph_ratio": 0.3},
    ]
    assert decisions({"conv": {"rows": rows}}) == [
        "conv layer: 3 of 4 passes at 0.5 of cuDNN or better; missed: weight_grad ieee 0.48, "
        "tile 64x64x64 w4 s3"]
    rows[2]["graph_ratio"] = 0.61
    assert decisions({"conv": {"rows": rows}}) == [
        "conv layer: 4 of 4 passes at 0.5 of cuDNN or better"]


def test_direct_launches_kept_by_the_host_time_or_turned_off_by_a_failed_identity_test():
    run = {"overhead": {"cases": {
        "matmul ieee 512 auto": {"host_us": 30.0, "host_us_through_triton": 60.0},
        "transpose 512": {"host_us": 20.0, "host_us_through_triton": 25.0},
        "conv forward tf32 auto": {"host_us": 30.0, "host_us_through_triton": 45.0},
        "from an older check": {"host_us": 50.0}}}}
    assert decisions(run)[-1] == ("direct launches: host time per call 0.67 of Triton's launch "
                                  "path (median of 3 cases); keep them")
    run["tests"] = {"failed": [
        "tests.kernels.test_cuda_direct_launch::test_training_launched_directly_is_bit_identical"
        "[mlp_dropout]", "tests.kernels.test_triton_norm::test_other"]}
    assert decisions(run)[-1].startswith("direct launches: 1 bit-identity test(s) failed ")
    assert "ENGINE_DIRECT_LAUNCH=off" in decisions(run)[-1]
