"""Short training run on cuda against the same run on cpu (bench layer). Uses the harness
(`python -m harness run device=...`) when it can run (its config stack may come from the carried
wheels, see gpu_check.sh), else a small engine MLP on synthetic data; records wall times, losses
and errors in $OUT/train.json. The cuda run goes twice: the first process may compile kernels,
the second loads them from Triton's cache. Each run's record gives its time per training step
over the second half of its steps (the record's train_time_s: evaluations, start-up and the first
steps' compiles left out), and a cuda run under cProfile says where the host time goes. Extra
harness overrides come from GPU_TRAIN_ARGS (default "data=synthetic train.steps=200": the GPU
machine has no MNIST copy).
Last, a batch-norm ConvNet trained with Adam on synthetic 28x28 images (GPU_TRAIN_CONV_ARGS):
convolution, batch norm, max pooling and the Adam kernel, which the MLP never launches; twice on
cuda (the first process autotunes and compiles, the second finds both on disk), once on cpu.
Results are saved after every run: a stage that runs out of time keeps what finished.
Usage: python bench/gpu_train.py
"""

import glob
import json
import os
import pstats
import re
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.gpu_common import out_dir, save

RUN_LIMIT_S = int(os.environ.get("GPU_TRAIN_RUN_LIMIT", "50"))
# A ConvNet's first cuda process of 20 steps took 32-38 s (wall) on an H100 with 16 CPUs
# compiling autotune candidates ahead (60 s before, one at a time), its second 8-9 s:
# bench/results/gpu_check_h100.txt and gpu_followup_h100.txt.
FIRST_CONV_LIMIT_S = int(os.environ.get("GPU_TRAIN_FIRST_CONV_LIMIT", "100"))
CONV_ARGS = ("data=synthetic data.n_features=784 model=convnet norm=batchnorm optimizer=adam "
             "train.steps=20 train.log_every=5")


def harness_available():
    try:
        probe = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True,
                               text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0 and " run" in probe.stdout


def _harness_overrides():
    """GPU_TRAIN_ARGS as a list."""
    return shlex.split(os.environ.get("GPU_TRAIN_ARGS", "data=synthetic train.steps=200"))


def harness_run(device, profile_to=None, overrides=None, limit=None):
    extra = _harness_overrides() if overrides is None else overrides
    profiler = ["-m", "cProfile", "-o", profile_to] if profile_to else []
    with tempfile.TemporaryDirectory() as records:
        command = [sys.executable, *profiler, "-m", "harness", "run", f"device={device}", *extra,
                   f"--output-dir={records}"]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=limit or RUN_LIMIT_S)
            rc, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:  # its output is bytes, even with text=True
            rc, output = "timeout", b"".join(
                part or b"" for part in (expired.stdout, expired.stderr)).decode(errors="replace")
        wall_s = time.perf_counter() - start
        record = None
        for path in glob.glob(os.path.join(records, "*", "*.json")):
            with open(path) as stored:
                record = json.load(stored)
    # The harness prints "status: ok  <metrics>  (<trial seconds>s)": the trial without start-up.
    status = re.search(r"^status: (\w+)\s+(.*)\((\d+\.?\d*)s\)\s*$", output, re.MULTILINE)
    return {"device": device, "command": shlex.join(command[:-1]), "rc": rc,  # no temp folder
            "wall_s": round(wall_s, 2), "status": status.group(1) if status else None,
            "metrics": status.group(2).strip() if status else None,
            "trial_s": float(status.group(3)) if status else None,
            "step_ms": step_ms(record), "output_tail": output[-3000:]}


def step_ms(record):
    """Milliseconds a training step took over the second half of a record's steps (from its
    metric entries' train_time_s: the first steps, which compile and load kernels, and the
    evaluations left out); None without an entry before the last one in the second half."""
    entries = [(entry["step"], entry.get("train_time_s")) for entry in (record or {}).get(
        "metrics", []) if entry.get("train_time_s") is not None]
    if not entries:
        return None
    last_step, last_s = entries[-1]
    first_step, first_s = next(entry for entry in entries if entry[0] >= last_step / 2)
    if first_step == last_step:
        return None
    return round((last_s - first_s) / (last_step - first_step) * 1e3, 3)


# Where a launch enters Triton: ours (kernels_triton/launch.py, which calls Triton only for a
# key's first launch), compiled kernels, the interpreter (smoke runs), the autotuner.
LAUNCH_ENTRIES = {("launch.py", "launch"), ("jit.py", "run"), ("interpreter.py", "run"),
                  ("autotuner.py", "run")}


