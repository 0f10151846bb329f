"""Report layer: per-layer panels from the probes (norms, gradients, weight motion, fan_in*Var(W)).

The ReLU theory line: with weights of variance c/fan_in, each ReLU layer scales the activation
norm by sqrt(c/2). It is drawn from the c each layer measured at initialization (fan_in*Var(W)),
so it applies to N(0, c/fan_in), Kaiming and Xavier alike, and only to ReLU nets without norm
layers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.load import Sweep, finite, value_of
from harness.report.plots import new_figure, save, style_groups
from harness.report.tables import ConfigGroup, group_runs

NO_NORM = (None, "none", "None", "identity", False)


def probe_run(group: ConfigGroup) -> dict[str, Any] | None:
    """The first seed of a configuration that recorded probes (its theory line is drawn)."""
    for run in group.runs:
        if run.get("probes"):
            return run
    return None


def theory_applies(run: dict[str, Any]) -> bool:
    activation = value_of(run, "model.activation")
    norm = value_of(run, "norm")
    if norm is None:
        norm = value_of(run, "model.norm")
    return activation in (None, "relu", "ReLU") and norm in NO_NORM and not run.get("trajectory")


def relu_theory(probe: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Predicted post-activation norm per layer: layer 0's norm times prod sqrt(c_l / 2)."""
    layers = probe.get("layers") or []
    if not layers or not finite(layers[0].get("post_act_norm")):
        return [], []
    norm = float(layers[0]["post_act_norm"])
    xs, ys = [0], [norm]
    for index, layer in enumerate(layers[1:], start=1):
        c = layer.get("fan_in_var")
        if not finite(c) or c <= 0:
            break
        norm *= math.sqrt(c / 2)
        xs.append(index)
        ys.append(norm)
    return xs, ys


def seed_band(group: ConfigGroup, field: str, which: str):
    """Per layer over the configuration's seeds: layer indices, geometric mean, min and max of a
    probe field (positive finite values only: the panels are log scaled). "final" uses runs that
    probed after training as well as at initialization."""
    needed = 2 if which == "final" else 1
    rows = [layer_statistic(run, field, which) for run in group.runs
            if len(run.get("probes") or []) >= needed]
    if not rows or not max(len(row) for row in rows):
        return [], [], [], []
    table = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for index, row in enumerate(rows):
        table[index, :len(row)] = row
    table[~np.isfinite(table) | (table <= 0)] = np.nan
    layers = np.flatnonzero(np.isfinite(table).any(axis=0))
    if not len(layers):
        return [], [], [], []
    kept = table[:, layers]
    mean = np.exp(np.nanmean(np.log(kept), axis=0))
    return (layers.tolist(), mean.tolist(), np.nanmin(kept, axis=0).tolist(),
            np.nanmax(kept, axis=0).tolist())


def _panel(axis, groups, styles, field, which, theory=False):
    drawn = False
    for group, style in zip(groups, styles, strict=False):
        run = probe_run(group)
        if run is None:
            continue
        xs, ys, low, high = seed_band(group, field, which)
        if xs:
            axis.plot(xs, ys, linewidth=1.4, marker=".", markersize=4, **style)
            if low != high:  # seeds disagree somewhere: show their spread
                axis.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)
            drawn = True
        probe = run["probes"][0]
        if theory and which == "init" and theory_applies(run):
            txs, tys = relu_theory(probe)
            # The theory is drawn thin and faint: dash patterns may already encode a swept key.
            axis.plot(txs, tys, color=style["color"], linestyle="--", linewidth=0.8, alpha=0.5)
    axis.set_xlabel("layer")
    axis.set_yscale("log")
    axis.grid(alpha=0.3, which="both")
    if not drawn:
        axis.text(0.5, 0.5, "no probe data", ha="center", va="center", transform=axis.transAxes)
    return drawn


def _legend(axis, legend, extra=None, seeds=False):
    for label, style in legend:
        axis.plot([], [], label=label, **style)
    if extra:
        axis.plot([], [], color="grey", linestyle="--", label=extra)
    if seeds:
        axis.fill_between([], [], [], color="grey", alpha=0.15,
                          label="line: geometric mean over seeds; band: min to max")
    axis.legend(fontsize=7, loc="best")


PANELS = (
    ("activation_norms.png", "post_act_norm", "activation norm ‖post-activation‖", True),
    ("gradient_norms.png", "weight_grad_norm", "weight-gradient norm ‖∂loss/∂W‖", False),
)


def probe_panels(sweep: Sweep, out_dir: Path) -> list[str]:
    """Per-layer panels at initialization and after training, one line per configuration: the
    geometric mean over its seeds, with the band from the smallest to the largest seed."""
    groups = [g for g in group_runs(sweep) if probe_run(g) is not None]
    if not groups:
        return []
    styles, legend = style_groups(sweep, groups)
    seeds = any(len(group.runs) > 1 for group in groups)
    written = []
    for name, field, title, theory in PANELS:
        figure, axes = new_figure(1, 2)
        for axis, which in zip(axes[0], ("init", "final"), strict=False):
            _panel(axis, groups, styles, field, which, theory)
            when = "at initialization" if which == "init" else "after training"
            axis.set_title(f"{title}: {when}", fontsize=10)
        _legend(axes[0][0], legend, "ReLU theory ×sqrt(c/2) per layer" if theory else None,
                seeds)
        written.append(save(figure, out_dir, name))

    figure, axes = new_figure(1, 1, 6.0, 3.8)
    _panel(axes[0][0], groups, styles, "weight_rel_change", "final")
    axes[0][0].set_title("relative weight change ‖W_T − W_0‖ / ‖W_0‖ per layer", fontsize=10)
    _legend(axes[0][0], legend, seeds=seeds)
    written.append(save(figure, out_dir, "weight_change.png"))

    figure, axes = new_figure(1, 2)
    for axis, which in zip(axes[0], ("init", "final"), strict=False):
        _panel(axis, groups, styles, "fan_in_var", which)
        axis.set_title(f"fan_in·Var(W): {'before' if which == 'init' else 'after'} training",
                       fontsize=10)
    _legend(axes[0][0], legend, seeds=seeds)
    written.append(save(figure, out_dir, "fan_in_var.png"))
    return written


def layer_statistic(run: dict[str, Any], field: str, which: str) -> np.ndarray:
    """One probe field across layers (NaN where absent), at init or at the last probe."""
    probes = run.get("probes") or []
    if not probes:
        return np.array([])
    probe = probes[0] if which == "init" else probes[-1]
    return np.array([
        float(layer[field]) if finite(layer.get(field)) else np.nan
        for layer in probe.get("layers") or []
    ])
