"""The GPU check's canary (bench/gpu_tma_canary.py) in Triton's interpreter: a case comes out right,
a case whose process fails is recorded as crashed, the register path stays on only if all its cases
were right, and only layouts the kernel loads on which every case was right (without registers
when those are off) reach ENGINE_MATMUL_TMA for the later stages.
"""

import pytest

from kernels_triton.common import interpreting
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()
# Smoke cases run on torch CPU tensors; on a GPU the check's own stage runs the canary for real.
smoke_only = pytest.mark.skipif(not interpreting(), reason="smoke cases need TRITON_INTERPRET=1")


@smoke_only
def test_a_case_checks_the_product_against_float64():
    from bench.gpu_tma_canary import run_case

    # Persistent, split epilogue; A rounded to TF32 in registers (about 2^-12 relative per
    # term), as stored or once swapped into first place.
    for record in run_case(2, ["mn", "kn"], smoke=True):
        assert record["status"] == "ok" and record["rel_err"] < 1e-3, record


@smoke_only
def test_a_register_case_checks_every_layout_through_registers(monkeypatch):
    from bench.gpu_tma_canary import REGISTER_LAYOUTS, run_case
    from kernels_triton import matmul_layouts

    # In this process, as in the children the canary runs it in, whatever the suite was told.
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)
    records = run_case(1, REGISTER_LAYOUTS, smoke=True, registers=True)  # persistent
    assert [r["layout"] for r in records] == list(REGISTER_LAYOUTS)
    for record in records:
        assert record["path"] == "registers"
        # The interpreter's fp32 dots leave only the register operand's rounding to see.
        assert record["status"] == "ok" and 1e-6 < record["rel_err"] < 1e-3, record


def test_each_stored_layout_names_the_layout_the_kernel_loads(monkeypatch):
    from bench.gpu_tma_canary import kernel_layout
    from kernels_triton import matmul_layouts

    # Whatever ENGINE_MATMUL_REGISTER_A the suite runs under: nothing is launched here.
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)
    assert [kernel_layout(layout) for layout in ("kk", "kn", "mk", "mn")] == [
        "kk", "mk", "mk", "mn"]
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", False)
    assert [kernel_layout(layout) for layout in ("kk", "kn", "mk", "mn")] == [
        "kk", "kn", "mk", "mn"]


@smoke_only
def test_a_failing_case_process_is_recorded_not_raised():
    import time

    from bench.gpu_tma_canary import _spawn

    # No such layout: the child fails, and every layout of its case is recorded so.
    records = _spawn(0, ("kk", "nk"), smoke=True, deadline=time.perf_counter() + 60)
    assert [r["layout"] for r in records] == ["kk", "nk"]
    for record in records:
        assert record["status"].startswith("crashed") and "nk" in record["detail"]


def test_cases_past_the_deadline_are_not_started():
    import time

    from bench.gpu_tma_canary import _spawn

    records = _spawn(0, ("kn", "mk"), smoke=True, deadline=time.perf_counter(), registers=True)
    assert [(r["path"], r["status"]) for r in records] == [
        ("registers", "not run (canary out of time)")] * 2


def test_a_configuration_too_big_for_the_gpu_is_recorded_as_such(monkeypatch):
    from triton.runtime.errors import OutOfResources

    import bench.gpu_tma_canary as canary

    def too_big(*args):
        raise OutOfResources(278528, 232448, "shared memory")

    monkeypatch.setattr(canary, "_product_error", too_big)
    assert [r["status"] for r in canary.run_case(0, ["kk"], smoke=True)] == ["no_resources"]


def test_a_shape_too_big_for_the_gpu_leaves_the_others_counting(monkeypatch):
    """Shared memory depends on the sizes (their divisibility sets the epilogue's vector width):
    the shapes that fit still decide the case."""
    from triton.runtime.errors import OutOfResources

    import bench.gpu_tma_canary as canary

    def error_of(config, layout, shape, seed, smoke):
        if shape[0] % 2:
            raise OutOfResources(311520, 232448, "shared memory")
        return {"ok": 1e-4, "wrong": 0.5}[layout]

    monkeypatch.setattr(canary, "SMOKE_SHAPES", ((40, 20, 36), (41, 20, 36)))
    monkeypatch.setattr(canary, "_product_error", error_of)
    right, wrong = canary.run_case(0, ["ok", "wrong"], smoke=True)
    assert right["status"] == "ok" and "(41, 20, 36)" in right["detail"]
    assert wrong["status"] == "wrong"


