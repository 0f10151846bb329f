"""Normalization over one axis of float32 data (kernel layer): norm_forward and norm_backward of the
device protocol, for batch and layer norm. Each program owns BLOCK_GROUPS groups and walks their
members in BLOCK_MEMBERS chunks, several passes per launch (sums, squared deviations, writes).
"""

import triton
import triton.language as tl

from .common import cdiv, check_buffer, check_strided, interpreting
from .reduce import block_config as reduce_block_config

# Column layouts get narrow group tiles so that a few groups (BatchNorm2d's 16-64 channels) still
# spread over several programs; wider ones once the groups alone fill the GPU.
_NARROW_GROUPS, _WIDE_GROUPS, _WIDE_FROM = 8, 32, 4096


def block_config(groups, members, group_stride, member_stride):
    """(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS, num_warps), about 4096 elements a tile. The
    tile is [groups, members] (MEMBER_AXIS 1) unless the groups are the contiguous axis: then it
    is [members, groups], so that a warp's neighbouring threads read neighbouring addresses."""
    warps = 1 if interpreting() else 4
    if group_stride == 1 and member_stride != 1:
        wide = _WIDE_GROUPS if groups >= _WIDE_FROM else _NARROW_GROUPS
        block_groups = min(triton.next_power_of_2(max(groups, 1)), wide)
        block_members = min(triton.next_power_of_2(max(members, 1)), 4096 // block_groups)
        return block_groups, block_members, 0, warps
    block_groups, block_members, _ = reduce_block_config(members, groups)  # rows, as reduce.py
    return block_groups, block_members, 1, warps


@triton.jit
def _group_ids(groups, BLOCK_GROUPS: tl.constexpr):
    """(ids [BLOCK_GROUPS] int64, mask) of this program's groups."""
    ids = tl.program_id(0).to(tl.int64) * BLOCK_GROUPS + tl.arange(0, BLOCK_GROUPS)
    return ids, ids < groups


@triton.jit
def _group_base(group_ids, group_stride, MEMBER_AXIS: tl.constexpr):
    """Each group's first element. block_config picks the [members, groups] tile only for unit
    group strides: saying so here keeps the compiler from needing the launch's specialization
    to see the contiguous axis (Triton 3.9's LLVM crashed on the unspecialized backward)."""
    if MEMBER_AXIS == 0:
        base = group_ids
    else:
        base = group_ids * group_stride
    return base


@triton.jit
def _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS: tl.constexpr,
          BLOCK_MEMBERS: tl.constexpr):
    """(offsets, mask) of the chunk of members from `start` of each group, members along
    MEMBER_AXIS; group_base is each group's first element (int64)."""
    ids = start + tl.arange(0, BLOCK_MEMBERS).to(tl.int64)
    offsets = (tl.expand_dims(group_base, MEMBER_AXIS)
               + tl.expand_dims(ids * member_stride, 1 - MEMBER_AXIS))
    mask = tl.expand_dims(group_mask, MEMBER_AXIS) & tl.expand_dims(ids < members, 1 - MEMBER_AXIS)
    return offsets, mask


@triton.jit
def _zero_tile(BLOCK_GROUPS: tl.constexpr, BLOCK_MEMBERS: tl.constexpr,
               MEMBER_AXIS: tl.constexpr):
    # Partial sums stay elementwise across chunks and are reduced once, as in reduce.py.
    if MEMBER_AXIS == 1:
        tile = tl.zeros([BLOCK_GROUPS, BLOCK_MEMBERS], tl.float32)
    else:
        tile = tl.zeros([BLOCK_MEMBERS, BLOCK_GROUPS], tl.float32)
    return tile


@triton.jit
def _group_mean(total, members):
    """total / members per group, NaN for no members (computed without a 0/0, which the
    interpreter's numpy would warn about)."""
    return tl.where(members > 0, total / tl.maximum(members, 1).to(tl.float32), float("nan"))


