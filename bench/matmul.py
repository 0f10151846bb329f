"""Benchmark: GFLOP/s of our cpu-device matmul (raw C kernel, NDArray, Tensor API) next to numpy
(OpenBLAS) measured in the same run, on 1 and 2 threads. Bench layer; not a test.

Run it from the repository root with OpenBLAS's tuning variables unset (they may be set on this
machine and slow numpy down, which would flatter our ratios):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/matmul.py [--small]
`--small` runs only the experiment shapes (MLP 784-100-10 forward and backward, batch 100) on one
thread, raw kernel against numpy: the quick loop for tuning the small-matrix path. Layout "TN"
passes A as a transposed view (A^T @ G of the weight gradient), "NT" passes B transposed (G @ W^T).
"""

import argparse
import os

import numpy as np
from threadpoolctl import threadpool_limits
from timing import seconds_per_call

from engine.backend import array, cpu
from kernels_c import load

SQUARE = (256, 512, 1024, 2048)
# m, k, n of the MLP's matmuls at batch 100: forward, weight gradients, input gradients.
EXPERIMENT_SHAPES = ((100, 100, 100), (100, 784, 100), (100, 100, 10), (100, 10, 100),
                     (784, 100, 100))
LAYOUTS = ("NN", "TN", "NT")


def tensor_matmul(a, b):
    """Our matmul through the Tensor API, or None until `engine.Tensor` exists."""
    try:
        import engine

        ta, tb = engine.Tensor(a, device=engine.cpu()), engine.Tensor(b, device=engine.cpu())
    except (ImportError, AttributeError, TypeError):
        return None
    return lambda: ta @ tb


def operands(m, k, n, layout):
    """(a, b) as numpy arrays of shapes (m, k), (k, n); "T" makes that operand a transposed view."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k) if layout[0] == "N" else (k, m)).astype(np.float32)
    b = rng.standard_normal((k, n) if layout[1] == "N" else (n, k)).astype(np.float32)
    return (a if layout[0] == "N" else a.T), (b if layout[1] == "N" else b.T)


def raw_call(lib, a, b, out):
    """A zero-argument call of nd_matmul_f32 on numpy views a, b (strides read off the views)."""
    (m, k), n = a.shape, b.shape[1]
    a_rs, a_cs = (s // 4 for s in a.strides)
    b_rs, b_cs = (s // 4 for s in b.strides)
    pa, pb, pout = a.ctypes.data, b.ctypes.data, out.ctypes.data
    return lambda: lib.nd_matmul_f32(pa, pb, pout, a.size, b.size, out.size, 1, m, k, n,
                                     0, 0, a_rs, a_cs, 0, 0, b_rs, b_cs)


def measure(m, k, n, lib, layout="NN", full=True, budget=0.3, rounds=3):
    a, b = operands(m, k, n, layout)
    out = np.empty((m, n), np.float32)
    raw = raw_call(lib, a, b, out)
    assert raw() == 0
    np.testing.assert_allclose(out, a @ b, rtol=1e-3, atol=1e-3 * np.sqrt(k))
    flops = 2.0 * m * n * k
    result = {"raw": flops / seconds_per_call(raw, budget, rounds) / 1e9,
              "numpy": flops / seconds_per_call(lambda: a @ b, budget, rounds) / 1e9}
    if full:
        da, db = array(a, device=cpu()), array(b, device=cpu())
        result["ndarray"] = flops / seconds_per_call(lambda: da @ db) / 1e9
        tensor = tensor_matmul(a, b)
        result["tensor"] = flops / seconds_per_call(tensor) / 1e9 if tensor else float("nan")
    return result


def call_overhead_us(lib):
    """Microseconds of one ctypes call of nd_matmul_f32 that does no work (m = 0)."""
    out = np.empty(1, np.float32)
    p = out.ctypes.data
    empty = lambda: lib.nd_matmul_f32(p, p, p, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1)  # noqa: E731
    return seconds_per_call(empty) * 1e6


def run_small(lib):
    cpu().set_num_threads(1)
    print(f"1 thread, GFLOP/s, best of 5; ctypes call overhead {call_overhead_us(lib):.2f} us "
          f"(included in raw)")
    print(f"{'shape (m x k @ k x n)':>24} {'lay':>3} {'raw':>7} {'numpy':>7} {'raw/np':>7}")
    with threadpool_limits(1):
        for m, k, n in EXPERIMENT_SHAPES:
            for layout in LAYOUTS:
                r = measure(m, k, n, lib, layout, full=False, budget=0.5, rounds=5)
                label = f"{m}x{k} @ {k}x{n}"
                print(f"{label:>24} {layout:>3} {r['raw']:7.1f} {r['numpy']:7.1f} "
                      f"{r['raw'] / r['numpy']:7.2f}")


def run_full(lib):
    header = (f"{'shape (m x k @ k x n)':>24} {'thr':>3} {'raw':>7} {'ndarray':>8} {'tensor':>7} "
              f"{'numpy':>7} {'raw/np':>7} {'nd/np':>6} {'ten/np':>6}")
    print("GFLOP/s, float32, best of 3, operands compact (layout NN)")
    print(header)
    shapes = [(n, n, n) for n in SQUARE] + list(EXPERIMENT_SHAPES)
    for threads in (1, 2):
        cpu().set_num_threads(threads)
        with threadpool_limits(threads):
            for m, k, n in shapes:
                r = measure(m, k, n, lib)
                label = f"{m}x{k} @ {k}x{n}"
                print(f"{label:>24} {threads:>3} {r['raw']:7.1f} {r['ndarray']:8.1f} "
                      f"{r['tensor']:7.1f} {r['numpy']:7.1f} {r['raw'] / r['numpy']:7.2f} "
                      f"{r['ndarray'] / r['numpy']:6.2f} {r['tensor'] / r['numpy']:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="experiment shapes only, 1 thread, every layout")
    args = parser.parse_args()
    lib = load()
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if unset:
        print(f"note: {unset} are set and may slow numpy; see the header for how to unset them")
    if args.small:
        run_small(lib)
    else:
        run_full(lib)


if __name__ == "__main__":
    main()
