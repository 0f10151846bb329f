"""engine: a needle-compatible autodiff engine (`import engine as ndl`) over a strided NDArray
whose kernels are our own C (cpu) and Triton (cuda), with numpy as the reference device.
"""

import importlib

from . import backend, random
from .autograd import Op, Tensor, TensorOp, TensorTuple, TensorTupleOp, Value, enable_grad, no_grad
from .backend import NDArray, cpu, cpu_numpy, cuda, default_device
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .random import manual_seed

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("nn", "init", "optim", "data", "probes")


def set_num_threads(n):
    """Threads our kernels may use (every device); never more than asked."""
    backend.set_num_threads(n)


def release_freed_memory():
    """Hands memory the cpu device kept for reuse back to the OS (at the end of a run in a
    long-lived process); see engine/backend/cpu_memory.py."""
    from .backend.cpu_memory import release_freed_memory as release

    return release()


def get_num_threads():
    return cpu().get_num_threads() if cpu().enabled() else 1


def __getattr__(name):
    # nn/init/optim/data load on first use so `import engine` stays cheap for kernel-only users.
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = ["Op", "Tensor", "TensorOp", "TensorTuple", "TensorTupleOp", "Value", "NDArray",
           "backend", "cpu", "cpu_numpy", "cuda", "default_device", "enable_grad", "no_grad",
           "manual_seed", "random", "set_num_threads", "get_num_threads", "release_freed_memory",
           *_ops_all,
           *_LAZY_SUBMODULES]