@triton.jit
def _norm_forward_kernel(x, out, stats, groups, members, group_stride, member_stride, eps,
                         BLOCK_GROUPS: tl.constexpr, BLOCK_MEMBERS: tl.constexpr,
                         MEMBER_AXIS: tl.constexpr):
    group_ids, group_mask = _group_ids(groups, BLOCK_GROUPS)
    group_base = _group_base(group_ids, group_stride, MEMBER_AXIS)
    total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        total += tl.load(x + offsets, mask=mask, other=0.0)
    mean = _group_mean(tl.sum(total, axis=MEMBER_AXIS), members)
    # Two passes: the mean squared deviation, which stays accurate where E[x^2] - mean^2 cancels.
    wide_mean = tl.expand_dims(mean, MEMBER_AXIS)
    squares = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        deviation = tl.where(mask, tl.load(x + offsets, mask=mask, other=0.0) - wide_mean, 0.0)
        squares += deviation * deviation
    var = _group_mean(tl.sum(squares, axis=MEMBER_AXIS), members)
    tl.store(stats + group_ids, mean, mask=group_mask)
    tl.store(stats + groups + group_ids, var, mask=group_mask)
    inverse_scale = tl.expand_dims(1.0 / tl.sqrt_rn(var + eps), MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        value = tl.load(x + offsets, mask=mask, other=0.0)
        tl.store(out + offsets, (value - wide_mean) * inverse_scale, mask=mask)


@triton.jit
def _norm_backward_kernel(g, xhat, stats, out, groups, members, group_stride, member_stride, eps,
                          BLOCK_GROUPS: tl.constexpr, BLOCK_MEMBERS: tl.constexpr,
                          MEMBER_AXIS: tl.constexpr):
    group_ids, group_mask = _group_ids(groups, BLOCK_GROUPS)
    group_base = _group_base(group_ids, group_stride, MEMBER_AXIS)
    grad_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    projection_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        grad = tl.load(g + offsets, mask=mask, other=0.0)
        grad_total += grad
        projection_total += grad * tl.load(xhat + offsets, mask=mask, other=0.0)
    grad_mean = tl.expand_dims(_group_mean(tl.sum(grad_total, axis=MEMBER_AXIS), members),
                               MEMBER_AXIS)
    projection = tl.expand_dims(_group_mean(tl.sum(projection_total, axis=MEMBER_AXIS), members),
                                MEMBER_AXIS)
    # Padding groups read a variance of 1: they store nothing, and 1/sqrt stays finite.
    var = tl.load(stats + groups + group_ids, mask=group_mask, other=1.0)
    inverse_scale = tl.expand_dims(1.0 / tl.sqrt_rn(var + eps), MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        grad = tl.load(g + offsets, mask=mask, other=0.0)
        normed = tl.load(xhat + offsets, mask=mask, other=0.0)
        tl.store(out + offsets, (grad - grad_mean - normed * projection) * inverse_scale,
                 mask=mask)


def _check_args(name, buffers, stats, groups, members, group_stride, member_stride):
    if groups < 0 or members < 0:
        raise ValueError(f"{name}: negative sizes groups={groups}, members={members}")
    for label, handle in buffers:
        check_strided(f"{name} {label}", handle, (groups, members),
                      (group_stride, member_stride), 0)
    check_buffer(f"{name} stats", stats, 2 * groups)


def _launch(kernel, args, groups, members, group_stride, member_stride, eps):
    block_groups, block_members, member_axis, warps = block_config(groups, members,
                                                                   group_stride, member_stride)
    kernel[(cdiv(groups, block_groups),)](
        *args, groups, members, group_stride, member_stride, float(eps),
        BLOCK_GROUPS=block_groups, BLOCK_MEMBERS=block_members, MEMBER_AXIS=member_axis,
        num_warps=warps)


def norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps):
    """Group i is x[i * group_stride + j * member_stride] for j < members: stats[i] = its mean,
    stats[groups + i] = its biased variance, out = (x - mean) / sqrt(var + eps) (out indexed
    like x). No members: NaN statistics and out untouched."""
    _check_args("norm_forward", (("x", x), ("out", out)), stats, groups, members, group_stride,
                member_stride)
    if groups == 0:
        return
    _launch(_norm_forward_kernel, (x, out, stats), groups, members, group_stride, member_stride,
            eps)


def norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps):
    """out = (g - mean_j(g) - xhat * mean_j(g * xhat)) / sqrt(var_i + eps), groups indexed as in
    norm_forward, whose out is xhat and whose stats these are. No members: nothing written."""
    _check_args("norm_backward", (("g", g), ("xhat", xhat), ("out", out)), stats, groups,
                members, group_stride, member_stride)
    if groups == 0 or members == 0:
        return
    _launch(_norm_backward_kernel, (g, xhat, stats, out), groups, members, group_stride,
            member_stride, eps)
