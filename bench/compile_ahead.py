"""Benchmark (bench layer), no GPU needed: the first autotuning of the GPU benchmark's conv layer
(forward, input and weight gradient) and of a 1024^3 product, compiling their candidates for sm_90
one at a time (1 compile thread) against ahead in parallel (kernels_triton/compile_ahead.py). Each
side runs in a fresh process with an empty Triton cache; Triton's launch path runs under the
compile-only driver, so this is what a first GPU process does, less the timings themselves.
Usage: python -m bench.compile_ahead [--threads N] [--precision tf32] [--json]
(TRITON_INTERPRET must be unset)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def first_tunings(precision):
    """Seconds to launch the conv layer's three passes and a 1024^3 product once each, every
    autotuning compiling its candidates; and how many candidates were compiled ahead."""
    from bench.compile_only_driver import compile_only
    from bench.gpu_ir_probe import probe_conv, probe_matmul
    from kernels_triton import conv, matmul

    tunings = [*conv._TUNING.values(), *matmul._TUNING.values()]
    for tuning in tunings:
        # Every candidate ties: the compile-only driver launches nothing there is to time.
        tuning.timer = lambda kernel_call, quantiles: kernel_call() or [1.0, 1.0, 1.0]
    with compile_only() as stand_in:
        started = time.perf_counter()
        probe_conv(precision, "never")
        probe_matmul("nn", precision, "never")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "ahead": sum(tuning.compiled for tuning in tunings),
            "launches": len(stand_in.launches)}


def _side(threads, precision):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    with tempfile.TemporaryDirectory() as cache:
        env.update(TRITON_CACHE_DIR=cache, ENGINE_AUTOTUNE_CACHE="off")
        done = subprocess.run([sys.executable, "-m", "bench.compile_ahead", "--side",
                               str(threads), "--precision", precision], env=env,
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="compile threads of the parallel side (default: every CPU)")
    parser.add_argument("--precision", choices=("ieee", "tf32"), default="ieee")
    parser.add_argument("--json", action="store_true",
                        help="also write $OUT/compile_ahead.json (the GPU check's stage)")
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: this compiles the GPU variants")
    from kernels_triton.compile_ahead import compile_threads, set_compile_threads

    if args.side is not None:
        set_compile_threads(args.side)
        print(json.dumps(first_tunings(args.precision)))
        return
    threads = args.threads or compile_threads()
    one, ahead = _side(1, args.precision), _side(threads, args.precision)
    result = {"precision": args.precision, "threads": threads, "cpus": os.cpu_count(),
              "one_at_a_time_s": round(one["seconds"], 2), "ahead_s": round(ahead["seconds"], 2),
              "compiled_ahead": ahead["ahead"], "launches": one["launches"]}
    if args.json:
        from bench.gpu_common import save

        save("compile_ahead", result)
    print(f"first autotuning of the conv layer's 3 passes and a 1024^3 product ({args.precision}),"
          f" compiled for sm_90 on {os.cpu_count()} CPUs")
    print(f"  one at a time:         {one['seconds']:6.1f} s  ({one['launches']} launches)")
    print(f"  ahead, {threads:2d} threads:     {ahead['seconds']:6.1f} s  ({ahead['ahead']} "
          f"candidates compiled ahead)")
    print(f"  ratio (one at a time / ahead): {one['seconds'] / ahead['seconds']:.2f}x")


if __name__ == "__main__":
    main()
