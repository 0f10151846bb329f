"""One run: pin threads, build data/model/optimizer from the resolved config, train, evaluate,
probe, and return the record (never write files: on a cluster this runs on another node).
Harness layer; the same function serves a Ray task and `python -m harness run`.
"""

import hashlib
import math
import os
import time
import traceback
import warnings

import numpy as np

from harness.models import build_model, build_optimizer
from harness.record import METRIC_KEYS, new_record, now

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EVAL_BATCH = 1000


def run_one(spec, threads=1, device=None, trial_fn=None):
    """The record of `spec`: `trial_fn(config, record)` (default: train_and_evaluate) fills it in;
    an exception becomes a failed record with its traceback."""
    record = new_record(spec)
    if device:
        record["device"] = device
    record["threads"] = pin_threads(threads)
    started = time.perf_counter()
    try:
        (trial_fn or train_and_evaluate)(spec.config, record)
    except Exception:
        record["status"] = "failed"
        record["error"] = traceback.format_exc()
    record["wall_time_s"] = time.perf_counter() - started
    record["finished_at"] = now()
    # Ray reuses this worker for the next run: give back the memory the engine kept for reuse.
    import engine

    engine.release_freed_memory()
    return record


def pin_threads(threads):
    """Keep BLAS/OpenMP and the engine's kernels to the CPUs this run was given."""
    threads = max(1, int(threads))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:
        pass
    import engine

    if hasattr(engine, "set_num_threads"):
        engine.set_num_threads(threads)
    return threads


def load_data(data_cfg, seed=0):
    """(train, test) datasets of the config, each subset to the sizes asked (or what exists)."""
    from engine.data import load_dataset

    if data_cfg["name"] == "synthetic":
        total = data_cfg["n_train"] + data_cfg["n_test"]
        args = {"kind": data_cfg["kind"], "samples": total, "classes": data_cfg["n_classes"],
                "test_fraction": data_cfg["n_test"] / total, "seed": seed}
        if data_cfg["kind"] != "spiral":
            args["features"] = data_cfg["n_features"]
        return load_dataset("synthetic", split="train", **args), \
            load_dataset("synthetic", split="test", **args)
    sets = []
    for split, size in (("train", data_cfg["n_train"]), ("test", data_cfg["n_test"])):
        # The loader warns when it falls back (e.g. to the 10k test set); the record's data
        # source says the same, and the driver prints it once instead of once per worker.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dataset = load_dataset(data_cfg["name"], root=data_cfg["dir"], split=split,
                                   download=False)
        sets.append(dataset.subset(min(size, len(dataset))) if size else dataset)
    return tuple(sets)


def describe_data(data_cfg, train_set, test_set):
    both = hashlib.sha256((train_set.sha256 + test_set.sha256).encode()).hexdigest()
    return {"name": data_cfg["name"], "source": f"train: {train_set.source} | test: "
            f"{test_set.source}", "n_train": len(train_set), "n_test": len(test_set),
            "sha256": both}


def evaluate(model, dataset, loss_fn, device):
    """(mean loss, error rate) over `dataset` in eval mode, without building a graph."""
    import engine
    from engine.data import DataLoader

    model.eval()
    total_loss, wrong = 0.0, 0
    with engine.no_grad():
        for x, y in DataLoader(dataset, batch_size=EVAL_BATCH, device=device):
            logits = model(x)
            total_loss += float(loss_fn(logits, y).numpy()) * x.shape[0]
            wrong += int(np.sum(logits.numpy().argmax(axis=1) != y.numpy()))
    model.train()
    return total_loss / len(dataset), wrong / len(dataset)


