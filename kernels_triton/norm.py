"""Normalization over one axis of float32 data (kernel layer): norm_forward, norm_backward and the
learned scale-and-shift norm_affine_* of the device protocol, for batch and layer norm. A program
owns BLOCK_GROUPS groups and walks their members in BLOCK_MEMBERS chunks, several passes a launch.
"""

import triton
import triton.language as tl

from .common import cdiv, check_buffer, check_strided, interpreting, next_power_of_2
from .launch import launch
from .reduce import block_config as reduce_block_config

# Column layouts get narrow group tiles so that a few groups (BatchNorm2d's 16-64 channels) still
# spread over several programs; wider ones once the groups alone fill the GPU.
_NARROW_GROUPS, _WIDE_GROUPS, _WIDE_FROM = 8, 32, 4096
# Members a program of the per-member parameter gradients owns: a 128-byte line of each group
# where members are contiguous, and a program for every 32 members of a layer's width.
_PARAMETER_MEMBERS = 32


def block_config(groups, members, group_stride, member_stride):
    """(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS, num_warps), about 4096 elements a tile. The
    tile is [groups, members] (MEMBER_AXIS 1) unless the groups are the contiguous axis: then it
    is [members, groups], so that a warp's neighbouring threads read neighbouring addresses."""
    warps = 1 if interpreting() else 4
    if group_stride == 1 and member_stride != 1:
        wide = _WIDE_GROUPS if groups >= _WIDE_FROM else _NARROW_GROUPS
        block_groups = min(next_power_of_2(max(groups, 1)), wide)
        block_members = min(next_power_of_2(max(members, 1)), 4096 // block_groups)
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
def _inverse_scale(stats, groups, group_ids, group_mask, eps, MEMBER_AXIS: tl.constexpr):
    """1 / sqrt(var + eps) of each group from the stats, broadcast along its members. Padding
    groups read a variance of 1: they store nothing, and 1/sqrt stays finite."""
    var = tl.load(stats + groups + group_ids, mask=group_mask, other=1.0)
    return tl.expand_dims(1.0 / tl.sqrt_rn(var + eps), MEMBER_AXIS)


@triton.jit
def _group_parameter(param, group_ids, group_mask, MEMBER_AXIS: tl.constexpr):
    """A per-group scale or shift, broadcast along the members of the tile."""
    return tl.expand_dims(tl.load(param + group_ids, mask=group_mask, other=0.0), MEMBER_AXIS)


@triton.jit
def _member_parameter(param, start, members, MEMBER_AXIS: tl.constexpr,
                      BLOCK_MEMBERS: tl.constexpr):
    """A per-member scale or shift for the chunk of members from `start`, broadcast along the
    groups of the tile."""
    ids = start + tl.arange(0, BLOCK_MEMBERS).to(tl.int64)
    return tl.expand_dims(tl.load(param + ids, mask=ids < members, other=0.0), 1 - MEMBER_AXIS)


@triton.jit
def _normalized(source, offsets, mask, mean, inverse_scale, RECOMPUTE: tl.constexpr):
    """xhat at `offsets`: read from source, or recomputed from x there (RECOMPUTE; padding gives
    0, not -mean * scale, which a non-finite mean would carry into sums through a 0 gradient)."""
    value = tl.load(source + offsets, mask=mask, other=0.0)
    if RECOMPUTE:
        value = tl.where(mask, (value - mean) * inverse_scale, 0.0)
    return value


@triton.jit
def _update_running(running, groups, group_ids, group_mask, mean, var, keep, take):
    """running = keep * running + take * stats for this program's groups, written as ewise.py's
    axpby (alpha * x + beta * y) so that the GPU compiler contracts it the same way."""
    old_mean = tl.load(running + group_ids, mask=group_mask, other=0.0)
    tl.store(running + group_ids, keep * old_mean + take * mean, mask=group_mask)
    old_var = tl.load(running + groups + group_ids, mask=group_mask, other=0.0)
    tl.store(running + groups + group_ids, keep * old_var + take * var, mask=group_mask)


@triton.jit
def _norm_forward_kernel(x, weight, bias, out, stats, running, groups, members, group_stride,
                         member_stride, eps, keep, take, AFFINE: tl.constexpr,
                         PER_MEMBER: tl.constexpr, RUNNING: tl.constexpr,
                         BLOCK_GROUPS: tl.constexpr, BLOCK_MEMBERS: tl.constexpr,
                         MEMBER_AXIS: tl.constexpr, RELU: tl.constexpr):
    """norm_forward, or norm_affine_forward with AFFINE (weight and bias unread without), which
    also updates the running statistics with RUNNING (running unread without) and applies ReLU
    to its output with RELU, as the elementwise kernel does (a NaN stays NaN)."""
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
    if RUNNING:
        _update_running(running, groups, group_ids, group_mask, mean, var, keep, take)
    inverse_scale = tl.expand_dims(1.0 / tl.sqrt_rn(var + eps), MEMBER_AXIS)
    if AFFINE:
        if not PER_MEMBER:
            group_weight = _group_parameter(weight, group_ids, group_mask, MEMBER_AXIS)
            group_bias = _group_parameter(bias, group_ids, group_mask, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        normed = (tl.load(x + offsets, mask=mask, other=0.0) - wide_mean) * inverse_scale
        if AFFINE:
            if PER_MEMBER:
                normed = (normed * _member_parameter(weight, start, members, MEMBER_AXIS,
                                                     BLOCK_MEMBERS)
                          + _member_parameter(bias, start, members, MEMBER_AXIS, BLOCK_MEMBERS))
            else:
                normed = normed * group_weight + group_bias
        if RELU:
            normed = tl.maximum(normed, 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(out + offsets, normed, mask=mask)


@triton.jit
def _norm_backward_kernel(g, x, stats, weight, out, weight_grad, bias_grad, gate, groups, members,
                          group_stride, member_stride, eps, AFFINE: tl.constexpr,
                          PER_MEMBER: tl.constexpr, BLOCK_GROUPS: tl.constexpr,
                          BLOCK_MEMBERS: tl.constexpr, MEMBER_AXIS: tl.constexpr,
                          GATED: tl.constexpr):
    """norm_backward, where x is xhat; with AFFINE, norm_affine_backward's input gradient, x the
    forward's input, and its per-group weight_grad and bias_grad (per member: written by
    _member_parameter_grad_kernel); with GATED, g gated by `gate` first (ReLU's gradient).
    Unused pointers are not read."""
    group_ids, group_mask = _group_ids(groups, BLOCK_GROUPS)
    group_base = _group_base(group_ids, group_stride, MEMBER_AXIS)
    if AFFINE:
        mean = tl.expand_dims(tl.load(stats + group_ids, mask=group_mask, other=0.0),
                              MEMBER_AXIS)
        inverse_scale = _inverse_scale(stats, groups, group_ids, group_mask, eps, MEMBER_AXIS)
    else:
        # x is xhat already. The scale is read after the sums, where norm_backward always read
        # it: its code compiles exactly as before AFFINE existed.
        mean = 0.0
        inverse_scale = 1.0
    grad_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    projection_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        grad = _cotangent(g, gate, offsets, mask, GATED)
        if AFFINE:
            if PER_MEMBER:
                grad = grad * _member_parameter(weight, start, members, MEMBER_AXIS,
                                                BLOCK_MEMBERS)
        grad_total += grad
        projection_total += grad * _normalized(x, offsets, mask, mean, inverse_scale, AFFINE)
    grad_sum = tl.sum(grad_total, axis=MEMBER_AXIS)
    projection_sum = tl.sum(projection_total, axis=MEMBER_AXIS)
    if AFFINE:
        if not PER_MEMBER:
            # A per-group weight is constant over the group: the sums of g and g * xhat are the
            # parameter gradients, and times the weight those of the cotangent weight * g.
            tl.store(bias_grad + group_ids, grad_sum, mask=group_mask)
            tl.store(weight_grad + group_ids, projection_sum, mask=group_mask)
            group_weight = tl.load(weight + group_ids, mask=group_mask, other=0.0)
            grad_sum = grad_sum * group_weight
            projection_sum = projection_sum * group_weight
            group_weight = tl.expand_dims(group_weight, MEMBER_AXIS)
    grad_mean = tl.expand_dims(_group_mean(grad_sum, members), MEMBER_AXIS)
    projection = tl.expand_dims(_group_mean(projection_sum, members), MEMBER_AXIS)
    if not AFFINE:
        inverse_scale = _inverse_scale(stats, groups, group_ids, group_mask, eps, MEMBER_AXIS)
    for start in range(0, members, BLOCK_MEMBERS):
        offsets, mask = _tile(group_base, group_mask, start, members, member_stride, MEMBER_AXIS,
                              BLOCK_MEMBERS)
        grad = _cotangent(g, gate, offsets, mask, GATED)
        if AFFINE:
            if PER_MEMBER:
                grad = grad * _member_parameter(weight, start, members, MEMBER_AXIS,
                                                BLOCK_MEMBERS)
            else:
                grad = grad * group_weight
        normed = _normalized(x, offsets, mask, mean, inverse_scale, AFFINE)
        tl.store(out + offsets, (grad - grad_mean - normed * projection) * inverse_scale,
                 mask=mask)


@triton.jit
def _cotangent(g, gate, offsets, mask, GATED: tl.constexpr):
    # g's tile, zeroed where the gate is <= 0 with GATED (ewise_relu_grad's rule).
    grad = tl.load(g + offsets, mask=mask, other=0.0)
    if GATED:
        grad = tl.where(tl.load(gate + offsets, mask=mask, other=1.0) <= 0.0, 0.0, grad)
    return grad


@triton.jit
def _member_parameter_grad_kernel(g, x, stats, weight_grad, bias_grad, gate, groups, members,
                                  group_stride, member_stride, eps, BLOCK_GROUPS: tl.constexpr,
                                  BLOCK_MEMBERS: tl.constexpr, MEMBER_AXIS: tl.constexpr,
                                  GATED: tl.constexpr):
    """Per-member weight_grad and bias_grad (sums over the groups of g * xhat and g): each
    program owns BLOCK_MEMBERS members and sweeps every group in order, so the sums are the same
    on every run (no atomics)."""
    member_start = tl.program_id(0).to(tl.int64) * BLOCK_MEMBERS
    grad_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    projection_total = _zero_tile(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS)
    for first in range(0, groups, BLOCK_GROUPS):
        group_ids = first + tl.arange(0, BLOCK_GROUPS).to(tl.int64)
        group_mask = group_ids < groups
        offsets, mask = _tile(_group_base(group_ids, group_stride, MEMBER_AXIS), group_mask,
                              member_start, members, member_stride, MEMBER_AXIS, BLOCK_MEMBERS)
        mean = tl.expand_dims(tl.load(stats + group_ids, mask=group_mask, other=0.0),
                              MEMBER_AXIS)
        inverse_scale = _inverse_scale(stats, groups, group_ids, group_mask, eps, MEMBER_AXIS)
        grad = _cotangent(g, gate, offsets, mask, GATED)
        grad_total += grad
        projection_total += grad * _normalized(x, offsets, mask, mean, inverse_scale, True)
    member_ids = member_start + tl.arange(0, BLOCK_MEMBERS)
    member_mask = member_ids < members
    tl.store(bias_grad + member_ids, tl.sum(grad_total, axis=1 - MEMBER_AXIS), mask=member_mask)
    tl.store(weight_grad + member_ids, tl.sum(projection_total, axis=1 - MEMBER_AXIS),
             mask=member_mask)


def _check_args(name, buffers, stats, groups, members, group_stride, member_stride):
    if groups < 0 or members < 0:
        raise ValueError(f"{name}: negative sizes groups={groups}, members={members}")
    for label, handle in buffers:
        check_strided(f"{name} {label}", handle, (groups, members),
                      (group_stride, member_stride), 0)
    check_buffer(f"{name} stats", stats, 2 * groups)


def _check_parameters(name, handles, groups, members, per_member):
    """Learned scales and shifts hold one value per group (per_member 0) or per member (1)."""
    if per_member not in (0, 1):
        raise ValueError(f"{name}: per_member must be 0 or 1, got {per_member!r}")
    for label, handle in handles:
        check_buffer(f"{name} {label}", handle, members if per_member else groups)


def _launch(kernel, args, groups, members, group_stride, member_stride, eps, scalars=(),
            **flags):
    """A program per block_config tile of groups; `scalars` follow eps, `flags` are the
    kernel's remaining constexprs."""
    block_groups, block_members, member_axis, warps = block_config(groups, members,
                                                                   group_stride, member_stride)
    launch(kernel, (cdiv(groups, block_groups),),
           (*args, groups, members, group_stride, member_stride, float(eps), *scalars),
           {"BLOCK_GROUPS": block_groups, "BLOCK_MEMBERS": block_members,
            "MEMBER_AXIS": member_axis, "num_warps": warps, **flags})


def norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps):
    """Group i is x[i * group_stride + j * member_stride] for j < members: stats[i] = its mean,
    stats[groups + i] = its biased variance, out = (x - mean) / sqrt(var + eps) (out indexed
    like x). No members: NaN statistics and out untouched."""
    _check_args("norm_forward", (("x", x), ("out", out)), stats, groups, members, group_stride,
                member_stride)
    if groups == 0:
        return
    _launch(_norm_forward_kernel, (x, x, x, out, stats, stats), groups, members, group_stride,
            member_stride, eps, (1.0, 0.0), AFFINE=False, PER_MEMBER=False, RUNNING=False,
            RELU=False)


def norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps):
    """out = (g - mean_j(g) - xhat * mean_j(g * xhat)) / sqrt(var_i + eps), groups indexed as in
    norm_forward, whose out is xhat and whose stats these are. No members: nothing written."""
    _check_args("norm_backward", (("g", g), ("xhat", xhat), ("out", out)), stats, groups,
                members, group_stride, member_stride)
    if groups == 0 or members == 0:
        return
    _launch(_norm_backward_kernel, (g, xhat, stats, xhat, out, out, out, g), groups, members,
            group_stride, member_stride, eps, AFFINE=False, PER_MEMBER=False, GATED=False)


def norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                        eps, per_member, running=None, keep=1.0, take=0.0, relu=False):
    """norm_forward's stats, and out = weight[p] * xhat + bias[p] with xhat norm_forward's out, p
    the group (per_member 0, batch norm) or the member (1, layer norm); with `running` (2 *
    groups elements) also running = keep * running + take * stats, in place; with `relu`, out
    goes through ReLU. One launch."""
    name = "norm_affine_forward"
    _check_args(name, (("x", x), ("out", out)), stats, groups, members, group_stride,
                member_stride)
    _check_parameters(name, (("weight", weight), ("bias", bias)), groups, members, per_member)
    if running is not None:
        check_buffer(f"{name} running", running, 2 * groups)
    if groups == 0:
        return
    _launch(_norm_forward_kernel,
            (x, weight, bias, out, stats, stats if running is None else running), groups,
            members, group_stride, member_stride, eps, (float(keep), float(take)), AFFINE=True,
            PER_MEMBER=bool(per_member), RUNNING=running is not None, RELU=bool(relu))


