"""The engine's CPU kernels: flat C11 functions over float32 buffers, built on first use and loaded
with ctypes. Kernel layer; never imports engine. ABI: nd_kernels.h.
"""

import importlib

# Resolved lazily so that `python -m kernels_c.build` does not import its own module twice.
_EXPORTS = {
    "KernelBuildError": "build", "build": "build", "cache_dir": "build",
    "KernelError": "loader", "SIGNATURES": "loader", "load": "loader", "status_error": "loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kernels_c' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
