"""Checks and helpers shared by the Triton launchers (kernel layer): interpreter detection and the
argument checks that turn bad sizes into Python exceptions instead of out-of-bounds accesses.
"""

import os


def interpreting():
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def check_buffer(name, handle, size):
    """`handle` must be a 1-D float32 torch tensor holding at least `size` elements."""
    import torch

    if not isinstance(handle, torch.Tensor):
        raise TypeError(f"{name}: expected a torch tensor handle, got {type(handle).__name__}")
    if handle.dtype != torch.float32 or handle.dim() != 1 or not handle.is_contiguous():
        raise TypeError(f"{name}: expected a contiguous 1-D float32 buffer, got dtype "
                        f"{handle.dtype}, shape {tuple(handle.shape)}")
    if size < 0:
        raise ValueError(f"{name}: negative size {size}")
    if handle.numel() < size:
        raise ValueError(f"{name}: buffer holds {handle.numel()} elements, {size} needed")


def check_strided(name, handle, shape, strides, offset):
    """Every element of the strided view (shape, strides, offset) must lie inside `handle`."""
    check_buffer(name, handle, 0)
    if len(shape) != len(strides):
        raise ValueError(f"{name}: shape {tuple(shape)} and strides {tuple(strides)} "
                         "differ in rank")
    if any(n < 0 for n in shape):
        raise ValueError(f"{name}: negative extent in shape {tuple(shape)}")
    if any(n == 0 for n in shape):
        return
    low = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s < 0)
    high = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s > 0)
    if low < 0 or high >= handle.numel():
        raise ValueError(f"{name}: view shape {tuple(shape)} strides {tuple(strides)} offset "
                         f"{offset} reaches elements [{low}, {high}] outside a buffer of "
                         f"{handle.numel()}")


def cdiv(a, b):
    return -(-a // b)
