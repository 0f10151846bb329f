"""How many slices the cuda device's conv weight gradient uses (backend layer): the launcher's rule
without a GPU timer or for small products, else the fastest of one, two and four programs per
multiprocessor, timed once per shape (tests/kernels/test_triton_conv_splits.py runs it through the
kernels).
"""

import pytest

from engine.backend import cuda_weight_grad_splits as weight_grad_splits

# The benchmark's ResNet-style layer on an H100 (132 multiprocessors, 9 tap tiles): 14, 29 and 58
# slices for one, two and four programs per multiprocessor (slices of 128 pixels or more).
LAYER = (32, 16, 16, 64, 64, 3, 3, 1)


@pytest.fixture(autouse=True)
def no_decisions(monkeypatch):
    """No decision in memory (none on disk either: tests/conftest.py turns the store off)."""
    monkeypatch.setattr(weight_grad_splits, "_timed", {})
    monkeypatch.setattr(weight_grad_splits, "_stored", set())


def fake_timer(costs, runs):
    """A timer that runs fn once and reports the cost of the slice count it ran."""
    def timer(fn):
        fn()
        return costs[runs[-1]]
    return timer


def test_the_fastest_candidate_is_chosen_once_after_a_warm_run_of_each():
    runs = []
    timer = fake_timer({14: 3.0, 29: 2.0, 58: 1.0}, runs)
    assert weight_grad_splits.slice_count("layer", LAYER, 132, runs.append, timer) == 58
    assert runs == [14, 29, 58] * 3  # every one warm before any is timed, then two rounds
    assert weight_grad_splits.slice_count("layer", LAYER, 132, runs.append, timer) == 58
    assert len(runs) == 9
    assert weight_grad_splits.timed_splits() == {"layer": 58}


def test_one_candidate_is_not_timed():
    # 512-channel layers fill an H100 with one slice: every candidate is 1.
    runs = []
    timer = fake_timer({}, runs)
    deep = (8, 32, 32, 512, 512, 3, 3, 1)
    assert weight_grad_splits.slice_count("deep", deep, 132, runs.append, timer) == 1
    assert runs == [] and weight_grad_splits.timed_splits() == {}


def test_without_a_timer_or_for_small_products_the_rule_stands():
    runs = []
    rule = 29
    assert weight_grad_splits.slice_count("k", LAYER, 132, runs.append, None) == rule
    timer = fake_timer({14: 1.0, 29: 2.0, 58: 3.0}, runs)
    tiny = (1, 8, 8, 64, 64, 3, 3, 1)  # under the autotuning threshold
    assert weight_grad_splits.slice_count("t", tiny, 132, runs.append, timer) == 1
    assert runs == []


def test_a_gpu_timer_decides_large_products_among_one_two_and_four_per_multiprocessor():
    runs = []
    timer = fake_timer({14: 1.0, 29: 2.0, 58: 3.0}, runs)
    assert weight_grad_splits.slice_count("k", LAYER, 132, runs.append, timer) == 14
    assert sorted(set(runs)) == [14, 29, 58]


def test_each_candidate_keeps_its_best_round():
    runs = []
    rounds = iter([5.0, 2.0, 3.0, 1.0, 2.0, 3.0])  # 14 came first while clocks ramped up

    def timer(fn):
        fn()
        return next(rounds)

    assert weight_grad_splits.fastest([14, 29, 58], runs.append, timer) == 14


def test_a_capture_keeps_an_earlier_decision_or_else_the_rule():
    runs = []
    timer = fake_timer({14: 1.0, 29: 2.0, 58: 3.0}, runs)
    assert weight_grad_splits.slice_count("k", LAYER, 132, runs.append, timer,
                                          may_time=False) == 29
    assert runs == [] and weight_grad_splits.timed_splits() == {}
    assert weight_grad_splits.slice_count("k", LAYER, 132, runs.append, timer) == 14
    assert weight_grad_splits.slice_count("k", LAYER, 132, runs.append, timer,
                                          may_time=False) == 14

