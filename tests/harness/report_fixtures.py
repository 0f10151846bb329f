"""Test helpers (harness layer): synthetic sweep folders in the lead's record schema, made by code
so the report and claim tests need no training. Not a conftest: tests import what they use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

DEPTH = 8
WIDTH = 100
# One claim of each outcome, so a rendered scoreboard shows pass, fail and missing.
SCOREBOARD = [
    {"id": "c2_trains", "statement": "c=2 trains: the training loss at least halves",
     "where": {"init.c": 2}, "statistic": "loss_ratio", "op": "<", "threshold": 0.5},
    {"id": "c3_diverges", "statement": "c=3 diverges at every learning rate",
     "where": {"init.c": 3}, "statistic": "diverged", "reduce": "min", "op": ">=",
     "threshold": 1},
    {"id": "kaiming", "statement": "Kaiming preserves the activation norm",
     "where": {"init": "kaiming"}, "statistic": "layer_ratio", "op": "between",
     "threshold": [0.1, 10]},
]


def _config(c: float, lr: float, seed: int, norm: str = "none") -> dict[str, Any]:
    return {
        "model": {"name": "mlp", "depth": DEPTH, "width": WIDTH, "activation": "relu",
                  "bias": False},
        "data": {"name": "synthetic", "n_train": 400, "n_test": 200},
        "init": {"name": "normal", "c": c},
        "norm": {"name": norm},
        "optimizer": {"name": "sgd", "lr": lr, "weight_decay": 0.0},
        "train": {"steps": 100, "batch_size": 50},
        "dropout": {"p": 0.0},
        "device": {"name": "cpu"},
        "seed": seed,
        "harness": {"output_dir": None},
    }


def _probe(step: int, c: float, trained: bool, rng: np.random.Generator) -> dict[str, Any]:
    layers = []
    norm = 10.0
    for index in range(DEPTH):
        if index:
            norm *= math.sqrt(c / 2) * (1 + 0.02 * rng.standard_normal())
        drift = 1.05 if trained else 1.0
        layers.append({
            "name": f"layers.{index}", "fan_in": 784 if index == 0 else WIDTH,
            "pre_act_norm": norm * math.sqrt(2), "post_act_norm": norm,
            "weight_grad_norm": 0.1 * (c / 2) ** ((DEPTH - index) / 2),
            "weight_rel_change": (0.05 * (index + 1) / DEPTH) if trained else 0.0,
            "fan_in_var": c * drift * (1 + 0.01 * rng.standard_normal()),
        })
    return {"step": step, "layers": layers}


def make_run(c: float = 2.0, lr: float = 0.1, seed: int = 0, status: str = "ok",
             overrides: dict[str, Any] | None = None, steps: int = 100,
             diverge_at: int | None = None, norm: str = "none") -> dict[str, Any]:
    """One run record; training speed depends on c (c=2 best) and lr, as in the lecture."""
    rng = np.random.default_rng(int(1000 * c + 100 * lr + seed))
    rate = {1.0: 0.002, 2.0: 0.03, 3.0: 0.01}.get(float(c), 0.02) * (lr / 0.1)
    metrics, diverged_at_step = [], None
    for step in range(0, steps + 1, 10):
        loss = 2.3 * math.exp(-rate * step) + 0.05 + 0.01 * rng.random()
        if diverge_at is not None and step >= diverge_at:
            loss, diverged_at_step = math.nan, diverge_at
        error = min(0.9, loss / 2.6) if math.isfinite(loss) else math.nan
        evaluated = step % 50 == 0
        metrics.append({
            "step": step, "epoch": step / 100, "train_loss": loss, "train_error": error,
            "test_loss": loss * 1.1 if evaluated else None,
            "test_error": min(0.9, error * 1.2) if evaluated and math.isfinite(error) else None,
        })
        if diverged_at_step is not None:
            break
    status = "diverged" if diverged_at_step is not None else status
    last = metrics[-1]
    final = {"train_loss": last["train_loss"], "train_error": last["train_error"],
             "test_loss": last["train_loss"] * 1.1,
             "test_error": min(0.9, last["train_error"] * 1.2)}
    overrides = overrides if overrides is not None else {"init.c": c, "seed": seed}
    name = ",".join(f"{k}={v}" for k, v in overrides.items()) or "run"
    return {
        "run_id": f"r{abs(hash((name, c, lr, seed))) % 10**10:010d}",
        "name": name, "status": status, "diverged_at_step": diverged_at_step,
        "overrides": overrides, "config": _config(c, lr, seed, norm), "metrics": metrics,
        "final": final,
        "probes": [_probe(0, c, False, rng)]
        + ([_probe(steps, c, True, rng)] if status == "ok" else []),
        "wall_time_s": 1.5 + rng.random(), "node": "node-a", "device": "cpu", "threads": 1,
        "data": {"name": "synthetic", "source": "generated", "n_train": 400, "n_test": 200,
                 "sha256": "ab" * 32},
        "versions": {"python": "3.11", "numpy": "2.3", "engine": "0.1.0"},
        "seed": seed, "error": None,
        "started_at": "2025-01-01T10:00:00", "finished_at": "2025-01-01T10:00:02",
    }


def failed_run(overrides: dict[str, Any]) -> dict[str, Any]:
    run = make_run(overrides=overrides)
    run.update(status="failed", metrics=[], probes=[], final={}, error=(
        "Traceback (most recent call last):\n  File \"trial.py\", line 1\n"
        "ValueError: matmul: shapes (50, 784) and (100, 100) do not align"))
    return run


def write_sweep(directory: Path, runs: list[dict[str, Any]], plan: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sweep.json").write_text(json.dumps(plan, indent=1))
    for run in runs:
        sub = directory / ("failed" if run["status"] == "failed" else "runs")
        sub.mkdir(exist_ok=True)
        (sub / f"{run['run_id']}.json").write_text(json.dumps(run))
    return directory


def full_sweep(directory: Path) -> Path:
    """init.c x optimizer.lr x two seeds, probes before and after, c=3 at lr=0.3 diverging."""
    runs = []
    for c in (1.0, 2.0, 3.0):
        for lr in (0.1, 0.3):
            for seed in (0, 1):
                runs.append(make_run(c, lr, seed, overrides={"init.c": c, "optimizer.lr": lr,
                                                             "seed": seed},
                                     diverge_at=40 if (c == 3.0 and lr == 0.3) else None))
    plan = {"overrides": ["init.c=1,2,3", "optimizer.lr=0.1,0.3", "seed=0,1"],
            "command": "python -m harness sweep init.c=1,2,3 optimizer.lr=0.1,0.3 seed=0,1",
            "runs": [r["run_id"] for r in runs], "claims": SCOREBOARD}
    return write_sweep(directory, runs, plan)


def troubled_sweep(directory: Path) -> Path:
    """Three values of c: one ok, one diverged, one failed with a traceback."""
    runs = [make_run(2.0, overrides={"init.c": 2.0}),
            make_run(3.0, overrides={"init.c": 3.0}, diverge_at=20),
            failed_run({"init.c": 1.0})]
    plan = {"overrides": ["init.c=1,2,3"], "command": "python -m harness sweep init.c=1,2,3",
            "runs": [r["run_id"] for r in runs]}
    return write_sweep(directory, runs, plan)


def single_run_sweep(directory: Path) -> Path:
    run = make_run(2.0, overrides={})
    return write_sweep(directory, [run], {"overrides": [], "command": "python -m harness run",
                                          "runs": [run["run_id"]]})


def quadratic_sweep(directory: Path) -> Path:
    """The Lecture 6 quadratic: gradient descent creeping, Newton at the minimum in one step."""
    matrix = np.array([[1.0, 0.0], [0.0, 10.0]])
    start = np.array([-4.0, 1.0])
    runs = []
    for name in ("sgd", "newton"):
        point, path, metrics = start.copy(), [], []
        for step in range(6):
            path.append(point.tolist())
            metrics.append({"step": step, "epoch": 0, "train_loss": 0.5 * point @ matrix @ point,
                            "train_error": None, "test_loss": None, "test_error": None})
            point = np.zeros(2) if name == "newton" else point - 0.05 * (matrix @ point)
        run = make_run(overrides={"optimizer": name})
        run.update(metrics=metrics, probes=[], trajectory=path, final={"train_loss": metrics[-1][
            "train_loss"]}, quadratic={"A": matrix.tolist(), "b": [0.0, 0.0],
                                       "minimizer": [0.0, 0.0], "minimum_value": 0.0})
        run["config"]["model"] = {"name": "quadratic"}
        run["config"]["optimizer"] = {"name": name, "lr": 1.0 if name == "newton" else 0.05}
        runs.append(run)
    plan = {"overrides": ["+experiment=optimizers", "optimizer=sgd,newton"], "command": "",
            "runs": [r["run_id"] for r in runs]}
    return write_sweep(directory, runs, plan)
