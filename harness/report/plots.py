"""Report layer: training curves, heat-maps and the quadratic's contour plot, each one PNG.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot), so making a report
never touches a global backend or figure state. Every function returns the file names it wrote.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.load import Sweep, finite, value_of
from harness.report.tables import ConfigGroup, format_value, grid_means, group_runs

MAX_LEGEND_LINES = 12
CURVE_PANELS = (("train_loss", "train loss"), ("test_loss", "test loss"),
                ("train_error", "train error"), ("test_error", "test error"))


def new_figure(nrows: int, ncols: int, width: float = 5.2, height: float = 3.6):
    figure = Figure(figsize=(width * ncols, height * nrows), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def save(figure: Figure, out_dir: Path, name: str) -> str:
    figure.savefig(out_dir / name)
    return name


def palette(count: int) -> list:
    cmap = colormaps["tab10" if count <= 10 else "viridis"]
    if count <= 10:
        return [cmap(i) for i in range(count)]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


LINE_STYLES = ("-", "--", ":", "-.")


def style_groups(sweep: Sweep, groups: list[ConfigGroup]) -> tuple[list[dict], list[tuple]]:
    """A line style per configuration: its own colour while the legend stays readable; past
    MAX_LEGEND_LINES, a colour per value of the first swept key and a dash pattern per value of
    the second, so that no two configurations of a two-key grid look alike.

    Returns each group's matplotlib style (color, linestyle) and the (legend label, style)
    entries to show.
    """
    keys = sweep.config_keys
    if len(groups) <= MAX_LEGEND_LINES or not keys:
        styles = [{"color": c, "linestyle": "-"} for c in palette(len(groups))]
        return styles, [(g.label, s) for g, s in zip(groups, styles, strict=False)]
    first = keys[0]
    values = list(dict.fromkeys(format_value(g.values[first]) for g in groups))
    by_value = dict(zip(values, palette(len(values)), strict=False))
    legend = [(f"{first}={v}", {"color": c, "linestyle": "-"}) for v, c in by_value.items()]
    dashes = {}
    if len(keys) > 1:
        second = keys[1]
        seconds = list(dict.fromkeys(format_value(g.values[second]) for g in groups))
        dashes = {v: LINE_STYLES[i % len(LINE_STYLES)] for i, v in enumerate(seconds)}
        legend += [(f"{second}={v}", {"color": "grey", "linestyle": d}) for v, d in dashes.items()]
    styles = [{"color": by_value[format_value(g.values[first])],
               "linestyle": dashes.get(format_value(g.values[keys[1]]), "-")
               if len(keys) > 1 else "-"} for g in groups]
    return styles, legend


def _series(run: dict[str, Any], metric: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for row in run.get("metrics") or []:
        value = row.get(metric)
        if value is not None and finite(row.get("step")):
            steps.append(float(row["step"]))
            values.append(float(value))
    return steps, values


def _mark_divergence(axis, run: dict[str, Any], steps: list[float], values: list[float], color):
    kept = [(s, v) for s, v in zip(steps, values, strict=False) if math.isfinite(v) and v > 0]
    step = run.get("diverged_at_step")
    if kept:
        x, y = kept[-1]
        axis.plot([x], [y], marker="X", markersize=10, color=color, markeredgecolor="black")
        label = f"diverged @ {step}" if step is not None else "diverged"
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)


def training_curves(sweep: Sweep, out_dir: Path) -> list[str]:
    """Loss and error against step, train and test, one colour per configuration."""
    groups = [g for g in group_runs(sweep) if any(r.get("metrics") for r in g.runs)]
    if not groups:
        return []
    styles, legend = style_groups(sweep, groups)
    figure, axes = new_figure(2, 2)
    for axis, (metric, title) in zip(axes.flat, CURVE_PANELS, strict=False):
        for group, style in zip(groups, styles, strict=False):
            for run in group.runs:
                steps, values = _series(run, metric)
                if not steps:
                    continue
                sparse = metric.startswith("test") and len(steps) < 30
                shown = [v if math.isfinite(v) else np.nan for v in values]
                axis.plot(steps, shown, linewidth=1.2, alpha=0.85,
                          marker="o" if sparse else None, markersize=3, **style)
                if run.get("status") == "diverged":
                    _mark_divergence(axis, run, steps, values, style["color"])
        axis.set_title(title)
        axis.set_xlabel("step")
        if metric.endswith("loss"):
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    for label, style in legend:
        axes[0][0].plot([], [], label=label, **style)
    axes[0][0].legend(fontsize=7, loc="best")
    figure.suptitle("Training curves (X marks where a run diverged)")
    return [save(figure, out_dir, "curves.png")]


def heatmaps(sweep: Sweep, out_dir: Path, metrics=("test_error", "train_loss")) -> list[str]:
    """Final metric over the first two swept keys, one panel per combination of the others."""
    keys = sweep.config_keys
    if len(keys) < 2:
        return []
    groups = group_runs(sweep)
    axis_values = {
        key: list(dict.fromkeys(g.values[key] for g in groups)) for key in keys
    }
    row_key, col_key, facet_keys = keys[0], keys[1], keys[2:]
    facets = list(itertools.product(*(axis_values[k] for k in facet_keys)))
    written = []
    for metric in metrics:
        means = grid_means(sweep, metric)
        ncols = min(len(facets), 4)
        nrows = math.ceil(len(facets) / ncols)
        width = max(4.5, 0.9 * len(axis_values[col_key]) + 2.2)
        height = max(2.6, 0.6 * len(axis_values[row_key]) + 1.6)
        figure, axes = new_figure(nrows, ncols, width, height)
        for axis, facet in zip(axes.flat, facets, strict=False):
            grid = np.full((len(axis_values[row_key]), len(axis_values[col_key])), np.nan)
            for i, rv in enumerate(axis_values[row_key]):
                for j, cv in enumerate(axis_values[col_key]):
                    grid[i, j] = means.get((rv, cv, *facet), np.nan)
            image = axis.imshow(np.ma.masked_invalid(grid), aspect="auto",
                                cmap=colormaps["viridis"].with_extremes(bad="#cccccc"))
            finite_cells = grid[np.isfinite(grid)]
            middle = (finite_cells.min() + finite_cells.max()) / 2 if finite_cells.size else 0
            for (i, j), value in np.ndenumerate(grid):
                # viridis is dark at the low end: white text there, black on the light end.
                light = math.isfinite(value) and value < middle
                text = f"{value:.3g}" if math.isfinite(value) else "n/a"
                axis.text(j, i, text, ha="center", va="center", fontsize=8,
                          color="white" if light else "black")
            axis.set_xticks(range(len(axis_values[col_key])),
                            [format_value(v) for v in axis_values[col_key]], fontsize=8)
            axis.set_yticks(range(len(axis_values[row_key])),
                            [format_value(v) for v in axis_values[row_key]], fontsize=8)
            axis.set_xlabel(col_key)
            axis.set_ylabel(row_key)
            facet_title = ", ".join(
                f"{k}={format_value(v)}" for k, v in zip(facet_keys, facet, strict=True))
            axis.set_title(facet_title or metric, fontsize=9)
            if np.isfinite(grid).any():
                figure.colorbar(image, ax=axis, shrink=0.8)
        for axis in list(axes.flat)[len(facets):]:
            axis.set_visible(False)
        figure.suptitle(f"final {metric}, mean over seeds")
        written.append(save(figure, out_dir, f"heatmap_{metric}.png"))
    return written


def _quadratic_surface(problem: dict[str, Any], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    matrix = np.asarray(problem["A"], dtype=float)
    offset = np.asarray(problem.get("b", [0.0, 0.0]), dtype=float)
    points = np.stack([xs, ys], axis=-1)
    return 0.5 * np.einsum("...i,ij,...j->...", points, matrix, points) + points @ offset


def quadratic_plots(sweep: Sweep, out_dir: Path) -> list[str]:
    """Trajectories over the contour plot, and f(x) - f* against iteration (Lecture 6)."""
    runs = [r for r in sweep.runs if r.get("trajectory") and r.get("quadratic")]
    if not runs:
        return []
    problem = runs[0]["quadratic"]
    optimum = float(problem.get("minimum_value", 0.0))
    colors = palette(len(runs))
    figure, axes = new_figure(1, 2, 5.6, 4.6)
    contour_axis, loss_axis = axes[0]
    points = np.concatenate([np.asarray(r["trajectory"], dtype=float) for r in runs])
    points = points[np.isfinite(points).all(axis=1)]
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.15 * np.maximum(high - low, 1e-3)
    xs, ys = np.meshgrid(np.linspace(low[0] - pad[0], high[0] + pad[0], 200),
                         np.linspace(low[1] - pad[1], high[1] + pad[1], 200))
    contour_axis.contour(xs, ys, _quadratic_surface(problem, xs, ys), levels=25,
                         cmap="Greys", linewidths=0.7)
    for run, color in zip(runs, colors, strict=False):
        label = ", ".join(f"{k}={format_value(value_of(run, k))}" for k in sweep.config_keys)
        label = label or str(run.get("name"))
        path = np.asarray(run["trajectory"], dtype=float)
        contour_axis.plot(path[:, 0], path[:, 1], marker=".", color=color, label=label)
        steps, losses = _series(run, "train_loss")
        gaps = [max(loss - optimum, 1e-16) for loss in losses]
        loss_axis.plot(steps, gaps, color=color, marker=".", label=label)
    if "minimizer" in problem:
        contour_axis.plot(*problem["minimizer"], marker="*", color="black", markersize=12)
    contour_axis.set_title("trajectories on the contours of f")
    contour_axis.legend(fontsize=7)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("iteration")
    loss_axis.set_title("f(x) − f* (floored at 1e-16)")
    loss_axis.grid(alpha=0.3)
    return [save(figure, out_dir, "quadratic.png")]
