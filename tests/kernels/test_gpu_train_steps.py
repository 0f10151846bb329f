"""bench/gpu_train.py's time per training step from a run record (bench layer): the second half
of the steps only, so the first steps' compiles and kernel loads stay out of it."""

from bench.gpu_train import step_ms


def _record(times):
    return {"metrics": [{"step": step, "train_time_s": seconds} for step, seconds in times]}


def test_the_second_half_of_the_steps_is_timed():
    # Step 1 took 5 s (compiles); from step 100 to 200 each step took 2 ms.
    record = _record([(1, 5.0), (50, 5.2), (100, 5.3), (150, 5.4), (200, 5.5)])
    assert step_ms(record) == 2.0


def test_without_an_earlier_entry_in_the_second_half_there_is_no_step_time():
    assert step_ms(_record([(1, 1.0), (2, 1.5)])) == 500.0
    # Only step 1 before the last: it would time the compiles.
    assert step_ms(_record([(1, 1.0), (20, 1.5)])) is None
    assert step_ms(_record([(1, 1.0)])) is None
    assert step_ms(None) is None
    assert step_ms({"metrics": [{"step": 1, "train_loss": 1.0}, {"step": 2}]}) is None
