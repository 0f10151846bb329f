"""Load the compiled C kernels with ctypes, with every function's argtypes/restype set once.
Kernel layer (kernels_c); never imports engine. Pointers are passed as plain integers (addresses),
which is the cheapest thing ctypes converts.
"""

import ctypes
import threading

from .build import build

P = ctypes.c_void_p
I64 = ctypes.c_int64
F32 = ctypes.c_float
F64 = ctypes.c_double
INT = ctypes.c_int

STATUS_MESSAGES = {
    1: "rank outside 0..8",
    2: "negative or inconsistent sizes",
    3: "a strided access falls outside its buffer",
    4: "a NULL buffer",
    5: "out of memory for packing buffers",
    6: "invalid argument",
}

_STRIDED = [P, P, I64, I64, I64, P, P, I64]
_MATMUL = [P, P, P, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64]
_SGEMM = [P, P, P, I64, I64, I64, I64, I64, I64, I64, I64, INT, INT]
_CONV = [P, P, P] + [I64] * 16
BINARY_OPS = ("add", "mul", "div", "maximum", "eq", "ge", "gt")
SCALAR_OPS = BINARY_OPS + ("power", "rdiv")
UNARY_OPS = ("neg", "log", "exp", "tanh", "relu", "sigmoid", "sqrt")
CONV_OPS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")

SIGNATURES = {
    "nd_set_num_threads": [INT],
    "nd_get_num_threads": [],
    "nd_fill_f32": [P, F32, I64],
    "nd_compact_f32": _STRIDED,
    "nd_ewise_setitem_f32": _STRIDED,
    "nd_scalar_setitem_f32": [F32, P, I64, I64, I64, P, P, I64],
    "nd_reduce_sum_f32": [P, P, I64, I64],
    "nd_reduce_max_f32": [P, P, I64, I64],
    "nd_reduce_logsumexp_f32": [P, P, I64, I64],
    "nd_softmax_xent_f32": [P, P, P, I64, I64],
    "nd_softmax_xent_grad_f32": [P, P, P, P, I64, I64],
    "nd_norm_forward_f32": [P, P, P, I64, I64, I64, I64, F64],
    "nd_norm_backward_f32": [P, P, P, P, I64, I64, I64, I64, F64],
    "nd_norm_affine_forward_f32": [P, P, P, P, P, I64, I64, I64, I64, F64, INT, P, F32, F32,
                                   INT],
    "nd_norm_affine_backward_f32": [P, P, P, P, P, P, P, I64, I64, I64, I64, F64, INT],
    "nd_sgemm_f32": _SGEMM,
    "nd_sgemm_naive_f32": _SGEMM,
    "nd_matmul_f32": _MATMUL,
    "nd_matmul_sizes_f32": [P, P, P, P, P, F32, P],
    "nd_matmul_naive_f32": _MATMUL,
    **{f"nd_ewise_{op}_f32": [P, P, P, I64] for op in BINARY_OPS},
    **{f"nd_scalar_{op}_f32": [P, F32, P, I64] for op in SCALAR_OPS},
    **{f"nd_ewise_{op}_f32": [P, P, I64] for op in UNARY_OPS},
    "nd_ewise_relu_grad_f32": [P, P, P, I64],
    "nd_ewise_add_scaled_f32": [P, P, F32, P, I64],
    "nd_ewise_axpby_f32": [P, P, F32, F32, P, I64],
    "nd_ewise_add_row_f32": [P, P, P, I64, I64],
    "nd_ewise_mul_row_f32": [P, P, P, I64, I64],
    "nd_ewise_dropout_f32": [P, P, I64, I64, F32, I64],
    "nd_sgd_update_f32": [P, P, P, P, I64] + [F32] * 5,
    "nd_adam_update_f32": [P, P, P, P, P, I64] + [F32] * 7,
    **{f"nd_{op}_f32": _CONV for op in CONV_OPS},
    **{f"nd_{op}_naive_f32": _CONV for op in CONV_OPS},
    "nd_max_pool2d_forward_f32": [P, P] + [I64] * 12,
    "nd_max_pool2d_backward_f32": [P, P, P, P] + [I64] * 12,
    "nd_avg_pool2d_forward_f32": [P, P] + [I64] * 12,
    "nd_avg_pool2d_backward_f32": [P, P] + [I64] * 12,
}

_lock = threading.Lock()
_library = None


class KernelError(ValueError):
    """A C kernel rejected its arguments (nonzero status); the message names the sizes."""


def status_error(name, status, detail=""):
    """The exception for a kernel's nonzero status (the caller raises it)."""
    message = STATUS_MESSAGES.get(status, f"unknown status {status}")
    return KernelError(f"{name}: {message}" + (f" ({detail})" if detail else ""))


def load(path=None):
    """The kernels as a ctypes.CDLL (built on first use, loaded once per process)."""
    global _library
    if _library is None or path is not None:
        with _lock:
            if _library is None or path is not None:
                library = ctypes.CDLL(str(path or build()))
                for name, argtypes in SIGNATURES.items():
                    function = getattr(library, name)
                    function.argtypes = argtypes
                    function.restype = INT
                if path is not None:
                    return library
                _library = library
    return _library
