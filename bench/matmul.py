"""Benchmark: GFLOP/s of our cpu-device matmul (raw C kernel, NDArray, Tensor API) next to numpy
(OpenBLAS) measured in the same run, on 1 and 2 threads. Bench layer; not a test.

Run it from the repository root with OpenBLAS's tuning variables unset (they may be set on this
machine and slow numpy down, which would flatter our ratios):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/matmul.py
"""

import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from engine.backend import array, cpu
from kernels_c import load

SQUARE = (256, 512, 1024, 2048)
EXPERIMENT_SHAPES = ((100, 784, 100), (100, 100, 100), (100, 100, 10))  # m, k, n


def seconds_per_call(fn, budget=0.3, rounds=3):
    """The best of `rounds` mean times over `budget` seconds each (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed > budget / rounds:
                break
        best = min(best, elapsed / calls)
    return best


def tensor_matmul(a, b):
    """Our matmul through the Tensor API, or None until `engine.Tensor` exists."""
    try:
        import engine

        ta, tb = engine.Tensor(a, device=engine.cpu()), engine.Tensor(b, device=engine.cpu())
    except (ImportError, AttributeError, TypeError):
        return None
    return lambda: ta @ tb


def measure(m, k, n, lib):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    pa, pb, pout = a.ctypes.data, b.ctypes.data, out.ctypes.data
    raw = lambda: lib.nd_matmul_f32(pa, pb, pout, a.size, b.size, out.size, 1, m, k, n,  # noqa: E731
                                    0, 0, k, 1, 0, 0, n, 1)
    assert raw() == 0
    np.testing.assert_allclose(out, a @ b, rtol=1e-3, atol=1e-3 * np.sqrt(k))
    da, db = array(a, device=cpu()), array(b, device=cpu())
    flops = 2.0 * m * n * k
    result = {"raw": flops / seconds_per_call(raw) / 1e9,
              "ndarray": flops / seconds_per_call(lambda: da @ db) / 1e9,
              "numpy": flops / seconds_per_call(lambda: a @ b) / 1e9}
    tensor = tensor_matmul(a, b)
    result["tensor"] = flops / seconds_per_call(tensor) / 1e9 if tensor else float("nan")
    return result


def main():
    lib = load()
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if unset:
        print(f"note: {unset} are set and may slow numpy; see the header for how to unset them")
    header = (f"{'shape (m x k @ k x n)':>24} {'thr':>3} {'raw':>7} {'ndarray':>8} {'tensor':>7} "
              f"{'numpy':>7} {'raw/np':>7} {'nd/np':>6} {'ten/np':>6}")
    print("GFLOP/s, float32, best of 3")
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


if __name__ == "__main__":
    main()
