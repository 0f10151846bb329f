"""The record's train_time_s (harness layer): seconds in training steps, counted on a fake clock
that ticks once per reading, so each step adds exactly one tick and an evaluation, which jumps the
clock, adds nothing."""

import types

import harness.trial as trial
from harness.sweep import single

STEPS = ["experiment=smoke", "device=cpu_numpy", "train.steps=6", "train.log_every=2",
         "train.eval_every=3", "train.probe_every=0"]


def test_train_time_counts_the_steps_and_leaves_evaluations_out(monkeypatch):
    clock = [0.0]

    def perf_counter():
        clock[0] += 1.0
        return clock[0]

    real_evaluate = trial.evaluate

    def slow_evaluate(*args):
        clock[0] += 1000.0
        return real_evaluate(*args)

    monkeypatch.setattr(trial, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(trial, "evaluate", slow_evaluate)
    spec, _ = single(STEPS)
    record = trial.run_one(spec)
    assert record["status"] == "ok", record["error"]
    entries = [(entry["step"], entry["train_time_s"]) for entry in record["metrics"]]
    assert entries == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (6, 6.0)]
    assert record["wall_time_s"] > 3000.0  # the evaluations did move the clock
