"""Benchmark of the harness' Ray fan-out: eight identical ~10 s runs (seeds 0-7 of one config)
sequentially in one process, then as a sweep on a local Ray instance with 2 CPUs, in one
invocation. Prints wall times, the speedup and Ray's overhead per run. Harness layer (bench).

    MNIST_DIR=... python bench/sweep_scaling.py [extra overrides]
"""

import io
import os
import sys
import tempfile
import time

from harness.runner import run_plan
from harness.store import SweepStore
from harness.sweep import expand
from harness.trial import run_one

RUNS = 8
CPUS = 2
# About 10 s per run on one core of the reference machine (AVX-512, 2 cores).
CONFIG = ["init=kaiming", "model.depth=20", "model.width=100", "model.bias=false",
          "train.steps=3000", "train.eval_every=1000", "train.probe_every=1000",
          f"seed=range(0,{RUNS})"]


def main(extra):
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        plan = expand([*CONFIG, *extra, f"harness.output_dir={folder}/ray",
                       f"harness.num_cpus={CPUS}", "harness.dashboard=false",
                       f"harness.ray_temp_dir={tempfile.mkdtemp(prefix='ray-')}"])
        print(f"{len(plan.runs)} runs of: {' '.join(CONFIG + extra)}")

        started = time.perf_counter()
        sequential = [run_one(spec, threads=1) for spec in plan.runs]
        sequential_wall = time.perf_counter() - started
        assert all(r["status"] == "ok" for r in sequential), [r["error"] for r in sequential]

        ray_up = {}
        started = time.perf_counter()
        outcome = run_plan(plan, SweepStore(plan.output_dir), out=io.StringIO(),
                           on_connect=lambda _: ray_up.setdefault("t", time.perf_counter()))
        ray_wall = time.perf_counter() - started
        assert outcome.failed == 0 and len(outcome.finished) == RUNS
        records = SweepStore(plan.output_dir).records()

    startup = ray_up["t"] - started
    after_startup = ray_wall - startup
    busy = sum(r["wall_time_s"] for r in records)
    ideal = busy / CPUS
    mean_sequential = sum(r["wall_time_s"] for r in sequential) / RUNS
    print(f"sequential, in-process: {sequential_wall:7.1f} s  ({mean_sequential:.1f} s per run)")
    print(f"Ray sweep, {CPUS} CPUs:     {ray_wall:7.1f} s  (Ray startup {startup:.1f} s, "
          f"then {after_startup:.1f} s; runs took {busy / RUNS:.1f} s each in parallel)")
    print(f"speedup incl. startup:  {sequential_wall / ray_wall:7.2f}x")
    print(f"speedup once Ray is up: {sequential_wall / after_startup:7.2f}x  (target >= 1.8x)")
    print(f"Ray overhead per run:   {(after_startup - ideal) / RUNS:7.3f} s  "
          f"(wall after startup minus the runs' own time / {CPUS}; target < 0.1 s)")


if __name__ == "__main__":
    if not os.environ.get("MNIST_DIR"):
        print("note: MNIST_DIR is not set; the mnist loader looks in its default places")
    main(sys.argv[1:])