def test_cases_are_what_the_autotuner_would_launch(monkeypatch):
    """Every register configuration on the three register layouts, then every TMA configuration
    on each stored layout, but a warp-specialized one not where its load cannot have it."""
    from bench.gpu_tma_canary import REGISTER_LAYOUTS, canary_cases, canary_configs
    from kernels_triton import matmul_layouts

    # As the canary's children run, whatever the suite was told.
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)
    monkeypatch.setattr(matmul_layouts, "WARP_SPECIALIZE_ALLOWED", True)

    loads = {"kk": "kk", "kn": "mk", "mk": "mk", "mn": "mn"}
    cases = canary_cases(True, loads)
    assert cases[:2] == [(0, REGISTER_LAYOUTS, True), (1, REGISTER_LAYOUTS, True)]
    tma = cases[2:]
    specialized = [i for i, c in enumerate(canary_configs(True)) if c.kwargs["WARP_SPECIALIZE"]]
    assert specialized
    for index in range(len(canary_configs(True))):
        layouts = [case[1][0] for case in tma if case[0] == index]
        assert layouts == (["kk", "kn", "mk"] if index in specialized else
                           ["kk", "kn", "mk", "mn"])
    assert not any(case[2] for case in tma)


def test_warp_specialization_stays_on_only_if_every_case_of_it_was_right():
    from bench.gpu_tma_canary import warp_specialize_value

    def records(*statuses):
        return [{"path": "tma", "ws": True, "status": status} for status in statuses] + [
            {"path": "tma", "ws": False, "status": "wrong"},
            {"path": "registers", "ws": False, "status": "wrong"}]

    assert warp_specialize_value(records("ok", "no_resources")) == "on"
    assert warp_specialize_value(records("ok", "timeout")) == "off"
    assert warp_specialize_value(records()) == "off"


def test_the_register_path_stays_on_only_if_every_case_was_right():
    from bench.gpu_tma_canary import register_value

    def records(*statuses):
        return [{"path": "registers", "status": status} for status in statuses] + [
            {"path": "tma", "status": "wrong"}]

    assert register_value(records("ok", "ok", "no_resources")) == "on"
    assert register_value(records("ok", "wrong")) == "off"
    assert register_value(records("ok", "not run (canary out of time)")) == "off"
    assert register_value(records()) == "off"


def test_only_layouts_right_in_every_case_stay_on():
    from bench.gpu_tma_canary import switch_value

    loads = {"kk": "kk", "kn": "mk", "mk": "mk", "mn": "mn"}

    def records(**status):
        return [{"path": "tma", "ws": False, "layout": layout, "loads": loads[layout],
                 "status": value} for layout, value in status.items()] + [
            {"path": "tma", "ws": False, "layout": layout, "loads": loads[layout], "status": "ok"}
            for layout in loads] + [{"path": "registers", "ws": False, "layout": "kn",
                                     "status": "wrong"}]

    assert switch_value(records()) == "kk,mk,mn"
    # Without registers an M-major A would load another way, which no case ran.
    assert switch_value(records(), registers="off") == "kk"
    # A warp-specialized case that hung switches TMA off on its layout, unless warp
    # specialization itself is off, and then its cases no longer run.
    hung = records() + [{"path": "tma", "ws": True, "layout": "kk", "loads": "kk",
                         "status": "timeout"}]
    assert switch_value(hung) == "mk,mn"
    assert switch_value(hung, warp_specialize="off") == "kk,mk,mn"
    assert switch_value(records(kk="no_resources")) == "kk,mk,mn"
    assert switch_value(records(kn="wrong")) == "kk,mn"  # the product stored kn loads mk
    assert switch_value(records(kk="timeout", mn="wrong")) == "mk"
    assert switch_value(records(kk="crashed (rc -11)", kn="wrong", mn="not run (canary out of "
                                "time)")) == "off"


def test_child_processes_try_every_path_whatever_the_defaults(monkeypatch):
    from bench.gpu_tma_canary import _child_environment
    from kernels_triton import matmul_layouts

    monkeypatch.setenv(matmul_layouts.TMA_SWITCH, "off")
    monkeypatch.setenv(matmul_layouts.WARP_SPECIALIZE_SWITCH, "off")
    env = _child_environment()
    for switch in (matmul_layouts.TMA_SWITCH, matmul_layouts.REGISTER_SWITCH,
                   matmul_layouts.WARP_SPECIALIZE_SWITCH):
        assert env[switch] == "on", switch


def test_tma_defaults_leave_out_m_major_a_without_the_register_path():
    from kernels_triton.matmul_layouts import parse_tma_switch, tma_default

    assert parse_tma_switch(tma_default(True)) == {"kk", "mn"}
    assert parse_tma_switch(tma_default(False)) == {"kk"}

