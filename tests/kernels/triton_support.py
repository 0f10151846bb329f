"""Test support for tests/kernels: the marks every Triton kernel test module carries (run under
the interpreter, TRITON_INTERPRET=1, or on a CUDA GPU, skipped otherwise) and TF32 operand rounding
as the kernels and tensor cores apply it, for exact references.
"""

import os

import numpy as np
import pytest


def triton_available():
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def gpu_available():
    """A CUDA GPU that runs compiled kernels (not the interpreter)."""
    return os.environ.get("TRITON_INTERPRET") != "1" and triton_available()


def triton_marks(*extra):
    """pytestmark for a Triton test module, plus `extra` marks of its own."""
    return [pytest.mark.triton_interpret,
            pytest.mark.skipif(not triton_available(),
                               reason="needs TRITON_INTERPRET=1 or a CUDA GPU"),
            # Triton's interpreter turns 1-element loop bounds into ints the deprecated way.
            pytest.mark.filterwarnings("ignore:Conversion of an array:DeprecationWarning"),
            *extra]


def round_to_tf32(x):
    """float32 -> nearest TF32 (10 mantissa bits, ties away from zero), NaNs unchanged."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return np.where(np.isnan(x), x, rounded)


def as_read_by_tensor_cores(x, rounded):
    """An operand as the tensor cores read it: rounded to nearest TF32 where a kernel or a staging
    copy rounds it, else cut to TF32's 10 mantissa bits on a GPU (the tensor cores ignore the 13
    low bits) and left whole under the interpreter (whose dots run in fp32)."""
    if rounded:
        return round_to_tf32(x)
    if os.environ.get("TRITON_INTERPRET") == "1":
        return x
    return (np.asarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(
        np.float32)
