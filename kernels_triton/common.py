"""Checks and helpers shared by the Triton launchers (kernel layer): interpreter detection, on/off
switches (the autotune cache's), argument checks that turn bad sizes into Python exceptions instead
of out-of-bounds accesses, the GEMM kernels' grouped tile ordering, and rounding to TF32.
"""

import os

import triton
import triton.language as tl

# Triton reads the switch when a kernel is decorated, so reading it once at import agrees with
# how our kernels were built (and keeps an environment lookup off every launch).
_INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


MAX_GRID_BATCH = 65535  # CUDA's limit on grid axis 1, where batched launchers put the batch


def parse_on_off(switch, value):
    """Whether `switch` (set to `value`) is on: "on" (also when set empty) or "off"."""
    setting = value.strip().lower()
    if setting not in ("", "on", "off"):
        raise ValueError(f"{switch}={value!r}: give 'on' or 'off'")
    return setting != "off"


# Whether autotune choices persist on disk. They go to Triton's cache directory beside the compiled
# kernels, keyed by Triton's version, the GPU architecture (not the model: an H100 PCIe and SXM
# share them), the kernel's source, the tuning key and the candidates. A new process (a Ray task,
# the next run of a sweep) then reuses them instead of timing every candidate of every shape again:
# a ConvNet's first process on an H100 spent 29 s on six kernels, compiling included. The cuda
# device keeps its timed decisions there too (engine/backend/cuda_timed_store.py). "off" times
# afresh in each process (unless Triton's own TRITON_CACHE_AUTOTUNING=1 turns the autotune cache
# on); emptying Triton's cache directory re-tunes once.
AUTOTUNE_CACHE_SWITCH = "ENGINE_AUTOTUNE_CACHE"
AUTOTUNE_CACHE = parse_on_off(AUTOTUNE_CACHE_SWITCH, os.environ.get(AUTOTUNE_CACHE_SWITCH, "on"))


def interpreting():
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 at import)."""
    return _INTERPRETING


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


def check_buffers(name, handles, sizes):
    """check_buffer for each of `handles` against its size, as `name[index]`: one loop, since an
    optimizer's launch checks every buffer of every parameter (120 for a 20-layer MLP's momentum
    SGD), and a call each costs the step as much as a launch."""
    import torch

    float32, tensor = torch.float32, torch.Tensor
    for handle, size in zip(handles, sizes):
        if not (type(handle) is tensor and handle.dtype is float32 and handle.dim() == 1
                and 0 <= size <= handle.numel() and handle.is_contiguous()):
            break
    else:
        return
    for index, (handle, size) in enumerate(zip(handles, sizes)):
        check_buffer(f"{name}[{index}]", handle, size)


def check_strided(name, handle, shape, strides, offset):
    """Every element of the strided view (shape, strides, offset) must lie inside `handle`.
    Returns how many elements a buffer must hold for the view (0 for an empty one)."""
    check_buffer(name, handle, 0)
    if len(shape) != len(strides):
        raise ValueError(f"{name}: shape {tuple(shape)} and strides {tuple(strides)} "
                         "differ in rank")
    low = high = offset
    empty = False
    for n, s in zip(shape, strides):  # one plain loop: this runs on every launch
        if n < 0:
            raise ValueError(f"{name}: negative extent in shape {tuple(shape)}")
        if n == 0:
            empty = True
        elif s > 0:
            high += (n - 1) * s
        else:
            low += (n - 1) * s
    if empty:
        return 0
    if low < 0 or high >= handle.numel():
        raise ValueError(f"{name}: view shape {tuple(shape)} strides {tuple(strides)} offset "
                         f"{offset} reaches elements [{low}, {high}] outside a buffer of "
                         f"{handle.numel()}")
    return high + 1


# Indices stay int32 while the largest index plus a block fits: an int32 division per element is
# a few instructions, an int64 one a call of about 90 on sm_90 (nvdisasm): 17 of them in each step
# of the conv weight gradient's loop once cost three quarters as many instructions as its 2048
# multiply-adds. Past the limit (over 8 GiB of data) a kernel takes an int64 path or its launcher
# refuses. Offsets into memory stay int64.
INT32_LIMIT = 2**31 - 1
# Pixel counts and padded extents the conv and pool kernels index in int32, with room for a tile
# past the end.
PIXEL_LIMIT = 2**31 - 2**16


def check_pixels(name, n, h, w, oh, ow, pad_h, pad_w):
    """Raise ValueError naming the value unless the pixel counts n*h*w and n*oh*ow and the padded
    extents h + 2*pad_h and w + 2*pad_w (the input gradients' row arithmetic spans them) are within
    PIXEL_LIMIT."""
    values = (("n*h*w", n * h * w), ("n*oh*ow", n * oh * ow), ("h + 2*pad_h", h + 2 * pad_h),
              ("w + 2*pad_w", w + 2 * pad_w))
    for label, value in values:
        if value > PIXEL_LIMIT:
            raise ValueError(f"{name}: {label} = {value} is more than the {PIXEL_LIMIT} pixels the "
                             "kernels index in int32; split the work")


def cdiv(a, b):
    return -(-a // b)


def next_power_of_2(n):
    """The smallest power of two >= n (1 for n <= 1): triton.next_power_of_2 on the host, where
    Triton's (a constexpr function since 3.6) costs microseconds a call in block choices made on
    every launch."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


@triton.jit
def pixel_coordinates(p, height, width):
    """(image, y, x) of flat pixel indices p over images of height x width pixels (int32, see
    PIXEL_LIMIT): two divisions, the remainders by multiply-subtract."""
    row = p // width
    image = row // height
    return image, row - image * height, p - row * width


@triton.jit
def grouped_tile(pid, rows, cols, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 GROUP_M: tl.constexpr):
    """(row tile, column tile) of program `pid` over a rows x cols output: GROUP_M row tiles
    advance together, so the column operand's tiles they share stay in L2."""
    num_pid_m = tl.cdiv(rows, BLOCK_M)
    num_pid_n = tl.cdiv(cols, BLOCK_N)
    pids_in_group = GROUP_M * num_pid_n
    first_pid_m = (pid // pids_in_group) * GROUP_M
    group_rows = min(num_pid_m - first_pid_m, GROUP_M)
    return (first_pid_m + (pid % pids_in_group) % group_rows,
            (pid % pids_in_group) // group_rows)


@triton.jit
def round_to_tf32(x):
    # Round to nearest (ties away from zero) at TF32's 10 mantissa bits, like PTX's
    # cvt.rna.tf32.f32; the tensor cores then drop only zeros. A NaN becomes one with every
    # mantissa bit set: the tensor cores ignore the 13 low bits, where a payload alone would read
    # as infinity, and the half-ulp carry out of an all-ones mantissa (the GPU's own NaN) would
    # wrap to -0.0.
    bits = x.to(tl.uint32, bitcast=True)
    rounded = ((bits + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)
    return tl.where(x == x, rounded, (bits | 0x7FFFFFFF).to(tl.float32, bitcast=True))
