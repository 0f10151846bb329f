"""Report layer: the claim scoreboard. A claim is data: a statistic over selected runs, a
comparison and a threshold, and the lecture statement it stands for; it evaluates to pass, fail
or missing (its runs are absent, failed, or lack the data the statistic needs).

A claim (as written under ``claims:`` in a preset)::

    - id: c2_trains
      statement: "Lecture 4: with Var(W) = 2/fan_in a 50-layer ReLU MLP trains"
      where: {init: normal, init.c: 2}   # runs whose override or resolved config match
      statistic: loss_ratio              # a name from STATISTICS
      args: {}                           # the statistic's keyword arguments, if any
      reduce: mean                       # over the selected runs: mean, min or max
      versus: {init.c: 1}                # optional: a second selection to compare against
      combine: difference                # value = stat(where) - stat(versus), or ratio
      op: "<"                            # <, <=, >, >=, between
      threshold: 0.5                     # a number, or [low, high] for between
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.report.load import Sweep, finite, value_of
from harness.report.tables import final_metric, format_value, initial_train_loss, steps_to_loss


def _probe_layers(run: dict[str, Any], when: str = "init") -> list[dict[str, Any]]:
    probes = run.get("probes") or []
    if not probes or (when == "final" and len(probes) < 2):
        return []
    return (probes[0] if when == "init" else probes[-1]).get("layers") or []


def _field(layers: list[dict[str, Any]], field: str) -> np.ndarray:
    return np.array([float(la[field]) if finite(la.get(field)) else np.nan for la in layers])


def stat_final(run, metric: str = "train_loss") -> float:
    """A final metric; infinite for a diverged run (its loss blew up)."""
    return math.inf if run.get("status") == "diverged" else final_metric(run, metric)


def stat_loss_ratio(run) -> float:
    """Final over initial training loss; infinite for a diverged run."""
    if run.get("status") == "diverged":
        return math.inf
    last = [r["train_loss"] for r in run.get("metrics") or [] if finite(r.get("train_loss"))]
    start = initial_train_loss(run)
    return last[-1] / start if last and finite(start) and start > 0 else math.nan


def stat_diverged(run) -> float:
    return 1.0 if run.get("status") == "diverged" else 0.0


def stat_gap(run) -> float:
    """Generalization gap: final test error minus final train error."""
    return final_metric(run, "test_error") - final_metric(run, "train_error")


def stat_steps_to_loss(run, target: float) -> float:
    step = steps_to_loss(run, target)
    return math.inf if step is None else float(step)


def stat_layer_ratio(run, field: str = "post_act_norm", when: str = "init",
                     first: int = 0, last: int = -1) -> float:
    """A probe field at layer `last` over layer `first` (e.g. activation growth with depth)."""
    values = _field(_probe_layers(run, when), field)
    if values.size == 0:
        return math.nan
    return float(values[last] / values[first]) if values[first] > 0 else math.nan


def stat_layer_spread(run, field: str = "post_act_norm", when: str = "init") -> float:
    """Largest over smallest value of a probe field across layers (1 = perfectly equalised)."""
    values = _field(_probe_layers(run, when), field)
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.max() / values.min()) if values.size else math.nan


def stat_fan_in_var_drift(run) -> float:
    """Largest relative change of fan_in*Var(W) of any layer between init and the last probe."""
    before = _field(_probe_layers(run, "init"), "fan_in_var")
    after = _field(_probe_layers(run, "final"), "fan_in_var")
    if before.size == 0 or before.size != after.size:
        return math.nan
    drift = np.abs(after / before - 1.0)
    return float(np.nanmax(drift)) if np.isfinite(drift).any() else math.nan


def stat_weight_rel_change(run, reduce: str = "max") -> float:
    values = _field(_probe_layers(run, "final"), "weight_rel_change")
    if values.size == 0 or not np.isfinite(values).any():
        return math.nan
    return float(np.nanmax(values) if reduce == "max" else np.nanmean(values))


def stat_quadratic_gap(run, iteration: int = 1) -> float:
    """f(x_k) - f* of a quadratic run after `iteration` steps."""
    problem = run.get("quadratic") or {}
    rows = [r for r in run.get("metrics") or [] if r.get("step") == iteration]
    if not rows or not finite(rows[0].get("train_loss")):
        return math.nan
    return float(rows[0]["train_loss"]) - float(problem.get("minimum_value", 0.0))


STATISTICS: dict[str, Callable[..., float]] = {
    "final": stat_final,
    "loss_ratio": stat_loss_ratio,
    "diverged": stat_diverged,
    "generalization_gap": stat_gap,
    "steps_to_loss": stat_steps_to_loss,
    "layer_ratio": stat_layer_ratio,
    "layer_spread": stat_layer_spread,
    "fan_in_var_drift": stat_fan_in_var_drift,
    "weight_rel_change": stat_weight_rel_change,
    "quadratic_gap": stat_quadratic_gap,
}
REDUCERS = {"mean": statistics.fmean, "min": min, "max": max}
COMPARISONS = {
    "<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t, ">=": lambda v, t: v >= t,
    "between": lambda v, t: t[0] <= v <= t[1],
}
CLAIM_KEYS = {"id", "statement", "where", "statistic", "args", "reduce", "versus", "combine",
              "op", "threshold"}


@dataclass
class ClaimResult:
    id: str
    statement: str
    status: str  # "pass", "fail" or "missing"
    measured: float | None
    expectation: str
    runs_used: int
    detail: str = ""

    @property
    def measured_text(self) -> str:
        return "—" if self.measured is None else f"{self.measured:.4g}"


def validate_claim(claim: Any) -> dict[str, Any]:
    """Check a claim's keys and values; raises ValueError naming the claim and the bad key."""
    if not isinstance(claim, dict):
        raise ValueError(f"a claim must be a mapping, got {type(claim).__name__}: {claim!r}")
    name = claim.get("id", "<no id>")
    unknown = set(claim) - CLAIM_KEYS
    if unknown:
        raise ValueError(
            f"claim {name}: unknown key(s) {sorted(unknown)}; allowed {sorted(CLAIM_KEYS)}")
    for key in ("id", "statement", "statistic", "op", "threshold"):
        if key not in claim:
            raise ValueError(f"claim {name}: missing key '{key}'")
    if claim["statistic"] not in STATISTICS:
        raise ValueError(f"claim {name}: unknown statistic '{claim['statistic']}'; "
                         f"choose from {sorted(STATISTICS)}")
    if claim["op"] not in COMPARISONS:
        raise ValueError(
            f"claim {name}: unknown op '{claim['op']}'; choose from {sorted(COMPARISONS)}")
    if claim.get("reduce", "mean") not in REDUCERS:
        raise ValueError(
            f"claim {name}: unknown reduce '{claim['reduce']}'; choose from {sorted(REDUCERS)}")
    if claim.get("combine", "difference") not in ("difference", "ratio"):
        raise ValueError(f"claim {name}: combine must be 'difference' or 'ratio'")
    threshold = claim["threshold"]
    if claim["op"] == "between":
        if not (isinstance(threshold, (list, tuple)) and len(threshold) == 2):
            raise ValueError(f"claim {name}: op 'between' needs threshold [low, high]")
    elif not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise ValueError(f"claim {name}: threshold must be a number, got {threshold!r}")
    for key in ("where", "versus", "args"):
        if claim.get(key) is not None and not isinstance(claim[key], dict):
            raise ValueError(f"claim {name}: '{key}' must be a mapping")
    return claim


