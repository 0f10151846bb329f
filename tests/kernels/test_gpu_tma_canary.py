"""The GPU check's TMA canary (bench/gpu_tma_canary.py) in Triton's interpreter: a case comes out
right, a case whose process fails is recorded as crashed, and only layouts the kernel loads on
which every case was right reach ENGINE_MATMUL_TMA for the later stages.
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
    for layout in ("mn", "kn"):
        record = run_case(2, layout, smoke=True)
        assert record["status"] == "ok" and record["rel_err"] < 1e-3, record


def test_each_stored_layout_names_the_layout_the_kernel_loads():
    from bench.gpu_tma_canary import kernel_layout

    assert [kernel_layout(layout) for layout in ("kk", "kn", "mk", "mn")] == [
        "kk", "mk", "mk", "mn"]


@smoke_only
def test_a_failing_case_process_is_recorded_not_raised():
    import time

    from bench.gpu_tma_canary import _spawn

    # No such layout: the child fails.
    record = _spawn(0, "nk", smoke=True, deadline=time.perf_counter() + 60)
    assert record["status"].startswith("crashed") and "nk" in record["detail"]


def test_cases_past_the_deadline_are_not_started():
    import time

    from bench.gpu_tma_canary import _spawn

    record = _spawn(0, "kk", smoke=True, deadline=time.perf_counter())
    assert record["status"].startswith("not run")


def test_a_configuration_too_big_for_the_gpu_is_recorded_as_such(monkeypatch):
    from triton.runtime.errors import OutOfResources

    import bench.gpu_tma_canary as canary

    def too_big(*args):
        raise OutOfResources(278528, 232448, "shared memory")

    monkeypatch.setattr(canary, "_product_error", too_big)
    assert canary.run_case(0, "kk", smoke=True)["status"] == "no_resources"


def test_only_layouts_right_in_every_case_stay_on():
    from bench.gpu_tma_canary import switch_value

    loads = {"kk": "kk", "kn": "mk", "mk": "mk", "mn": "mn"}

    def records(**status):
        return [{"layout": layout, "loads": loads[layout], "status": value}
                for layout, value in status.items()] + [
            {"layout": layout, "loads": loads[layout], "status": "ok"} for layout in loads]

    assert switch_value(records()) == "kk,mk,mn"
    assert switch_value(records(kk="no_resources")) == "kk,mk,mn"
    assert switch_value(records(kn="wrong")) == "kk,mn"  # the product stored kn loads mk
    assert switch_value(records(kk="timeout", mn="wrong")) == "mk"
    assert switch_value(records(kk="crashed (rc -11)", kn="wrong", mn="not run (canary out of "
                                "time)")) == "off"
