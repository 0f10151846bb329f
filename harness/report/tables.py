"""Report layer: group runs into configurations (seeds aggregated) and build the summary table."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from harness.report.load import Sweep, finite, value_of

FINAL_METRICS = ("train_loss", "train_error", "test_loss", "test_error")


@dataclass
class ConfigGroup:
    """One configuration of the sweep: its swept values and its runs (one per seed)."""

    values: dict[str, Any]
    runs: list[dict[str, Any]]

    @property
    def label(self) -> str:
        if not self.values:
            return str(self.runs[0].get("name") or "run") if len(self.runs) == 1 else "all runs"
        return ", ".join(f"{key}={format_value(value)}" for key, value in self.values.items())


def format_value(value: Any) -> str:
    if value is None:
        return "—"  # a key this configuration does not have (init.c of a Kaiming run)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(value: Any) -> tuple:
    # Numbers before strings and in numeric order, so c=1,2,10 does not sort as 1,10,2.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def group_runs(sweep: Sweep) -> list[ConfigGroup]:
    groups: dict[tuple, ConfigGroup] = {}
    for run in sweep.runs:
        values = {key: value_of(run, key) for key in sweep.config_keys}
        ident = tuple(format_value(v) for v in values.values())
        groups.setdefault(ident, ConfigGroup(values, [])).runs.append(run)
    return sorted(
        groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.values.values())
    )


def mean_std(values: list[float]) -> tuple[float, float] | None:
    """Mean and sample standard deviation of the finite values (std 0 for one value)."""
    kept = [float(v) for v in values if finite(v)]
    if not kept:
        return None
    spread = statistics.stdev(kept) if len(kept) > 1 else 0.0
    return statistics.fmean(kept), spread


def format_mean_std(values: list[float], digits: int = 4) -> str:
    summary = mean_std(values)
    if summary is None:
        return "—"
    mean, spread = summary
    if len([v for v in values if finite(v)]) > 1:
        return f"{mean:.{digits}g} ± {spread:.2g}"
    return f"{mean:.{digits}g}"


def final_metric(run: dict[str, Any], metric: str) -> float:
    """A run's final metric; NaN for failed and diverged runs, whose final numbers mean nothing."""
    if run.get("status") != "ok":
        return math.nan
    value = (run.get("final") or {}).get(metric)
    return float(value) if finite(value) else math.nan


def initial_train_loss(run: dict[str, Any]) -> float:
    for row in run.get("metrics") or []:
        if finite(row.get("train_loss")):
            return float(row["train_loss"])
    return math.nan


def steps_to_loss(run: dict[str, Any], target: float) -> int | None:
    """First logged step whose training loss is at or below the target, None if never."""
    for row in run.get("metrics") or []:
        if finite(row.get("train_loss")) and row["train_loss"] <= target:
            return int(row.get("step", 0))
    return None


def default_target_loss(sweep: Sweep) -> float | None:
    """Half the median initial training loss: 'steps to halve the loss' compares any sweep of
    positive losses (cross-entropy). None when some loss starts at or below zero (the quadratic,
    whose minimum is negative), where halving means nothing."""
    starts = [initial_train_loss(run) for run in sweep.runs]
    starts = [s for s in starts if finite(s)]
    if not starts or min(starts) <= 0:
        return None
    return statistics.median(starts) / 2


def status_text(runs: list[dict[str, Any]]) -> str:
    """'ok', 'diverged at step k', 'failed', or a count per outcome when seeds disagree."""
    outcomes = []
    for run in runs:
        status = run.get("status", "failed")
        if status == "diverged":
            step = run.get("diverged_at_step")
            outcomes.append(f"diverged at step {step}" if step is not None else "diverged")
        else:
            outcomes.append(str(status))
    unique = list(dict.fromkeys(outcomes))
    if len(unique) == 1:
        return unique[0] if len(runs) == 1 else f"{unique[0]} ({len(runs)} seeds)"
    return ", ".join(f"{outcomes.count(u)}× {u}" for u in unique)


def status_class(runs: list[dict[str, Any]]) -> str:
    statuses = {run.get("status") for run in runs}
    if "failed" in statuses:
        return "failed"
    return "diverged" if "diverged" in statuses else "ok"


def summary_table(sweep: Sweep, target_loss: float | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the summary table, one row per configuration."""
    keys = sweep.config_keys
    target_header = f"steps to loss ≤ {target_loss:.3g}" if target_loss else "steps to target"
    header = (
        (keys or ["run"])
        + ["seeds"]
        + list(FINAL_METRICS)
        + [target_header, "status", "wall time (s)"]
    )
    rows = []
    for group in group_runs(sweep):
        cells = [format_value(group.values[k]) for k in keys] if keys else [group.label]
        cells.append(str(len(group.runs)))
        for metric in FINAL_METRICS:
            cells.append(format_mean_std([final_metric(run, metric) for run in group.runs]))
        if target_loss:
            reached = [steps_to_loss(run, target_loss) for run in group.runs]
            hits = [float(s) for s in reached if s is not None]
            text = format_mean_std(hits, 3) if hits else "never"
            if hits and len(hits) < len(reached):
                text += f" ({len(hits)}/{len(reached)} seeds)"
            cells.append(text)
        else:
            cells.append("—")
        cells.append(status_text(group.runs))
        cells.append(format_mean_std([run.get("wall_time_s") for run in group.runs], 3))
        rows.append(cells)
    return header, rows


def grid_means(sweep: Sweep, metric: str) -> dict[tuple, float]:
    """Seed-mean of a final metric per configuration, keyed by the tuple of swept values."""
    means = {}
    for group in group_runs(sweep):
        summary = mean_std([final_metric(run, metric) for run in group.runs])
        means[tuple(group.values[k] for k in sweep.config_keys)] = (
            summary[0] if summary else math.nan
        )
    return means