def profile_summary(path, top=20):
    """The calls to Triton's launch entries, and the functions with the most cumulative and own
    time, from a cProfile dump (cProfile slows pure-Python calls, so the shares are what count)."""
    stats = pstats.Stats(path).stats  # {(file, line, name): (calls, ncalls, tottime, cumtime, _)}
    total = max(entry[3] for entry in stats.values())

    def label(key):
        file, line, name = key
        parts = file.replace(os.sep, "/").split("/")
        return f"{'/'.join(parts[-2:])}:{line}({name})"

    def ranked(column, skip_single_calls):
        # Functions called once (the call chain from the interpreter down to the trial, module
        # bodies) only pass time on: the functions they call say where it goes.
        keys = sorted((key for key in stats if not skip_single_calls or stats[key][1] > 1),
                      key=lambda key: stats[key][column], reverse=True)[:top]
        return [f"{stats[k][1]:>8} {stats[k][2]:8.3f}s own {stats[k][3]:8.3f}s cum  {label(k)}"
                for k in keys]

    launches = {label(key): entry[1] for key, entry in stats.items()
                if (os.path.basename(key[0]), key[2]) in LAUNCH_ENTRIES}
    return {"total_s": round(total, 3), "launch_calls": launches,
            "top_cumulative": ranked(3, True), "top_own": ranked(2, False)}


def engine_run(device_name, steps=60, batch=128):
    """A 784-256-10 ReLU MLP with SGD on a fixed synthetic teacher task, needle API."""
    import engine as ndl
    from engine import nn, optim

    device = ndl.cuda() if device_name == "cuda" else ndl.cpu()
    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    model = nn.Sequential(nn.Linear(784, 256, device=device), nn.ReLU(),
                          nn.Linear(256, 10, device=device))
    loss_fn, opt = nn.SoftmaxLoss(), optim.SGD(model.parameters(), lr=0.05)
    losses, step_s, start = [], [], time.perf_counter()
    for _ in range(steps):
        step_start = time.perf_counter()
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        y = np.argmax(x @ teacher, axis=1)
        loss = loss_fn(model(ndl.Tensor(x, device=device)), ndl.Tensor(y, device=device))
        (getattr(opt, "zero_grad", None) or opt.reset_grad)()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))  # reads the loss back: each step ends synchronized
        step_s.append(time.perf_counter() - step_start)
    # The first steps compile every kernel they launch (Triton JIT); the rest is the steady state.
    return {"device": device_name, "steps": steps, "wall_s": round(time.perf_counter() - start, 2),
            "first_step_s": round(step_s[0], 3),
            "steady_step_ms": round(float(np.median(step_s[steps // 2:])) * 1e3, 3),
            "first_loss": losses[0], "last_loss": losses[-1], "losses": losses[::10]}


def main():
    result = {}
    if harness_available():
        result["mode"] = "harness"
        result["runs"] = []
        # The first cuda process compiles what earlier stages did not; the second finds every
        # kernel in Triton's disk cache.
        for device, label in (("cuda", "cuda, first process"),
                              ("cuda", "cuda, second process (kernels cached)"), ("cpu", "cpu")):
            result["runs"].append(dict(harness_run(device), label=label))
            save("train", result)
        result["step_ms"] = {device: run["step_ms"] for device, run in (
            ("cuda", result["runs"][1]), ("cpu", result["runs"][2]))
            if run["step_ms"] and run["status"] == "ok"}
        save("train", result)
        profile_to = os.path.join(out_dir(), "train_cuda.prof")
        if os.path.exists(profile_to):  # an earlier check's, which a killed run would leave
            os.remove(profile_to)
        profiled = dict(harness_run("cuda", profile_to=profile_to), label="cuda under cProfile")
        result["runs"].append(profiled)
        if os.path.exists(profile_to):  # cProfile exits 0 whatever the run did
            result["cuda_profile"] = profile_summary(profile_to)
        save("train", result)
        conv_args = shlex.split(os.environ.get("GPU_TRAIN_CONV_ARGS", CONV_ARGS))
        # The cuda runs compile autotune candidates on every CPU, as a GPU node's run would be
        # given them (kernels_triton/compile_ahead.py); the cpu run keeps one thread.
        cpus = len(os.sched_getaffinity(0))
        for device, label, limit in (
                ("cuda", f"convnet, cuda, first process, {cpus} CPUs", FIRST_CONV_LIMIT_S),
                ("cuda", "convnet, cuda, second process (autotune choices cached)", None),
                ("cpu", "convnet, cpu", None)):
            threads = [f"harness.cpus_per_run={cpus}"] if device == "cuda" else []
            result["runs"].append(dict(harness_run(device, overrides=conv_args + threads,
                                                   limit=limit), label=label))
            save("train", result)
    else:
        result["mode"] = "engine MLP (harness run not available)"
        result["runs"] = []
        for device in ("cuda", "cpu"):
            try:
                result["runs"].append(engine_run(device))
            except Exception as error:  # record and go on: the report shows what broke
                result["runs"].append({"device": device, "error": repr(error)})
            save("train", result)
    save("train", result)
    for run in result["runs"]:
        print({k: v for k, v in run.items() if k not in ("output_tail", "losses")})


if __name__ == "__main__":
    main()
