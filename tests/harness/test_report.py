"""Harness layer: the comparison report built from synthetic sweep folders (report_fixtures)."""

import csv
import json
import re
from pathlib import Path

import pytest

from harness.report import build_report
from harness.report.load import load_sweep
from harness.report.tables import summary_table
from tests.harness import report_fixtures as fx

PANELS = {"curves.png", "activation_norms.png", "gradient_norms.png", "weight_change.png",
          "fan_in_var.png", "heatmap_test_error.png", "heatmap_train_loss.png"}


def referenced_files(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    return build_report(fx.full_sweep(tmp_path_factory.mktemp("full") / "sweep"))


@pytest.fixture(scope="module")
def troubled_report(tmp_path_factory):
    return build_report(fx.troubled_sweep(tmp_path_factory.mktemp("troubled") / "sweep"))


@pytest.fixture(scope="module")
def single_report(tmp_path_factory):
    """A one-run sweep whose folder also holds the harness' results.csv and a corrupt record."""
    sweep = fx.single_run_sweep(tmp_path_factory.mktemp("single") / "sweep")
    (sweep / "results.csv").write_text("run_id,status\nabc,ok\n")
    (sweep / "runs" / "broken.json").write_text("{not json")
    return build_report(sweep)


@pytest.fixture(scope="module")
def quadratic_report(tmp_path_factory):
    return build_report(fx.quadratic_sweep(tmp_path_factory.mktemp("quadratic") / "sweep"))


def test_full_sweep_draws_every_panel(full_report):
    assert full_report == full_report.parent.parent / "report" / "index.html"
    written = {p.name for p in full_report.parent.iterdir()}
    assert PANELS | {"index.html", "report.md", "results.csv"} <= written
    html = full_report.read_text()
    assert {name for name in referenced_files(html) if name.endswith(".png")} == PANELS


@pytest.mark.parametrize("report", ["full_report", "troubled_report", "single_report",
                                    "quadratic_report"])
def test_index_references_only_existing_files(request, report):
    index = request.getfixturevalue(report)
    references = referenced_files(index.read_text())
    assert references, "the report links nothing"
    for name in references:
        assert "/" not in name and ":" not in name, f"not a sibling file: {name}"
        assert (index.parent / name).is_file(), f"index.html links missing {name}"
    assert "<script" not in index.read_text()


def test_scoreboard_comes_first(full_report):
    html = full_report.read_text()
    for status in ("pass", "fail", "missing"):
        assert f'<tr class="{status}"><td class="badge">{status}</td>' in html
    assert html.index("Claim scoreboard") < html.index("Summary") < html.index("Environment")
    markdown = (full_report.parent / "report.md").read_text()
    assert markdown.index("Claim scoreboard") < markdown.index("## Summary")


def test_summary_aggregates_seeds_and_marks_divergence(full_report):
    sweep = load_sweep(full_report.parent.parent)
    assert sweep.swept_keys == ["init.c", "optimizer.lr", "seed"]
    header, rows = summary_table(sweep, target_loss=1.0)
    assert header[:3] == ["init.c", "optimizer.lr", "seeds"]
    assert len(rows) == 6
    by_config = {(row[0], row[1]): row for row in rows}
    assert "±" in by_config[("2", "0.1")][header.index("train_loss")]
    assert by_config[("3", "0.3")][header.index("status")] == "diverged at step 40 (2 seeds)"
    assert by_config[("1", "0.1")][header.index("steps to loss ≤ 1")] == "never"
    assert "diverged at step 40" in full_report.read_text()


def test_troubled_sweep_reports_failure_and_divergence(troubled_report):
    index = troubled_report
    html = index.read_text()
    assert "diverged at step 20" in html
    assert '<tr class="failed">' in html and '<tr class="diverged">' in html
    assert "ValueError: matmul: shapes (50, 784) and (100, 100) do not align" in html
    rows = list(csv.DictReader(open(index.parent / "results.csv")))
    assert sorted(r["status"] for r in rows) == ["diverged", "failed", "ok"]


def test_single_run_sweep(single_report):
    header, rows = summary_table(load_sweep(single_report.parent.parent), None)
    assert header[0] == "run" and len(rows) == 1
    assert not (single_report.parent / "heatmap_test_error.png").exists()
    html = single_report.read_text()
    assert "This sweep declares no claims" in html
    assert "broken.json: unreadable" in html
    assert (single_report.parent / "results.csv").read_text() == "run_id,status\nabc,ok\n"


def test_environment_section(full_report):
    markdown = (full_report.parent / "report.md").read_text()
    for expected in ("| data source | generated |", "400 train / 200 test", "| device | cpu |",
                     "numpy 2.3", "12 (10 ok, 2 diverged, 0 failed)", "run time"):
        assert expected in markdown


def test_claims_from_preset_named_in_the_sweep(quadratic_report):
    markdown = (quadratic_report.parent / "report.md").read_text()
    newton = next(line for line in markdown.splitlines() if "Newton" in line)
    assert newton.startswith("| PASS |")
    assert "| MISSING |" in markdown  # the MNIST claims: no softmax or mlp runs in this sweep
    assert (quadratic_report.parent / "quadratic.png").is_file()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no sweep.json"):
        build_report(tmp_path / "empty")


def test_report_never_writes_outside_its_folder(tmp_path):
    sweep = fx.troubled_sweep(tmp_path / "sweep")
    before = {p: p.read_bytes() for p in Path(sweep).rglob("*.json")}
    build_report(sweep, tmp_path / "elsewhere")
    assert {p: p.read_bytes() for p in Path(sweep).rglob("*.json")} == before
    assert not (sweep / "report").exists()
    assert json.loads((sweep / "sweep.json").read_text())["overrides"] == ["init.c=1,2,3"]


def _probed(*layers_per_probe):
    return {"probes": [{"layers": [{"post_act_norm": v} for v in layers]}
                       for layers in layers_per_probe]}


def test_probe_panels_aggregate_every_seed():
    from harness.report.probe_panels import seed_band
    from harness.report.tables import ConfigGroup

    group = ConfigGroup({}, [_probed([1.0, 4.0, 2.0], [2.0, 2.0, 2.0]),
                             _probed([4.0, 1.0, float("nan")], [8.0, 0.0, 2.0]),
                             _probed([16.0, 16.0, 16.0])])  # probed at init only
    layers, mean, low, high = seed_band(group, "post_act_norm", "init")
    assert layers == [0, 1, 2]
    assert mean == pytest.approx([4.0, 4.0, 32 ** 0.5])  # geometric means, NaN left out
    assert low == [1.0, 1.0, 2.0] and high == [16.0, 16.0, 16.0]
    # After training: only the seeds that probed twice; the zero (log axis) is left out.
    layers, mean, low, high = seed_band(group, "post_act_norm", "final")
    assert layers == [0, 1, 2]
    assert mean == pytest.approx([4.0, 2.0, 2.0])
    assert low == [2.0, 2.0, 2.0] and high == [8.0, 2.0, 2.0]
    assert seed_band(ConfigGroup({}, [{"probes": []}]), "post_act_norm", "init") == ([], [], [],
                                                                                      [])
