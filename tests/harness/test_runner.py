"""Runner tests on a local Ray instance (2 CPUs) with injected trial functions: end to end, resume
after an interrupted driver, exceptions, fail-fast, kill -9 of a worker, the state API, GPUs.
"""

import functools
import io
import json
import os
import signal
import sys
import threading
import time

import pytest
import ray
from ray import cloudpickle

from harness.cluster import ResourceError, fit_requests
from harness.runner import SweepInterrupted, run_plan
from harness.store import SweepStore

# This test module is not importable on Ray's workers: ship its trial functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def quick_trial(config, record, *, fail_seed=None, diverge_seed=None, sleep_s=0.0, log_dir=None):
    if log_dir:
        with open(os.path.join(log_dir, f"{record['run_id']}.{os.getpid()}"), "w"):
            pass
    time.sleep(sleep_s)
    if config["seed"] == fail_seed:
        raise RuntimeError(f"boom in seed {fail_seed}")
    loss = float(config["seed"]) + 0.5
    record["metrics"].append({"step": 1, "epoch": 1, "train_loss": loss, "train_error": 0.5,
                              "test_loss": loss, "test_error": 0.5})
    record["final"] = {"train_loss": loss, "train_error": 0.5, "test_loss": loss,
                       "test_error": 0.5}
    if config["seed"] == diverge_seed:
        record.update(status="diverged", diverged_at_step=1)
    else:
        record["status"] = "ok"


def run(plan, trial, **kwargs):
    return run_plan(plan, SweepStore(plan.output_dir), trial_fn=trial, out=io.StringIO(), **kwargs)


def test_tiny_sweep_end_to_end(ray_local, plan_for):
    plan = plan_for("seed=0,1,2,3")
    store = SweepStore(plan.output_dir)
    store.write_plan(plan)
    outcome = run(plan, quick_trial)
    assert outcome.finished == {r.run_id: "ok" for r in plan.runs}
    records = store.records([r.run_id for r in plan.runs])
    assert [r["name"] for r in records] == [f"seed={s}" for s in range(4)]
    assert {r["node"]["ray_node_id"] for r in records} == {ray_local.address_info["node_id"]}
    assert all(r["threads"] == 1 and r["error"] is None for r in records)
    csv_lines = open(store.write_results_csv(plan.swept_keys)).read().splitlines()
    assert csv_lines[0].startswith("run_id,name,status,seed,final_train_loss")
    assert len(csv_lines) == 5
    assert json.load(open(os.path.join(plan.output_dir, "sweep.json")))["swept_keys"] == ["seed"]


def test_resume_after_interrupted_driver_runs_only_missing(ray_local, plan_for, tmp_path):
    plan = plan_for("seed=0,1,2,3")
    log_dir = tmp_path / "starts"
    log_dir.mkdir()
    trial = functools.partial(quick_trial, log_dir=str(log_dir), sleep_s=0.3)

    class CtrlCAfterFirstRecord(io.StringIO):
        pressed = False

        def write(self, text):
            if text.startswith("[1/") and not self.pressed:
                self.pressed = True
                raise KeyboardInterrupt
            return super().write(text)

    with pytest.raises(SweepInterrupted):
        run_plan(plan, SweepStore(plan.output_dir), trial_fn=trial, out=CtrlCAfterFirstRecord())
    done_first = SweepStore(plan.output_dir).done_ids()
    assert 1 <= len(done_first) < 4
    for name in os.listdir(log_dir):
        os.unlink(log_dir / name)
    outcome = run(plan, trial)
    assert outcome.skipped == len(done_first)
    assert set(outcome.finished) == {r.run_id for r in plan.runs} - done_first
    started_again = {name.split(".")[0] for name in os.listdir(log_dir)}
    assert started_again == set(outcome.finished)
    assert SweepStore(plan.output_dir).done_ids() == {r.run_id for r in plan.runs}


def test_rerun_forces_every_run(ray_local, plan_for):
    plan = plan_for("seed=0,1")
    run(plan, quick_trial)
    assert run(plan, quick_trial).finished == {}
    assert len(run(plan, quick_trial, rerun=True).finished) == 2


def test_exception_is_recorded_and_the_others_finish(ray_local, plan_for):
    plan = plan_for("seed=0,1,2")
    outcome = run(plan, functools.partial(quick_trial, fail_seed=1, diverge_seed=2))
    statuses = {r.name: outcome.finished[r.run_id] for r in plan.runs}
    assert statuses == {"seed=0": "ok", "seed=1": "failed", "seed=2": "diverged"}
    store = SweepStore(plan.output_dir)
    failed = json.load(open(os.path.join(store.failed_dir, f"{plan.runs[1].run_id}.json")))
    assert "RuntimeError: boom in seed 1" in failed["error"]
    assert store.done_ids() == {plan.runs[0].run_id, plan.runs[2].run_id}


def test_fail_fast_stops_the_sweep(ray_local, plan_for):
    plan = plan_for("seed=0,1,2,3,4,5", "harness.fail_fast=true")
    outcome = run(plan, functools.partial(quick_trial, fail_seed=0, sleep_s=0.2))
    assert outcome.stopped_early
    assert outcome.failed == 1
    assert len(outcome.finished) < len(plan.runs)


def test_gpu_request_without_gpus_fails_clearly_or_falls_back(ray_local, plan_for):
    plan = plan_for("device=cuda")
    with pytest.raises(ResourceError, match="GPU"):
        fit_requests(plan.runs, plan.harness)
    fallback = plan_for("device=cuda", "harness.cuda_fallback=cpu")
    requests = fit_requests(fallback.runs, fallback.harness)
    assert {(r.num_gpus, r.device) for r in requests.values()} == {(0.0, "cpu")}


def test_running_tasks_visible_through_state_api(ray_local, plan_for):
    from ray.util.state import list_tasks

    plan = plan_for("seed=0,1")
    worker = threading.Thread(target=run, args=(plan, functools.partial(quick_trial, sleep_s=3)))
    worker.start()
    seen = set()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and seen != {"train[seed=0]", "train[seed=1]"}:
            tasks = list_tasks(address=f"http://{ray_local.dashboard_url}",
                               filters=[("state", "=", "RUNNING")])
            seen |= {task.name for task in tasks if task.name.startswith("train[")}
            time.sleep(0.3)
    finally:
        worker.join()
    assert seen == {"train[seed=0]", "train[seed=1]"}


def test_kill_9_of_a_worker_loses_and_duplicates_nothing(ray_local, plan_for, tmp_path):
    plan = plan_for("seed=0,1,2")
    log_dir = tmp_path / "starts"
    log_dir.mkdir()
    victim = plan.runs[0].run_id
    killed = []

    def kill_first_attempt():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            for name in os.listdir(log_dir):
                if name.startswith(victim):
                    pid = int(name.split(".")[1])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_attempt)
    killer.start()
    outcome = run(plan, functools.partial(quick_trial, sleep_s=1.5, log_dir=str(log_dir)))
    killer.join()
    assert killed
    assert outcome.finished == {r.run_id: "ok" for r in plan.runs}
    attempts = [name for name in os.listdir(log_dir) if name.startswith(victim)]
    assert len(attempts) == 2
    store = SweepStore(plan.output_dir)
    assert sorted(os.listdir(store.runs_dir)) == sorted(f"{r.run_id}.json" for r in plan.runs)
    assert not os.path.exists(store.failed_dir)
    assert ray.is_initialized()
