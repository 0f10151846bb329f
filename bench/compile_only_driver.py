"""A stand-in for Triton's CUDA driver on a machine without a GPU (bench layer): Triton's own launch
path runs (argument specialization, its kernel cache, autotuning, AsyncCompileMode) and compiles
for an H100 (sm_90), and each launch is recorded instead of run. Used by bench/compile_ahead.py
and the compile-ahead tests.
"""

import contextlib
import sys
from types import SimpleNamespace

from triton.backends.compiler import GPUTarget
from triton.runtime import driver

TARGET = GPUTarget("cuda", 90, 32)
# Kernel caches are per device: one no real device has keeps these compiles apart.
DEVICE = "compile-only-sm90"
# An H100's limits, which a kernel is checked against when it is first launched.
H100_PROPERTIES = {"max_shared_mem": 232448, "multiprocessor_count": 132,
                   "max_num_regs": 65536, "warpSize": 32}
H100_MAX_THREADS = 1024


class CompileOnlyDriver:
    """Triton's active driver while `compile_only` holds: `launches` gets (kernel name, grid,
    num_warps) per launch and `arguments` the kernel arguments its launcher was given; nothing
    runs, and timings are refused."""

    def __init__(self):
        self.launches = []
        self.arguments = []
        self.loaded = []
        self.utils = SimpleNamespace(get_device_properties=lambda device: dict(H100_PROPERTIES),
                                     load_binary=self._load_binary,
                                     unload_module=lambda module: None)

    def get_current_target(self):
        return TARGET

    def get_current_device(self):
        return DEVICE

    def get_current_stream(self, device=None):
        return 0

    def get_benchmarker(self):
        raise RuntimeError("the compile-only driver runs no kernel, so it cannot time one")

    def launcher_cls(self, src, metadata):
        name, num_warps = getattr(src, "name", str(src)), metadata.num_warps

        # After the grid: stream, function, packed metadata, launch metadata, the enter and exit
        # hooks, then the kernel's arguments.
        # Into the driver active at the launch: a kernel keeps its launcher for its life, and
        # Triton's kernel caches outlive one `compile_only` block.
        def launch(grid_0, grid_1, grid_2, stream, function, packed, metadata, enter, leave,
                   *arguments):
            recorder = driver.active
            recorder.launches.append((name, (grid_0, grid_1, grid_2), num_warps))
            recorder.arguments.append(arguments)

        return launch

    def _load_binary(self, name, kernel, shared, device):
        # (module, function, registers, spills, the most threads a block may have). A module that
        # is not None marks the kernel loaded, so later launches skip loading, as on a GPU. The
        # caller is the CompiledKernel's _init_handles: it is kept, to be marked unloaded again
        # when the block ends (Triton 3.9 unloads a kernel's module when it is collected, through
        # whatever driver is active then).
        self.loaded.append(sys._getframe(1).f_locals.get("self"))
        return DEVICE, name, 0, 0, H100_MAX_THREADS

    def unload_all(self):
        for kernel in self.loaded:
            if kernel is not None and getattr(kernel, "module", None) == DEVICE:
                kernel.module = None
        self.loaded.clear()


@contextlib.contextmanager
def compile_only():
    """Within the block, Triton's launches compile for sm_90 and are recorded, not run; the
    driver that was active before comes back after."""
    saved = driver._active
    stand_in = CompileOnlyDriver()
    driver.set_active(stand_in)
    try:
        yield stand_in
    finally:
        stand_in.unload_all()
        driver._active = saved
