"""The cuda device's measured staging choice (backend layer, through the Triton kernels): a TF32
product that "auto" would stage is timed both ways once per shape with the device's timer (here a
fake one) and then runs the faster way; every other product keeps the size rule. Results are the
same either way.
"""

import numpy as np
import pytest

from tests.kernels.test_triton_matmul import _check, _matmul, rtol_for
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()

RNG = np.random.default_rng(11)
M, K, N = 12, 16, 20


@pytest.fixture
def timed(cuda, monkeypatch):
    """Every product counts as large; the timer reports `timed.ms[way]` per way ("staged" when
    the call copies an operand first) and logs its calls; relayout copies are counted."""
    from engine.backend import cuda_staging

    monkeypatch.setattr(cuda_staging, "MIN_WORK", 1)
    monkeypatch.setattr(cuda_staging, "MIN_REUSE", 1)
    monkeypatch.setattr(cuda_staging, "_timed", {})
    state = {"copies": 0, "timed": [], "ms": {"staged": 1.0, "direct": 2.0}}
    real_relayout = cuda_staging.relayout

    def counting_relayout(*args, **kwargs):
        state["copies"] += 1
        return real_relayout(*args, **kwargs)

    def fake_timer(fn):
        before = state["copies"]
        fn()
        way = "staged" if state["copies"] > before else "direct"
        state["timed"].append(way)
        return state["ms"][way]

    monkeypatch.setattr(cuda_staging, "relayout", counting_relayout)
    monkeypatch.setattr(cuda_staging, "timer", fake_timer)
    cuda.set_matmul_precision("tf32")
    return state


def _row_major_product(cuda, batch=1, n=N):
    a = RNG.standard_normal(batch * M * K).astype(np.float32)
    b = RNG.standard_normal(batch * K * n).astype(np.float32)
    return _matmul(cuda, a, b, batch, M, K, n, (0, (M * K, K, 1)), (0, (K * n, n, 1)))


@pytest.mark.parametrize("n", [N, 21])  # 21-float rows: tensor descriptors cannot read B
@pytest.mark.parametrize("faster", ["staged", "direct"])
def test_first_call_times_both_ways_then_runs_the_faster(cuda, timed, faster, n):
    from engine.backend import cuda_staging

    timed["ms"] = {faster: 1.0, ("direct" if faster == "staged" else "staged"): 2.0}
    got, expected = _row_major_product(cuda, n=n)
    _check(got, expected, K, rtol=rtol_for("tf32"))
    assert sorted(timed["timed"]) == ["direct", "staged"]
    assert list(cuda_staging.timed_choices().values()) == [faster == "staged"]
    copies = timed["copies"]
    got, expected = _row_major_product(cuda, n=n)  # same shape: decided, not timed again
    _check(got, expected, K, rtol=rtol_for("tf32"))
    assert len(timed["timed"]) == 2
    assert timed["copies"] - copies == (1 if faster == "staged" else 0)


@pytest.mark.parametrize("case", ["ieee", "tf32x3", "always", "no_timer", "capturing"])
def test_other_products_keep_the_size_rule(cuda, timed, monkeypatch, case):
    """No timing for IEEE or tf32x3 (no fast copy-free way to read a misplaced operand), a forced
    policy, without a GPU timer, or while a CUDA graph is being captured (timing synchronizes,
    which a capture forbids): the rule copies one operand here (B for the tensor cores, A for
    FMA)."""
    from engine.backend import cuda_staging

    if case in ("ieee", "tf32x3"):
        cuda.set_matmul_precision(case)
    if case == "always":
        cuda.set_operand_staging("always")
    if case == "no_timer":
        monkeypatch.setattr(cuda_staging, "timer", None)
    if case == "capturing":
        monkeypatch.setattr(cuda, "_capturing", lambda: True)
    got, expected = _row_major_product(cuda)
    _check(got, expected, K, rtol=rtol_for(case if case in ("ieee", "tf32x3") else "tf32"))
    assert timed["timed"] == []
    assert timed["copies"] == 1


def test_bad_input_is_reported_before_any_timing(cuda, timed):
    a, b, out = cuda.alloc(M * K - 1), cuda.alloc(K * N), cuda.alloc(M * N)
    with pytest.raises(ValueError, match="matmul a"):
        cuda.matmul(a, b, out, 1, M, K, N, 0, 0, K, 1, 0, 0, N, 1)
    assert timed["timed"] == []


def test_a_capture_keeps_an_earlier_decision(cuda, timed, monkeypatch):
    timed["ms"] = {"staged": 2.0, "direct": 1.0}
    _row_major_product(cuda)  # decided: direct, no copy
    copies = timed["copies"]
    monkeypatch.setattr(cuda, "_capturing", lambda: True)
    got, expected = _row_major_product(cuda)
    _check(got, expected, K, rtol=rtol_for("tf32"))
    assert timed["copies"] == copies and len(timed["timed"]) == 2