def flatten(where: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """{init: {c: 2}} and {"init.c": 2} both become {"init.c": 2}."""
    flat: dict[str, Any] = {}
    for key, value in (where or {}).items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def select(sweep: Sweep, where: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Runs that completed (ok or diverged) and match every key of `where`."""
    wanted = flatten(where)
    chosen = []
    for run in sweep.runs:
        if run.get("status") not in ("ok", "diverged"):
            continue
        if all(format_value(value_of(run, k)) == format_value(v) for k, v in wanted.items()):
            chosen.append(run)
    return chosen


def _describe(where: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in flatten(where).items()) or "all runs"


def _measure(claim, runs) -> float:
    function = STATISTICS[claim["statistic"]]
    values = [function(run, **(claim.get("args") or {})) for run in runs]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    return float(REDUCERS[claim.get("reduce", "mean")](values))


def evaluate_claim(sweep: Sweep, claim: dict[str, Any]) -> ClaimResult:
    claim = validate_claim(claim)
    stat = claim["statistic"]
    expectation = f"{stat}({_describe(claim.get('where'))})"
    runs = select(sweep, claim.get("where"))
    groups = [runs]
    if claim.get("versus") is not None:
        symbol = "−" if claim.get("combine", "difference") == "difference" else "/"
        expectation += f" {symbol} {stat}({_describe(claim['versus'])})"
        groups.append(select(sweep, claim["versus"]))
    threshold = claim["threshold"]
    bound = f"in [{threshold[0]:g}, {threshold[1]:g}]" if claim["op"] == "between" else \
        f"{claim['op']} {threshold:g}"
    expectation += f" {bound}"
    used = sum(len(g) for g in groups)
    base = (claim["id"], str(claim["statement"]))
    for group, where in zip(groups, (claim.get("where"), claim.get("versus")), strict=False):
        if not group:
            return ClaimResult(*base, "missing", None, expectation, used,
                               f"no completed run matches {_describe(where)}")
    measured = [_measure(claim, group) for group in groups]
    if any(math.isnan(m) for m in measured):
        return ClaimResult(*base, "missing", None, expectation, used,
                           f"the runs lack the data '{stat}' needs")
    value = measured[0]
    if len(measured) == 2:
        value = value - measured[1] if claim.get("combine", "difference") == "difference" else (
            value / measured[1] if measured[1] != 0 else math.inf)
    passed = COMPARISONS[claim["op"]](value, threshold)
    return ClaimResult(*base, "pass" if passed else "fail", value, expectation, used)


def evaluate_claims(sweep: Sweep, claims: list[dict[str, Any]]) -> list[ClaimResult]:
    return [evaluate_claim(sweep, claim) for claim in claims]