def parameter_grad_config(groups, members, group_stride, member_stride):
    """(BLOCK_GROUPS, BLOCK_MEMBERS, MEMBER_AXIS, num_warps) of the per-member parameter gradients:
    few members a program, for more programs over a layer's width, with the tile oriented as
    block_config's (MEMBER_AXIS 0 only for unit group strides, which _group_base assumes)."""
    block_members = min(next_power_of_2(max(members, 1)), _PARAMETER_MEMBERS)
    block_groups = min(next_power_of_2(max(groups, 1)), 4096 // block_members)
    member_axis = 0 if group_stride == 1 and member_stride != 1 else 1
    return block_groups, block_members, member_axis, 1 if interpreting() else 4


def norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                         group_stride, member_stride, eps, per_member, gate=None):
    """With xhat recomputed from x and norm_affine_forward's stats: out = norm_backward's out
    for the cotangent weight[p] * g, weight_grad[p] and bias_grad[p] = the sums of g * xhat and
    g over parameter p's elements (0 with none); with `gate` (indexed like g), g is zeroed first
    where the gate is <= 0 (ReLU's gradient). Per group, one launch (the group sums give the
    parameter gradients); per member, a second one sums each member over the groups."""
    name = "norm_affine_backward"
    gated = gate is not None
    _check_args(name, (("g", g), ("x", x), ("out", out)) + ((("gate", gate),) if gated else ()),
                stats, groups, members, group_stride, member_stride)
    gate = gate if gated else g
    _check_parameters(name, (("weight", weight), ("weight_grad", weight_grad),
                             ("bias_grad", bias_grad)), groups, members, per_member)
    if per_member:
        if members == 0:
            return
        if groups:
            _launch(_norm_backward_kernel, (g, x, stats, weight, out, out, out, gate), groups,
                    members, group_stride, member_stride, eps, AFFINE=True, PER_MEMBER=True,
                    GATED=gated)
        block_groups, block_members, member_axis, warps = parameter_grad_config(
            groups, members, group_stride, member_stride)
        launch(_member_parameter_grad_kernel, (cdiv(members, block_members),),
               (g, x, stats, weight_grad, bias_grad, gate, groups, members, group_stride,
                member_stride, float(eps)),
               {"BLOCK_GROUPS": block_groups, "BLOCK_MEMBERS": block_members,
                "MEMBER_AXIS": member_axis, "GATED": gated, "num_warps": warps})
    elif groups:
        _launch(_norm_backward_kernel, (g, x, stats, weight, out, weight_grad, bias_grad, gate),
                groups, members, group_stride, member_stride, eps, AFFINE=True, PER_MEMBER=False,
                GATED=gated)
