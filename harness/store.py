"""A sweep's output folder, written only by the driver: the plan (sweep.yaml/.json), one atomic JSON
per run (runs/ for ok and diverged, failed/ apart), results.csv; resume reads what is done.
Harness layer.
"""

import csv
import io
import json
import math
import os
import tempfile

import yaml

from harness.record import METRIC_KEYS, check

DONE_STATUSES = ("ok", "diverged")


def atomic_write(path, text):
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never half:
    a temp file in the same folder, fsync, rename, fsync of the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _finite(value):
    """NaN and Inf (a diverged run's losses) become null: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class SweepStore:
    """The output folder of one sweep (re-running the same sweep into it resumes)."""

    def __init__(self, root):
        self.root = root
        self.runs_dir = os.path.join(root, "runs")
        self.failed_dir = os.path.join(root, "failed")

    def write_plan(self, plan):
        document = {
            "command": plan.command, "experiment": plan.experiment, "swept_keys": plan.swept_keys,
            "harness": plan.harness, "claims": plan.harness.get("claims", []),
            "runs": [{"run_id": r.run_id, "name": r.name, "overrides": r.overrides}
                     for r in plan.runs],
        }
        atomic_write(os.path.join(self.root, "sweep.json"), json.dumps(document, indent=2) + "\n")
        atomic_write(os.path.join(self.root, "sweep.yaml"),
                     yaml.safe_dump(document, sort_keys=False))

    def read_plan(self):
        with open(os.path.join(self.root, "sweep.json")) as source:
            return json.load(source)

    def done_ids(self):
        """Ids of runs with an ok or diverged record (failed runs are tried again on resume)."""
        return {record["run_id"] for record in self._records(self.runs_dir)
                if record.get("status") in DONE_STATUSES}

    def write_record(self, record):
        check(record)
        name = f"{record['run_id']}.json"
        text = json.dumps(_finite(record), indent=1, allow_nan=False, default=str) + "\n"
        if record["status"] in DONE_STATUSES:
            atomic_write(os.path.join(self.runs_dir, name), text)
            stale = os.path.join(self.failed_dir, name)
            if os.path.exists(stale):
                os.unlink(stale)
        else:
            atomic_write(os.path.join(self.failed_dir, name), text)
        return os.path.join(self.runs_dir if record["status"] in DONE_STATUSES else self.failed_dir,
                            name)

    def records(self, run_ids=None):
        """Every stored record (a done one wins over a failed one), in plan order if given."""
        by_id = {r["run_id"]: r for r in self._records(self.failed_dir)}
        by_id.update({r["run_id"]: r for r in self._records(self.runs_dir)})
        if run_ids is None:
            return list(by_id.values())
        return [by_id[run_id] for run_id in run_ids if run_id in by_id]

    def write_results_csv(self, swept_keys, run_ids=None):
        """results.csv: one row per run of the plan, swept keys as columns, final metrics."""
        columns = (["run_id", "name", "status"] + list(swept_keys)
                   + [f"final_{key}" for key in METRIC_KEYS]
                   + ["diverged_at_step", "wall_time_s", "hostname", "ray_node_id", "device"])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for record in self.records(run_ids):
            row = {"run_id": record["run_id"], "name": record["name"], "status": record["status"],
                   "diverged_at_step": record["diverged_at_step"],
                   "wall_time_s": round(record["wall_time_s"] or 0.0, 3),
                   "hostname": (record["node"] or {}).get("hostname"),
                   "ray_node_id": (record["node"] or {}).get("ray_node_id"),
                   "device": record["device"]}
            row.update({key: record["overrides"].get(key) for key in swept_keys})
            row.update({f"final_{key}": (record["final"] or {}).get(key) for key in METRIC_KEYS})
            writer.writerow(row)
        path = os.path.join(self.root, "results.csv")
        atomic_write(path, buffer.getvalue())
        return path

    @staticmethod
    def _records(folder):
        if not os.path.isdir(folder):
            return []
        found = []
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json") and not name.startswith("."):
                with open(os.path.join(folder, name)) as source:
                    found.append(json.load(source))
        return found
