"""Result store tests: atomic writes, done/failed bookkeeping, results.csv, strict JSON."""

import csv
import json
import math
import os

import pytest

from harness.record import FIELDS, failed_record, new_record
from harness.store import SweepStore, atomic_write
from harness.sweep import RunSpec


def spec(seed=0):
    return RunSpec(run_id=f"id{seed:010d}", name=f"seed={seed}", overrides={"seed": str(seed)},
                   config={"seed": seed, "device": {"name": "cpu"}}, seed=seed)


def finished(seed=0, status="ok", loss=0.25):
    record = new_record(spec(seed))
    record.update(status=status, final={"train_loss": loss, "train_error": 0.1,
                                        "test_loss": loss, "test_error": 0.2})
    return record


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "deep" / "a.json"
    atomic_write(str(path), "first")
    atomic_write(str(path), "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["a.json"]


def test_atomic_write_failure_keeps_old_content(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(str(path), "old")

    class Unwritable:
        def __str__(self):
            raise RuntimeError("cannot render")

    with pytest.raises(TypeError):
        atomic_write(str(path), Unwritable())
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_done_ids_count_ok_and_diverged_but_not_failed(tmp_path):
    store = SweepStore(str(tmp_path))
    store.write_record(finished(0))
    store.write_record(finished(1, status="diverged", loss=math.nan))
    store.write_record(failed_record(spec(2), "Traceback: boom"))
    assert store.done_ids() == {"id0000000000", "id0000000001"}
    assert os.listdir(store.failed_dir) == ["id0000000002.json"]


def test_success_after_failure_removes_the_failed_record(tmp_path):
    store = SweepStore(str(tmp_path))
    store.write_record(failed_record(spec(0), "boom"))
    store.write_record(finished(0))
    assert os.listdir(store.failed_dir) == []
    assert [r["status"] for r in store.records()] == ["ok"]


def test_records_are_strict_json_with_every_field(tmp_path):
    store = SweepStore(str(tmp_path))
    path = store.write_record(finished(0, status="diverged", loss=math.inf))
    text = open(path).read()
    assert "Infinity" not in text and "NaN" not in text
    record = json.loads(text)
    assert set(FIELDS) <= set(record)
    assert record["final"]["train_loss"] is None


def test_bad_record_is_refused_naming_the_field(tmp_path):
    record = finished(0)
    del record["metrics"]
    with pytest.raises(ValueError, match="metrics"):
        SweepStore(str(tmp_path)).write_record(record)
    record = finished(0, status="great")
    with pytest.raises(ValueError, match="great"):
        SweepStore(str(tmp_path)).write_record(record)


def test_results_csv_has_one_row_per_planned_run_with_swept_columns(tmp_path):
    store = SweepStore(str(tmp_path))
    for seed in range(3):
        store.write_record(finished(seed))
    path = store.write_results_csv(["seed"], ["id0000000002", "id0000000000", "id9999999999"])
    rows = list(csv.DictReader(open(path)))
    assert [row["seed"] for row in rows] == ["2", "0"]
    assert rows[0]["final_test_error"] == "0.2"
