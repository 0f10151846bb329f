"""Operand layouts of the Triton matmul (kernel layer, host side): which layouts tensor descriptors
(TMA) can load, which of those get a warp-specialized K loop, and how a TF32 product is oriented so
that an operand that is not K-major reaches the tensor cores through registers; each has a switch.
Also the scratch memory descriptors built on the device take.
"""

import os

import triton

from .common import parse_on_off

# Operand layouts tensor descriptors can load, named by the unit-stride dimension of A, then of B
# (see `tma_layout`).
TMA_LAYOUTS = ("kk", "kn", "mk", "mn")
TMA_SWITCH = "ENGINE_MATMUL_TMA"


def parse_tma_switch(value):
    """The layouts ENGINE_MATMUL_TMA lets TMA load: "on" (all; also when set empty), "off" (none)
    or a comma list of layouts. An escape hatch for a GPU, driver or Triton whose descriptors
    misbehave; bench/gpu_tma_canary.py finds the layouts that work on the machine it runs on."""
    setting = value.strip().lower()
    if setting in ("", "on", "off"):
        return frozenset(TMA_LAYOUTS if setting != "off" else ())
    layouts = [name.strip() for name in setting.split(",")]
    unknown = [name for name in layouts if name not in TMA_LAYOUTS]
    if unknown:
        raise ValueError(f"{TMA_SWITCH}={value!r}: unknown layout(s) {unknown}; give 'on', 'off' "
                         f"or a comma list of {TMA_LAYOUTS}")
    return frozenset(layouts)


# Escape hatches like ENGINE_MATMUL_TMA, each set by bench/gpu_tma_canary.py when its path comes out
# wrong on the machine. Register path off: a TF32 operand that is not K-major is gathered into
# shared memory 4 bytes at a time and truncated like the other (or staged, and rounded by the
# copy). Warp specialization off: its configurations are no autotune candidates (a launch forced
# with one runs a plain software-pipelined loop).
REGISTER_SWITCH = "ENGINE_MATMUL_REGISTER_A"
WARP_SPECIALIZE_SWITCH = "ENGINE_MATMUL_WARP_SPECIALIZE"


# Defaults: what the canary found right on an H100 with Triton 3.6
# (bench/results/gpu_check_h100.txt). TMA loads of an M-major A ("mk") into 256x128 tiles came out
# wrong (relative error 0.12 to 0.18) where the same loads were right in 128x256 tiles and in the
# persistent kernel, and every warp-specialized case gave NaN. Setting a switch to "on" opts in,
# for a GPU or Triton where the canary passes them.
REGISTER_A_DEFAULT = "on"
WARP_SPECIALIZE_DEFAULT = "off"


def tma_default(register_a_allowed):
    """ENGINE_MATMUL_TMA's default: "kk,mn", where "mn" ran through the register path on the
    H100; without that path an M-major A would be loaded in a way no canary case ran ("kk")."""
    return "kk,mn" if register_a_allowed else "kk"


# Read once, like TRITON_INTERPRET: the autotuner's cached choices depend on them.
REGISTER_A_ALLOWED = parse_on_off(REGISTER_SWITCH,
                                  os.environ.get(REGISTER_SWITCH, REGISTER_A_DEFAULT))
TMA_ALLOWED = parse_tma_switch(os.environ.get(TMA_SWITCH, tma_default(REGISTER_A_ALLOWED)))
WARP_SPECIALIZE_ALLOWED = parse_on_off(WARP_SPECIALIZE_SWITCH,
                                       os.environ.get(WARP_SPECIALIZE_SWITCH,
                                                      WARP_SPECIALIZE_DEFAULT))


def _unit_dim(rows, cols, row_stride, col_stride):
    """Which dimension of a (rows, cols) view a descriptor can run along: "cols" or "rows" when
    that one has unit stride and the other a 16-byte multiple that keeps lines from overlapping
    (the copy engine's rules), else None."""
    if col_stride == 1 and row_stride >= cols and row_stride % 4 == 0:
        return "cols"
    if row_stride == 1 and col_stride >= rows and col_stride % 4 == 0:
        return "rows"
    return None


