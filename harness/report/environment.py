"""Report layer: the environment section (data, device, threads, versions, time) and failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harness.report.load import Sweep, finite


def _distinct(values: list[Any]) -> str:
    shown = list(dict.fromkeys(str(v) for v in values if v not in (None, "", {})))
    return ", ".join(shown) if shown else "—"


def _timestamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def environment_items(sweep: Sweep) -> list[tuple[str, str]]:
    """(label, value) pairs describing where and on what the runs ran."""
    runs = sweep.runs
    data = [run.get("data") or {} for run in runs]
    items = [
        ("sweep folder", str(sweep.directory)),
        ("command", str(sweep.plan.get("command") or "—")),
        ("runs", f"{len(runs)} ({sum(r.get('status') == 'ok' for r in runs)} ok, "
                 f"{sum(r.get('status') == 'diverged' for r in runs)} diverged, "
                 f"{sum(r.get('status') == 'failed' for r in runs)} failed)"),
        ("data", _distinct([d.get("name") for d in data])),
        ("data source", _distinct([d.get("source") for d in data])),
        ("data size", _distinct([f"{d.get('n_train')} train / {d.get('n_test')} test"
                                 for d in data if d])),
        ("data sha256", _distinct([str(d.get("sha256"))[:16] for d in data if d.get("sha256")])),
        ("device", _distinct([run.get("device") for run in runs])),
        ("nodes", _distinct([run.get("node") for run in runs])),
        ("threads per run", _distinct([run.get("threads") for run in runs])),
    ]
    versions: dict[str, list[str]] = {}
    for run in runs:
        for name, version in (run.get("versions") or {}).items():
            versions.setdefault(name, []).append(str(version))
    if versions:
        items.append(("versions", "; ".join(f"{k} {_distinct(v)}" for k, v in versions.items())))
    times = [float(r["wall_time_s"]) for r in runs if finite(r.get("wall_time_s"))]
    if times:
        mean = sum(times) / len(times)
        items.append(("run time", f"total {sum(times):.1f} s; per run mean {mean:.2f} s, "
                                  f"min {min(times):.2f} s, max {max(times):.2f} s"))
    starts = [t for t in (_timestamp(r.get("started_at")) for r in runs) if t]
    ends = [t for t in (_timestamp(r.get("finished_at")) for r in runs) if t]
    if starts and ends:
        try:
            span = (max(ends) - min(starts)).total_seconds()
            items.append(("sweep wall clock", f"{span:.1f} s ({min(starts).isoformat()} → "
                                              f"{max(ends).isoformat()})"))
        except TypeError:
            pass  # mixed naive and aware timestamps: the span is not defined
    return items


def failure_items(sweep: Sweep) -> list[tuple[str, str]]:
    """(run name, last line of its traceback) for every failed run."""
    failures = []
    for run in sweep.runs:
        if run.get("status") == "failed":
            error = str(run.get("error") or "no traceback recorded").strip().splitlines()
            failures.append((str(run.get("name") or run.get("run_id")), error[-1] if error else ""))
    return failures
