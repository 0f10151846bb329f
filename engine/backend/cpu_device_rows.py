"""The cpu device's row-wise fused functions (backend layer): softmax cross-entropy and
normalization over one axis, plain or with a learned scale and shift, each one C call
(kernels_c/softmax_xent.c, norm.c). cpu_device.py exports them with the rest of the protocol.
"""

import numpy as np

from .cpu_handles import _fail, _lib, _ptr


# Softmax cross-entropy
def _check_xent_buffers(name, classes, rows, buffers):
    """Raise naming the first buffer of `buffers` ((label, handle, elements needed)) too small.
    Negative sizes are left to the kernel, which reports them before touching any buffer."""
    if classes < 0 or rows < 0:
        return
    for label, handle, needed in buffers:
        if needed > handle.size:
            raise ValueError(f"{name}: {label} needs {needed} elements for rows={rows}, "
                             f"classes={classes}, its buffer has {handle.size}")


def softmax_xent(z, labels, out, classes, rows):
    try:
        pz, plabels, pout = z.address, labels.address, out.address
    except AttributeError:
        pz, plabels, pout = _ptr(z), _ptr(labels), _ptr(out)
    if classes * rows > z.size or rows > labels.size or rows > out.size:
        _check_xent_buffers("softmax_xent", classes, rows,
                            (("z", z, classes * rows), ("labels", labels, rows),
                             ("out", out, rows)))
    status = _lib.nd_softmax_xent_f32(pz, plabels, pout, classes, rows)
    if status:
        raise _fail("softmax_xent", status, classes=classes, rows=rows)


def softmax_xent_grad(z, labels, g, out, classes, rows):
    try:
        pz, plabels, pg, pout = z.address, labels.address, g.address, out.address
    except AttributeError:
        pz, plabels, pg, pout = _ptr(z), _ptr(labels), _ptr(g), _ptr(out)
    size = classes * rows
    if size > z.size or rows > labels.size or rows > g.size or size > out.size:
        _check_xent_buffers("softmax_xent_grad", classes, rows,
                            (("z", z, size), ("labels", labels, rows), ("g", g, rows),
                             ("out", out, size)))
    status = _lib.nd_softmax_xent_grad_f32(pz, plabels, pg, pout, classes, rows)
    if status:
        raise _fail("softmax_xent_grad", status, classes=classes, rows=rows)


# Normalization over one axis
def _check_norm_buffers(name, groups, members, group_stride, member_stride, strided, stats,
                       parameters=(), per_member=0, running=None):
    """Raise naming the first buffer too small: the `strided` (label, handle) pairs are indexed
    by the groups, stats and running (when given) hold 2 * groups, each of `parameters` one value
    per group (per_member 0) or per member (1). Negative sizes are left to the kernel."""
    if min(groups, members, group_stride, member_stride) < 0:
        return
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1 if groups and members \
        else 0
    count = members if per_member else groups
    needs = ([(label, handle, reach) for label, handle in strided] + [("stats", stats, 2 * groups)]
             + [(label, handle, count) for label, handle in parameters])
    if running is not None:
        needs.append(("running", running, 2 * groups))
    sizes = f"groups={groups}, members={members}, strides=({group_stride}, {member_stride})"
    if parameters:
        sizes += f", per_member={per_member}"
    for label, handle, needed in needs:
        if needed > handle.size:
            raise ValueError(f"{name}: {label} needs {needed} elements for {sizes}, its buffer "
                             f"has {handle.size}")


def _check_per_member(name, per_member):
    if per_member not in (0, 1):
        raise ValueError(f"{name}: per_member must be 0 or 1, got {per_member!r}")


def norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps):
    try:
        px, pout, pstats = x.address, out.address, stats.address
    except AttributeError:
        px, pout, pstats = _ptr(x), _ptr(out), _ptr(stats)
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    if reach > min(x.size, out.size) or 2 * groups > stats.size:
        _check_norm_buffers("norm_forward", groups, members, group_stride, member_stride,
                            (("x", x), ("out", out)), stats)
    status = _lib.nd_norm_forward_f32(px, pout, pstats, groups, members, group_stride,
                                      member_stride, eps)
    if status:
        raise _fail("norm_forward", status, groups=groups, members=members,
                    group_stride=group_stride, member_stride=member_stride)


def norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps):
    try:
        pg, pxhat, pstats, pout = g.address, xhat.address, stats.address, out.address
    except AttributeError:
        pg, pxhat, pstats, pout = _ptr(g), _ptr(xhat), _ptr(stats), _ptr(out)
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    if reach > min(g.size, xhat.size, out.size) or 2 * groups > stats.size:
        _check_norm_buffers("norm_backward", groups, members, group_stride, member_stride,
                            (("g", g), ("xhat", xhat), ("out", out)), stats)
    status = _lib.nd_norm_backward_f32(pg, pxhat, pstats, pout, groups, members, group_stride,
                                       member_stride, eps)
    if status:
        raise _fail("norm_backward", status, groups=groups, members=members,
                    group_stride=group_stride, member_stride=member_stride)


def norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                        eps, per_member, running=None, keep=1.0, take=0.0, relu=False):
    try:
        px, pweight, pbias = x.address, weight.address, bias.address
        pout, pstats = out.address, stats.address
        prunning = None if running is None else running.address
    except AttributeError:
        px, pweight, pbias, pout, pstats = _ptr(x), _ptr(weight), _ptr(bias), _ptr(out), _ptr(stats)
        prunning = None if running is None else _ptr(running)
    if per_member != 0 and per_member != 1:
        _check_per_member("norm_affine_forward", per_member)
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    count = members if per_member else groups
    if (reach > min(x.size, out.size) or 2 * groups > stats.size
            or count > min(weight.size, bias.size)
            or (running is not None and 2 * groups > running.size)):
        _check_norm_buffers("norm_affine_forward", groups, members, group_stride, member_stride,
                            (("x", x), ("out", out)), stats,
                            (("weight", weight), ("bias", bias)), per_member, running)
    # ctypes rounds keep and take to float32, as ewise_axpby does.
    status = _lib.nd_norm_affine_forward_f32(px, pweight, pbias, pout, pstats, groups, members,
                                             group_stride, member_stride, eps, int(per_member),
                                             prunning, keep, take, 1 if relu else 0)
    if status:
        raise _fail("norm_affine_forward", status, groups=groups, members=members,
                    group_stride=group_stride, member_stride=member_stride,
                    per_member=per_member)


def norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                         group_stride, member_stride, eps, per_member, gate=None):
    if gate is not None:
        # The gated cotangent in a buffer of its own (g is an input), over every element the
        # layout reaches: ReLU's gradient, then the normalization's, in one protocol call. Only a
        # layout the kernel accepts reaches memory; anything else is the kernel's to report.
        valid = groups > 0 and members > 0 and min(group_stride, member_stride) >= 0
        reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1 if valid else 0
        if reach > min(g.size, gate.size):
            _check_norm_buffers("norm_affine_backward", groups, members, group_stride,
                                member_stride, (("g", g), ("gate", gate)), stats,
                                (("weight", weight),), per_member)
        gated = np.zeros(max(reach, 1), np.float32)
        if reach:
            status = _lib.nd_ewise_relu_grad_f32(_ptr(g), _ptr(gate), _ptr(gated), reach)
            if status:
                raise _fail("norm_affine_backward gate", status, size=reach)
        g = gated
    try:
        pg, px, pstats, pweight = g.address, x.address, stats.address, weight.address
        pout, pweight_grad, pbias_grad = out.address, weight_grad.address, bias_grad.address
    except AttributeError:
        pg, px, pstats, pweight = _ptr(g), _ptr(x), _ptr(stats), _ptr(weight)
        pout, pweight_grad, pbias_grad = _ptr(out), _ptr(weight_grad), _ptr(bias_grad)
    if per_member != 0 and per_member != 1:
        _check_per_member("norm_affine_backward", per_member)
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    count = members if per_member else groups
    if (reach > min(g.size, x.size, out.size) or 2 * groups > stats.size
            or count > min(weight.size, weight_grad.size, bias_grad.size)):
        _check_norm_buffers("norm_affine_backward", groups, members, group_stride, member_stride,
                            (("g", g), ("x", x), ("out", out)), stats,
                            (("weight", weight), ("weight_grad", weight_grad),
                             ("bias_grad", bias_grad)), per_member)
    status = _lib.nd_norm_affine_backward_f32(pg, px, pstats, pweight, pout, pweight_grad,
                                              pbias_grad, groups, members, group_stride,
                                              member_stride, eps, int(per_member))
    if status:
        raise _fail("norm_affine_backward", status, groups=groups, members=members,
                    group_stride=group_stride, member_stride=member_stride,
                    per_member=per_member)