def train_and_evaluate(config, record):
    """Train the model of `config` on its data with its optimizer and schedule; fill `record`."""
    import engine
    from engine.data import DataLoader
    from engine.nn import SoftmaxLoss
    from engine.probes import LayerProbe

    engine.manual_seed(config["seed"])
    if config["model"]["name"] == "quadratic":
        from harness.quadratic import train_quadratic

        record["data"] = {"name": "quadratic", "source": "generated", "n_train": 0, "n_test": 0,
                          "sha256": None}
        record.update(train_quadratic(config))
        return
    device = getattr(engine, record["device"])()
    train_set, test_set = load_data(config["data"])
    record["data"] = describe_data(config["data"], train_set, test_set)
    in_features = int(np.prod(train_set.X.shape[1:]))
    model = build_model(config, in_features, train_set.num_classes, device=device)
    optimizer = build_optimizer(config["optimizer"], model.parameters())
    loss_fn = SoftmaxLoss()
    schedule = config["train"]
    loader = DataLoader(train_set, batch_size=schedule["batch_size"], shuffle=True, device=device)
    total_steps = schedule["steps"] or schedule["epochs"] * len(loader)

    probe = LayerProbe(model)
    probe_x, probe_y = next(iter(DataLoader(train_set, batch_size=schedule["batch_size"],
                                            device=device)))
    record["probes"].append(_probe(probe, 0, probe_x, probe_y, loss_fn))
    window_loss, window_wrong, window_count, step, epoch = 0.0, 0, 0, 0, 0
    # Seconds in training steps (fetching the batch included), evaluations and probes left out:
    # the time per step a device comparison wants, readable from any two metric entries.
    train_time, mark = 0.0, time.perf_counter()
    while step < total_steps and record["diverged_at_step"] is None:
        epoch += 1
        for x, y in loader:
            step += 1
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = float(loss.numpy())
            if not math.isfinite(loss_value):
                train_time += time.perf_counter() - mark
                record["diverged_at_step"] = step
                record["metrics"].append(_entry(step, epoch, train_time, loss_value, None, None,
                                                None))
                break
            window_loss += loss_value * x.shape[0]
            window_wrong += int(np.sum(logits.numpy().argmax(axis=1) != y.numpy()))
            window_count += x.shape[0]
            train_time += time.perf_counter() - mark
            last = step == total_steps
            # Step 1 is always logged: the curves start at the initial loss, and a run that
            # diverges before the first log_every step still has a point to mark.
            if (step == 1 or step % schedule["log_every"] == 0
                    or step % schedule["eval_every"] == 0 or last):
                test = evaluate(model, test_set, loss_fn, device) \
                    if step % schedule["eval_every"] == 0 or last else (None, None)
                record["metrics"].append(_entry(step, epoch, train_time,
                                                window_loss / window_count,
                                                window_wrong / window_count, *test))
                window_loss, window_wrong, window_count = 0.0, 0, 0
            if schedule["probe_every"] and (step % schedule["probe_every"] == 0 or last):
                record["probes"].append(_probe(probe, step, probe_x, probe_y, loss_fn))
            if last:
                break
            mark = time.perf_counter()
    probe.close()
    _finish(record, model, train_set, test_set, loss_fn, device)


def _finish(record, model, train_set, test_set, loss_fn, device):
    if record["diverged_at_step"] is not None:
        record["status"] = "diverged"
        last = record["metrics"][-1]
        record["final"] = {key: last[key] for key in METRIC_KEYS}
        return
    train_loss, train_error = evaluate(model, train_set, loss_fn, device)
    test_loss, test_error = evaluate(model, test_set, loss_fn, device)
    record["final"] = {"train_loss": train_loss, "train_error": train_error,
                       "test_loss": test_loss, "test_error": test_error}
    record["status"] = "ok" if math.isfinite(train_loss) else "diverged"


def _entry(step, epoch, train_time, train_loss, train_error, test_loss, test_error):
    return {"step": step, "epoch": epoch, "train_time_s": train_time, "train_loss": train_loss,
            "train_error": train_error, "test_loss": test_loss, "test_error": test_error}


def _probe(probe, step, x, y, loss_fn):
    snapshot = probe.snapshot(step, x, y, loss_fn)
    keys = ("name", "fan_in", "pre_act_norm", "post_act_norm", "weight_grad_norm",
            "weight_rel_change", "fan_in_var")
    return {"step": snapshot["step"],
            "layers": [{key: layer[key] for key in keys} for layer in snapshot["layers"]]}
