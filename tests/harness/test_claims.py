"""Harness layer: the claim scoreboard evaluates pass / fail / missing on constructed results."""

import json
import math
from pathlib import Path

import pytest
import yaml

from harness.report.claims import evaluate_claim, validate_claim
from harness.report.load import load_sweep
from harness.report.presets import CONF_DIR, sweep_claims
from tests.harness import report_fixtures as fx

PRESETS = sorted((CONF_DIR / "experiment").glob("*.yaml"))
LECTURE_PRESETS = ("init_variance", "weights_persist", "normalization", "dropout", "optimizers",
                   "grid")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return load_sweep(fx.full_sweep(tmp_path_factory.mktemp("claims") / "sweep"))


def claim(**fields):
    base = {"id": "t", "statement": "a lecture statement", "op": "<", "threshold": 1.0}
    return {**base, **fields}


def test_pass_with_measured_value(sweep):
    result = evaluate_claim(sweep, claim(
        where={"init.c": 2}, statistic="layer_ratio",
        args={"field": "post_act_norm", "first": 0, "last": -1}, op="between",
        threshold=[0.5, 2.0]))
    assert result.status == "pass"
    assert 0.5 < result.measured < 2.0
    assert result.runs_used == 4
    assert "layer_ratio(init.c=2) in [0.5, 2]" == result.expectation


def test_fail_keeps_the_measured_value(sweep):
    result = evaluate_claim(sweep, claim(where={"init.c": 1}, statistic="layer_ratio",
                                         op=">", threshold=1.0))
    assert result.status == "fail"
    assert result.measured == pytest.approx(0.5 ** (7 / 2), rel=0.2)  # sqrt(1/2) per layer


def test_missing_when_no_run_matches(sweep):
    result = evaluate_claim(sweep, claim(where={"init": "kaiming"}, statistic="loss_ratio"))
    assert result.status == "missing" and result.measured is None
    assert "no completed run matches init=kaiming" in result.detail


def test_missing_when_runs_lack_the_data(sweep):
    result = evaluate_claim(sweep, claim(where={"init.c": 2}, statistic="quadratic_gap"))
    assert result.status == "missing"
    assert "lack the data" in result.detail


def test_failed_runs_do_not_count(tmp_path):
    troubled = load_sweep(fx.troubled_sweep(tmp_path / "sweep"))
    result = evaluate_claim(troubled, claim(where={"init.c": 1}, statistic="loss_ratio"))
    assert result.status == "missing"


def test_diverged_run_counts_as_infinite_loss(sweep):
    result = evaluate_claim(sweep, claim(where={"init.c": 3, "optimizer.lr": 0.3},
                                         statistic="final", op=">", threshold=2.303))
    assert result.status == "pass" and math.isinf(result.measured)
    diverged = evaluate_claim(sweep, claim(where={"init.c": 3, "optimizer.lr": 0.3},
                                           statistic="diverged", op=">=", threshold=1))
    assert diverged.status == "pass"


def test_versus_difference_and_ratio(sweep):
    faster = evaluate_claim(sweep, claim(where={"init.c": 2}, versus={"init.c": 1},
                                         statistic="final", args={"metric": "train_loss"},
                                         op="<", threshold=0.0))
    assert faster.status == "pass" and faster.measured < 0
    ratio = evaluate_claim(sweep, claim(where={"init": {"c": 1}}, versus={"init.c": 3},
                                        statistic="layer_ratio", combine="ratio",
                                        op="<", threshold=0.1))
    assert ratio.status == "pass"
    assert ratio.measured == pytest.approx((1 / 3) ** (7 / 2), rel=0.2)  # (sqrt(1/3))^7
    assert "layer_ratio(init.c=1) / layer_ratio(init.c=3)" in ratio.expectation


def test_reduce_max_over_runs(sweep):
    worst = evaluate_claim(sweep, claim(where={"init.c": 2}, statistic="loss_ratio",
                                        reduce="max", op="<", threshold=0.5))
    mean = evaluate_claim(sweep, claim(where={"init.c": 2}, statistic="loss_ratio"))
    assert worst.measured >= mean.measured


def test_probe_statistics(sweep):
    drift = evaluate_claim(sweep, claim(where={"init.c": 2, "optimizer.lr": 0.1},
                                        statistic="fan_in_var_drift", op="<", threshold=0.2))
    assert drift.status == "pass" and 0 < drift.measured < 0.2
    moved = evaluate_claim(sweep, claim(where={"init.c": 2}, statistic="weight_rel_change",
                                        args={"reduce": "max"}, op="<", threshold=0.1))
    assert moved.measured == pytest.approx(0.05)
    gap = evaluate_claim(sweep, claim(where={"init.c": 2}, statistic="generalization_gap",
                                      op=">", threshold=0.0))
    assert gap.status == "pass"


@pytest.mark.parametrize("bad, message", [
    ({"statistic": "nonsense"}, "unknown statistic 'nonsense'"),
    ({"statistic": "final", "op": "~"}, "unknown op '~'"),
    ({"statistic": "final", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
    ({"statistic": "final", "op": "between", "threshold": 3}, "needs threshold \\[low, high\\]"),
    ({"statistic": "final", "threshold": "small"}, "threshold must be a number"),
    ({"statistic": "final", "reduce": "median"}, "unknown reduce 'median'"),
])
def test_bad_claims_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_claim(claim(**bad))
    with pytest.raises(ValueError, match="missing key 'statistic'"):
        validate_claim(claim())


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_claims_are_valid(preset):
    config = yaml.safe_load(preset.read_text())
    claims = (config.get("harness") or {}).get("claims") or []
    ids = [validate_claim(c)["id"] for c in claims]
    assert len(ids) == len(set(ids)), f"{preset.name}: duplicate claim ids"
    if preset.stem in LECTURE_PRESETS:
        assert claims, f"{preset.name} declares no claims"
        assert preset.read_text().startswith("# @package _global_\n# Lecture claim")


def test_claims_found_in_sweep_json_first(tmp_path):
    directory = fx.single_run_sweep(tmp_path / "sweep")
    plan = load_sweep(directory).plan
    plan.update(claims=[claim(statistic="diverged")], overrides=["experiment=init_variance"])
    (Path(directory) / "sweep.json").write_text(json.dumps(plan))
    assert [c["statistic"] for c in sweep_claims(load_sweep(directory))] == ["diverged"]
    plan.pop("claims")
    (Path(directory) / "sweep.json").write_text(json.dumps(plan))
    assert sweep_claims(load_sweep(directory))[0]["id"] == "c1_vanishes"
