"""Compiling autotune candidates ahead (kernels_triton/compile_ahead.py), through Triton's real
launch path and autotuner on a machine without a GPU: kernels compile for sm_90 under the
compile-only driver (bench/compile_only_driver.py), launches are recorded, and a stand-in timer
gives each candidate a time. Kernel-layer tests.
"""

import os
import threading

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="compiles GPU code; the interpreter replaces compilation")

triton = pytest.importorskip("triton")
torch = pytest.importorskip("torch")

import triton.language as tl  # noqa: E402

from bench.compile_only_driver import compile_only  # noqa: E402
from kernels_triton import compile_ahead  # noqa: E402

# Warps tell the candidates apart in the compiles and launches recorded.
TIMES = {1: 3.0, 2: 1.0, 4: 2.0, 8: 0.5}


def _scaled(x, out, n, BLOCK: tl.constexpr):
    tl.static_assert(BLOCK <= 256)
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) * 2.0, mask=mask)


def _config(block, warps):
    return triton.Config({"BLOCK": block}, num_warps=warps)


CANDIDATES = [_config(64, 1), _config(128, 2), _config(256, 4)]


@pytest.fixture
def events(monkeypatch, tmp_path):
    """("compile", warps, thread name) and ("time", warps) in the order they happen."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    record = []
    real_compile = triton.compiler.compile

    def compile_recorded(src, target=None, options=None, **kwargs):
        record.append(("compile", options["num_warps"], threading.current_thread().name))
        return real_compile(src, target=target, options=options, **kwargs)

    monkeypatch.setattr(triton.compiler, "compile", compile_recorded)
    return record


def _tuning(events, configs=CANDIDATES, **options):
    """A fresh kernel (its own kernel cache) autotuned through a CompileAhead whose timer records
    and times each candidate by its warps."""
    tuning = compile_ahead.autotune(triton.jit(_scaled), configs=configs, key=["n"], **options)

    def timer(kernel_call, quantiles):
        kernel_call()
        warps = DRIVER["now"].launches[-1][2]
        events.append(("time", warps))
        return [TIMES[warps]] * len(quantiles)

    tuning.timer = timer
    return tuning


DRIVER = {"now": None}


def _launch(tuning, n=1000):
    x, out = torch.zeros(n), torch.zeros(n)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK"]),)  # noqa: E731
    with compile_only() as driver:
        DRIVER["now"] = driver
        tuning.launch(grid, (x, out, n), {})
    return driver.launches


def test_the_first_timing_waits_for_every_candidate_compiled_in_parallel(events, monkeypatch):
    monkeypatch.setitem(compile_ahead._THREADS, "n", 3)
    tuning = _tuning(events)
    launches = _launch(tuning)
    compiles = [event for event in events if event[0] == "compile"]
    assert sorted(warps for _, warps, _ in compiles) == [1, 2, 4]
    assert all(thread.startswith("compile-ahead") for _, _, thread in compiles)
    assert events[:3] == compiles  # all before the first timing, none during the timings
    assert [event[1] for event in events[3:]] == [1, 2, 4]
    assert tuning.compiled == 3 and tuning.pending is None
    # The fastest candidate is chosen and launched, as without compiling ahead.
    assert tuning.autotuner.best_config is CANDIDATES[1]
    assert launches[-1][1:] == ((8, 1, 1), 2)


def test_a_tuned_key_neither_compiles_nor_times_again(events, monkeypatch):
    monkeypatch.setitem(compile_ahead._THREADS, "n", 3)
    tuning = _tuning(events)
    _launch(tuning)
    events.clear()
    launches = _launch(tuning)
    assert events == [] and tuning.compiled == 3
    assert launches == [("_scaled", (8, 1, 1), 2)]


def test_one_compile_thread_compiles_as_the_timings_come(events, monkeypatch):
    monkeypatch.setitem(compile_ahead._THREADS, "n", 1)
    tuning = _tuning(events)
    _launch(tuning)
    assert tuning.compiled == 0
    main = threading.current_thread().name
    assert events == [("compile", 1, main), ("time", 1), ("compile", 2, main), ("time", 2),
                      ("compile", 4, main), ("time", 4)]


def test_only_the_candidates_pruning_keeps_compile(events, monkeypatch):
    monkeypatch.setitem(compile_ahead._THREADS, "n", 4)
    keep_two = {"early_config_prune": lambda configs, named, **kwargs: configs[1:]}
    tuning = _tuning(events, prune_configs_by=keep_two)
    _launch(tuning)
    assert sorted(e[1] for e in events if e[0] == "compile") == [2, 4]
    assert tuning.compiled == 2


def test_a_candidate_that_cannot_compile_is_timed_out_as_before(events, monkeypatch):
    # Its compile fails ahead (left out of the cache) and again at its timing, which the autotuner
    # turns into an infinite time; the others are chosen from as usual.
    monkeypatch.setitem(compile_ahead._THREADS, "n", 4)
    configs = [*CANDIDATES, _config(512, 8)]
    tuning = _tuning(events, configs=configs)
    launches = _launch(tuning)
    assert tuning.autotuner.best_config is configs[1]
    assert [e[1] for e in events if e[0] == "compile"].count(8) == 2
    assert ("time", 8) not in events
    assert launches[-1][2] == 2


def test_a_failure_ahead_warns_and_the_timings_compile(events, monkeypatch):
    monkeypatch.setitem(compile_ahead._THREADS, "n", 3)

    def broken(*args, **kwargs):
        raise RuntimeError("no executor today")

    monkeypatch.setattr(triton, "AsyncCompileMode", broken)
    tuning = _tuning(events)
    with pytest.warns(RuntimeWarning, match="3 autotune candidates of _scaled ahead failed"):
        _launch(tuning)
    assert tuning.compiled == 0 and tuning.autotuner.best_config is CANDIDATES[1]
    assert [e[0] for e in events] == ["compile", "time"] * 3


def test_an_interrupt_ahead_leaves_no_compile_mode_behind(events, monkeypatch):
    from triton.runtime import _async_compile

    # Ctrl-C reaches the main thread, which is waiting for the compiles.
    monkeypatch.setitem(compile_ahead._THREADS, "n", 3)

    def interrupted(futures):
        raise KeyboardInterrupt

    monkeypatch.setattr(_async_compile, "as_completed", interrupted)
    tuning = _tuning(events)
    with pytest.raises(KeyboardInterrupt):
        _launch(tuning)
    assert _async_compile.active_mode.get() is None
    monkeypatch.undo()
    monkeypatch.setitem(compile_ahead._THREADS, "n", 1)
    _launch(tuning)  # compiles in this thread, as if nothing had happened
    assert tuning.autotuner.best_config is CANDIDATES[1]


def test_compile_threads_are_checked_and_default_to_the_usable_cpus(monkeypatch):
    with pytest.raises(ValueError, match="n >= 1, got 0"):
        compile_ahead.set_compile_threads(0)
    monkeypatch.setitem(compile_ahead._THREADS, "n", None)
    assert compile_ahead.compile_threads() == len(os.sched_getaffinity(0))
    compile_ahead.set_compile_threads(5)
    assert compile_ahead.compile_threads() == 5