def warp_specialized(meta, layout):
    """Whether a configuration (its meta-parameters `meta`: WARP_SPECIALIZE asked for, PERSISTENT,
    SPLIT_EPILOGUE) gets warp specialization on operands loaded as `layout` ("" for pointer
    loads), unless ENGINE_MATMUL_WARP_SPECIALIZE is off. Triton (3.6 to
    3.9) compiles a warp-specialized K loop for an H100 (4 warps issue the TMA loads, 8 run
    wgmma) only on TMA loads of a K-major B with an A K-major ("kk") or through registers ("mk",
    where a TF32 A is unless ENGINE_MATMUL_REGISTER_A is off): not for pointer loads, a B tile
    turned round in shared memory, a split epilogue or the persistent loop
    (bench/gpu_compile_check.py compiles every variant the launcher can produce, with the
    register path on and off)."""
    loads_fit = layout == "kk" or (layout == "mk" and REGISTER_A_ALLOWED)
    return (WARP_SPECIALIZE_ALLOWED and bool(meta["WARP_SPECIALIZE"]) and loads_fit
            and not meta["PERSISTENT"] and not meta["SPLIT_EPILOGUE"])


def register_a(precision, stride_ak):
    """Whether a product's A tiles reach the tensor cores through registers (see _matmul_tile):
    for TF32, when A is not K-major and ENGINE_MATMUL_REGISTER_A allows."""
    return REGISTER_A_ALLOWED and precision == "tf32" and stride_ak != 1


def oriented(precision, a, b, m, n, a_offset, a_strides, b_offset, b_strides):
    """The product as the kernel computes it: (a, b, m, n, a_offset, a_strides, b_offset,
    b_strides, transposed), strides (batch, row, col). For TF32 with A K-major and B not, the
    operands trade places for out^T = B^T A^T (`transposed`; out is written transposed back):
    B^T, first, can come from registers (`register_a`) and A^T is K-major as the tensor cores
    want. Otherwise (or with ENGINE_MATMUL_REGISTER_A=off) unchanged."""
    if not register_a(precision, b_strides[1]) or a_strides[2] != 1:
        return a, b, m, n, a_offset, a_strides, b_offset, b_strides, False
    return (b, a, n, m, b_offset, (b_strides[0], b_strides[2], b_strides[1]), a_offset,
            (a_strides[0], a_strides[2], a_strides[1]), True)


def descriptor_layout(a, b, m, k, n, a_offset, a_strides, b_offset, b_strides):
    """How tensor descriptors (TMA) can address both operands: "kk", "kn", "mk" or "mn" names the
    unit-stride dimension of A, then of B; "" when either breaks the copy engine's rules (base
    addresses, batch and line strides must be multiples of 16 bytes)."""
    a_unit = _unit_dim(m, k, a_strides[1], a_strides[2])
    b_unit = _unit_dim(k, n, b_strides[1], b_strides[2])
    aligned = (a_offset % 4 == 0 and b_offset % 4 == 0 and a_strides[0] % 4 == 0
               and b_strides[0] % 4 == 0 and a.data_ptr() % 16 == 0 and b.data_ptr() % 16 == 0)
    if a_unit is None or b_unit is None or not aligned:
        return ""
    return ("k" if a_unit == "cols" else "m") + ("n" if b_unit == "cols" else "k")


def tma_layout(a, b, m, k, n, a_offset, a_strides, b_offset, b_strides):
    """The operands' `descriptor_layout` where ENGINE_MATMUL_TMA lets TMA load it, else ""."""
    layout = descriptor_layout(a, b, m, k, n, a_offset, a_strides, b_offset, b_strides)
    return layout if layout in TMA_ALLOWED else ""


def use_descriptor_scratch(like):
    """Kernels that build tensor descriptors on the device write them to a global scratch buffer
    that Triton asks an allocator for at launch; ours comes from torch, like all device memory.
    Triton keeps the allocator in a context variable, so it is set in the launching thread."""
    import torch

    device = like.device

    # torch's caching allocator hands out blocks aligned to 512 bytes, more than any `alignment`
    # Triton asks for (128 for a descriptor).
    def scratch(size, alignment, stream):
        return torch.empty(size, dtype=torch.int8, device=device)

    triton.set_allocator(scratch)
