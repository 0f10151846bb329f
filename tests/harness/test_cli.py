"""CLI tests: exit code 2 naming the key, --dry-run, list, --help, `run` in-process, and a real
sweep of the smoke preset on the session's local Ray instance through `main`."""

import json
import os

import pytest

from harness.cli import EXIT_CONFIG, EXIT_OK, main

SMOKE = ["experiment=smoke", "device=cpu_numpy"]


@pytest.mark.parametrize("override,key", [("optimizer.lr=-1,0.1", "optimizer.lr"),
                                          ("dropout.p=1", "dropout.p"),
                                          ("init=kaimin,normal", "init/kaimin"),
                                          ("harness.fail_fast=true,false", "harness.fail_fast")])
def test_bad_overrides_exit_2_naming_the_key(override, key, capsys, tmp_path):
    assert main(["sweep", override, f"harness.output_dir={tmp_path}"]) == EXIT_CONFIG
    assert key in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_dry_run_lists_the_runs_and_writes_nothing(capsys, tmp_path):
    assert main(["sweep", "init=kaiming,normal", f"harness.output_dir={tmp_path}",
                 "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "plan: 2 run(s)" in out
    assert "train[init=kaiming,seed=0]" in out and "train[init=normal,seed=0]" in out
    assert not os.listdir(tmp_path)


def test_list_and_help(capsys):
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "init:" in out and "kaiming" in out and "smoke" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "init=kaiming,normal" in capsys.readouterr().out


def test_run_in_process_stores_the_same_record(capsys, tmp_path):
    assert main(["run", *SMOKE, f"--output-dir={tmp_path}"]) == EXIT_OK
    assert "status: ok" in capsys.readouterr().out
    (name,) = os.listdir(tmp_path / "runs")
    record = json.load(open(tmp_path / "runs" / name))
    assert record["status"] == "ok" and record["node"]["hostname"]
    assert record["probes"][0]["step"] == 0 and record["metrics"][-1]["test_error"] is not None
    assert record["data"]["n_train"] > 0 and record["versions"]["engine"]


def test_sweep_end_to_end_on_ray_then_resume(ray_local, capsys, tmp_path):
    args = ["sweep", *SMOKE, f"harness.output_dir={tmp_path}"]
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "0 already done, 2 to run" in out and "results:" in out and "report:" in out
    assert sorted(os.listdir(tmp_path / "runs")) == sorted(
        f"{run['run_id']}.json" for run in json.load(open(tmp_path / "sweep.json"))["runs"])
    assert len(open(tmp_path / "results.csv").read().splitlines()) == 3
    assert main(args) == EXIT_OK
    assert "2 already done, 0 to run" in capsys.readouterr().out
