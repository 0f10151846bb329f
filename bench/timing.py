"""Timing for the benchmarks: best-of-rounds mean time per call, robust to a shared, noisy machine.
Bench layer (imported by the scripts beside it).
"""

import time


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
