"""Report layer: turn a sweep folder into a comparison report (index.html, report.md, PNGs,
results.csv) with the claim scoreboard at the top. Entry point: build_report(sweep_dir)."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.report.claims import evaluate_claims
from harness.report.content import Figure, ReportContent
from harness.report.environment import environment_items, failure_items
from harness.report.html import render_html
from harness.report.load import Sweep, load_sweep, value_of
from harness.report.markdown import render_markdown
from harness.report.plots import heatmaps, quadratic_plots, training_curves
from harness.report.presets import sweep_claims
from harness.report.probe_panels import probe_panels
from harness.report.tables import (
    FINAL_METRICS,
    default_target_loss,
    group_runs,
    status_class,
    summary_table,
)

__all__ = ["build_report"]

CAPTIONS = {
    "curves.png": ("Training curves", "Loss (log scale) and error against step, one colour per "
                   "configuration; an X marks the last finite point of a diverged run."),
    "activation_norms.png": ("Per-layer probes", "Post-activation norm per layer at initialization "
                             "and after training; dashed: the ReLU theory, each layer scaling "
                             "the norm by sqrt(c/2), c = fan_in·Var(W) measured at init."),
    "gradient_norms.png": ("Per-layer probes", "Weight-gradient norm per layer at initialization "
                           "and after training."),
    "weight_change.png": ("Per-layer probes", "How far each layer's weights moved during training "
                          "(relative to their initial norm)."),
    "fan_in_var.png": ("Per-layer probes", "fan_in·Var(W) per layer before and after training "
                       "(the effective variance scale c)."),
    "heatmap_test_error.png": ("Heat-maps", "Final test error over the first two swept keys,"
                               " one panel per other value (n/a: diverged, failed, not run)."),
    "heatmap_train_loss.png": ("Heat-maps", "Final training loss over the first two swept keys,"
                               " one panel per other value (n/a: diverged, failed, not run)."),
    "quadratic.png": ("Lecture 6 quadratic", "Optimizer trajectories on the contours of the "
                      "two-dimensional quadratic, and f(x) − f* against iteration."),
}


def _write_text(path: Path, text: str) -> None:
    # Temp file and rename: a reader never sees a half-written report.
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temp, path)


def _write_results_csv(sweep: Sweep, path: Path) -> None:
    source = sweep.directory / "results.csv"
    if source.is_file() and source.resolve() != path.resolve():
        shutil.copyfile(source, path)
        return
    columns = ["run_id", "name", *sweep.swept_keys, "status", "diverged_at_step",
               *FINAL_METRICS, "wall_time_s"]
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for run in sweep.runs:
            final = run.get("final") or {}
            writer.writerow([run.get("run_id"), run.get("name"),
                             *(value_of(run, k) for k in sweep.swept_keys), run.get("status"),
                             run.get("diverged_at_step"), *(final.get(m) for m in FINAL_METRICS),
                             run.get("wall_time_s")])


def build_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 target_loss: float | None = None,
                 claims: list[dict[str, Any]] | None = None) -> Path:
    """Build the report of a sweep folder into out_dir (default <sweep_dir>/report).

    claims: the scoreboard's claims; by default those the sweep declares (see presets.py).
    Returns the path of index.html.
    """
    sweep = load_sweep(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep.directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    target = target_loss if target_loss is not None else default_target_loss(sweep)
    header, rows = summary_table(sweep, target)
    names = (training_curves(sweep, out) + probe_panels(sweep, out) + heatmaps(sweep, out)
             + quadratic_plots(sweep, out))
    figures = [Figure(CAPTIONS[name][0], name, CAPTIONS[name][1]) for name in names]
    notes = []
    if target is not None and target_loss is None:
        notes.append(f"Target loss {target:.3g} = half the median initial training loss.")
    if not sweep.runs:
        notes.append("No run has finished yet.")
    content = ReportContent(
        title=f"Sweep report: {sweep.directory.name}",
        claims=evaluate_claims(sweep, claims if claims is not None else sweep_claims(sweep)),
        table_header=header,
        table_rows=rows,
        row_classes=[status_class(g.runs) for g in group_runs(sweep)],
        figures=figures,
        environment=environment_items(sweep),
        failures=failure_items(sweep),
        problems=sweep.problems,
        notes=notes,
    )
    _write_results_csv(sweep, out / "results.csv")
    _write_text(out / "report.md", render_markdown(content))
    index = out / "index.html"
    _write_text(index, render_html(content))
    return index
