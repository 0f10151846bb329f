"""Compiling an autotuner's candidates in parallel threads before it times the first one, so that a
process's first launch of a shape waits for its slowest compile instead of the sum of them (an
H100's first ConvNet process spent 29 s in six autotunings, mostly compiling). Kernel layer.
"""

import concurrent.futures
import os
import threading
import warnings

import triton
from triton.runtime.jit import JITFunction

# None: as many as the CPUs this process may run on. The cuda device's set_num_threads sets it, so
# a harness run compiles on the CPUs it asked Ray for.
_THREADS = {"n": None}


def set_compile_threads(n):
    """Compile at most `n` candidates at once."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_compile_threads needs n >= 1, got {n}")
    _THREADS["n"] = n


def compile_threads():
    """How many candidates compile at once."""
    if _THREADS["n"] is not None:
        return _THREADS["n"]
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def autotune(fn, **options):
    """triton.autotune(**options)(fn), timing through a CompileAhead of its own, which is returned
    (the autotuner is its `autotuner`; launch through its `launch`)."""
    ahead = CompileAhead()
    ahead.attach(triton.autotune(do_bench=ahead, **options)(fn))
    return ahead


class CompileAhead:
    """The `do_bench` of one autotuner (pass it to triton.autotune, then `attach` the autotuner),
    which `launch` calls. While a launch runs, `pending` holds its (args, kwargs). The autotuner
    times candidates only for a key it has neither in memory nor on disk; the first timing then
    compiles every candidate it will time, in parallel threads, before timing anything. The
    compiles go through Triton's AsyncCompileMode into the kernel cache the timings read, under
    the keys the timings' own launches make."""

    def __init__(self, timer=None):
        self.autotuner = None
        self.pending = None
        # None: Triton's benchmarker (what the autotuner uses when given no do_bench).
        self.timer = timer
        self.compiled = 0  # candidates compiled ahead, all tunings together (for tests and tools)

    def attach(self, autotuner):
        self.autotuner = autotuner
        return autotuner

    def launch(self, grid, args, kwargs):
        self.pending = (args, kwargs)
        try:
            self.autotuner[grid](*args, **kwargs)
        finally:
            self.pending = None

    def __call__(self, kernel_call, quantiles):
        launch, self.pending = self.pending, None
        if launch is not None:
            self.compile_candidates(*launch)
        timer = self.timer or triton.runtime.driver.active.get_benchmarker()
        return timer(kernel_call, quantiles=quantiles)

    def compile_candidates(self, args, kwargs):
        """Compile what the running autotuner is about to time for a launch with `args` and
        `kwargs`: the candidates its pruning keeps (it holds the launch's named arguments)."""
        configs = self.autotuner.prune_configs(kwargs)
        workers = min(compile_threads(), len(configs))
        if workers < 2:
            return
        _parse_one_at_a_time()
        mode = None
        try:
            with concurrent.futures.ThreadPoolExecutor(workers, "compile-ahead") as pool:
                # ignore_errors: a candidate that fails to compile is left out of the cache, so its
                # timing compiles it again and the autotuner handles the error as it always does.
                mode = triton.AsyncCompileMode(pool, ignore_errors=True)
                with mode:
                    for config in configs:
                        self.autotuner.fn.warmup(*args, grid=(1,), **kwargs,
                                                 **config.all_kwargs())
        except Exception as error:  # the timings still compile one by one: only slower
            _switch_off(mode)
            warnings.warn(f"compiling {len(configs)} autotune candidates of "
                          f"{self.autotuner.base_fn.__name__} ahead failed ({error!r}); they "
                          "compile one by one", RuntimeWarning, stacklevel=2)
            return
        except BaseException:  # an interrupt: later compiles must not go to a stopped pool
            _switch_off(mode)
            raise
        self.compiled += len(configs)


def _switch_off(mode):
    """Make sure `mode` is no longer Triton's active AsyncCompileMode: Triton 3.6 leaves it active
    when waiting for its compiles is interrupted, and every later compile of the thread would then
    be handed to the stopped pool."""
    from triton.runtime import _async_compile

    if mode is not None and _async_compile.active_mode.get() is mode:
        _async_compile.active_mode.set(None)


_PARSE_LOCK = threading.Lock()


def _parse_one_at_a_time():
    """From the first parallel compile on, Triton parses one kernel's source at a time. CPython
    3.11 (and 3.12 before 3.12.4, the GPU machine's 3.12.3 among them) builds AST objects with one
    recursion counter per interpreter: two threads in ast.parse at once raise SystemError ("AST
    constructor recursion depth mismatch"), and every compile parses its kernel. The parse is a
    small part of a compile; the code generation and ptxas after it still run side by side.
    Installed once and kept (a lock taken by one thread at a time costs nothing)."""
    owner = next(cls for cls in JITFunction.__mro__ if "parse" in vars(cls))
    parse = owner.parse
    if getattr(parse, "one_at_a_time", False):
        return

    def locked(self):
        with _PARSE_LOCK:
            return parse(self)

    locked.one_at_a_time = True
    owner.parse = locked
