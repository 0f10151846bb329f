"""The record's train_time_s (harness layer): seconds in training steps, counted on a fake clock
that ticks once per reading, so each step adds exactly one tick, while an evaluation or a probe,
which jumps the clock, adds nothing; across epochs too."""

import types

import harness.trial as trial
from harness.sweep import single

STEPS = ["experiment=smoke", "device=cpu_numpy", "train.steps=10", "train.log_every=2",
         "train.eval_every=3", "train.probe_every=4"]


def test_train_time_counts_the_steps_and_leaves_evaluations_and_probes_out(monkeypatch):
    clock = [0.0]

    def perf_counter():
        clock[0] += 1.0
        return clock[0]

    def jumping(function, seconds):
        def call(*args):
            clock[0] += seconds
            return function(*args)
        return call

    monkeypatch.setattr(trial, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(trial, "evaluate", jumping(trial.evaluate, 1000.0))
    monkeypatch.setattr(trial, "_probe", jumping(trial._probe, 1e6))
    spec, _ = single(STEPS)
    record = trial.run_one(spec)
    assert record["status"] == "ok", record["error"]
    entries = [(entry["step"], entry["train_time_s"]) for entry in record["metrics"]]
    assert entries == [(step, float(step)) for step in (1, 2, 3, 4, 6, 8, 9, 10)]
    assert record["metrics"][-1]["epoch"] > 1  # the run crossed an epoch's end
    assert len(record["probes"]) == 4  # step 0, 4, 8 and the last: the clock jumped for each
