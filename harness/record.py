"""The run record: the one JSON document a run produces (a Ray task returns it, the driver stores
it, the report reads it). Harness layer. Fields, all always present:

    run_id            str    sha256 of the run's resolved config (execution settings excluded)
    name              str    the swept overrides, e.g. "init=kaiming,seed=0" (seed always included)
    status            str    "ok" | "diverged" (NaN/Inf loss: a result) | "failed" (an exception)
    diverged_at_step  int | null
    overrides         {swept key: value string}
    config            the resolved run config (model, data, init, norm, optimizer, train, device,
                      dropout, seed)
    metrics           [{"step", "epoch", "train_time_s", "train_loss", "train_error", "test_loss",
                      "test_error"}] train_* average the batches since the previous entry; test_*
                      are null between evaluations; train_time_s: seconds in training steps so
                      far, evaluations and probes left out
    final             {"train_loss", "train_error", "test_loss", "test_error"} (null when failed)
    probes            [{"step": k, "layers": [{"name", "fan_in", "pre_act_norm", "post_act_norm",
                      "weight_grad_norm", "weight_rel_change", "fan_in_var"}]}]
    wall_time_s       float  the trial's own time (not Ray's scheduling)
    node              {"hostname", "ray_node_id" (null outside Ray)}
    device            str    the engine device the run used
    threads           int    BLAS/OpenMP/engine threads the run was pinned to
    data              {"name", "source", "n_train", "n_test", "sha256"}
    versions          {"python", "numpy", "ray", "hydra", "engine"}
    seed              int
    error             str | null  the traceback of a failed run
    started_at        str    ISO 8601, UTC
    finished_at       str    ISO 8601, UTC
"""

import datetime
import platform
import socket

STATUSES = ("ok", "diverged", "failed")
METRIC_KEYS = ("train_loss", "train_error", "test_loss", "test_error")
FIELDS = ("run_id", "name", "status", "diverged_at_step", "overrides", "config", "metrics", "final",
          "probes", "wall_time_s", "node", "device", "threads", "data", "versions", "seed", "error",
          "started_at", "finished_at")


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_record(spec):
    """A record with every field present, filled in from a RunSpec; the trial fills in the rest."""
    return {
        "run_id": spec.run_id, "name": spec.name, "status": "failed", "diverged_at_step": None,
        "overrides": dict(spec.overrides), "config": spec.config, "metrics": [],
        "final": {key: None for key in METRIC_KEYS}, "probes": [], "wall_time_s": 0.0,
        "node": node_info(), "device": spec.config.get("device", {}).get("name"), "threads": None,
        "data": None, "versions": versions(), "seed": spec.seed, "error": None,
        "started_at": now(), "finished_at": None,
    }


def failed_record(spec, error_text):
    """What the driver stores when the task itself died (no record came back)."""
    record = new_record(spec)
    record.update(error=error_text, finished_at=now(), node={"hostname": None, "ray_node_id": None})
    return record


def check(record):
    """Raise ValueError naming what is wrong with a record (the driver checks what tasks return)."""
    missing = [key for key in FIELDS if key not in record]
    if missing:
        raise ValueError(f"record {record.get('run_id')!r} lacks field(s): {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"record {record['run_id']!r}: status {record['status']!r} "
                         f"is not one of {', '.join(STATUSES)}")


def node_info():
    ray_node_id = None
    try:
        import ray

        if ray.is_initialized():
            ray_node_id = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"hostname": socket.gethostname(), "ray_node_id": ray_node_id}


def versions():
    found = {"python": platform.python_version()}
    for module in ("numpy", "ray", "hydra", "engine"):
        try:
            found[module] = getattr(__import__(module), "__version__", "unknown")
        except ImportError:
            found[module] = None
    return found
