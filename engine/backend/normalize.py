"""Normalization of a 2-D NDArray over one axis (per column: batch norm; per row: layer norm),
with or without a scale and shift per column, and its gradients: the protocol's norm functions, one
kernel a call. Backend layer, beside ndarray.py; engine.ops builds on it.
"""

from .ndarray import NDArray


def _layout(shape, axis):
    """(groups, members, group_stride, member_stride) of a compact (rows, cols) array normalized
    over `axis` (0: each column is a group, 1: each row)."""
    rows, cols = shape
    return (rows, cols, cols, 1) if axis == 1 else (cols, rows, 1, cols)


def _check(x, axis, role="input"):
    if not isinstance(x, NDArray):
        raise TypeError(f"normalize takes NDArrays, got {role} of type {type(x).__name__}")
    if x.ndim != 2 or axis not in (0, 1):
        raise ValueError(f"normalize works over axis 0 or 1 of a 2-D array, got {role} of shape "
                         f"{x.shape} and axis {axis!r}")


def normalize(x, axis, eps):
    """((x - mean) / sqrt(var + eps), stats) over `axis` of the 2-D array x, where stats (2,
    groups) holds each group's mean and biased variance."""
    _check(x, axis)
    x = x.compact()
    groups, members, group_stride, member_stride = _layout(x.shape, axis)
    out, stats = x._new(x.shape), x._new((2, groups))
    x.device.norm_forward(x.handle, out.handle, stats.handle, groups, members, group_stride,
                          member_stride, float(eps))
    return out, stats


def normalize_grad(g, xhat, stats, axis, eps):
    """The gradient of `normalize` for the cotangent g, from its output xhat and stats."""
    _check(g, axis, "cotangent")
    if g.shape != xhat.shape or g.device != xhat.device:
        raise ValueError(f"normalize's gradient needs a cotangent like its output {xhat.shape} "
                         f"(on {xhat.device}), got {g.shape} (on {g.device})")
    # Mixed dtypes follow the first operand in the engine's arithmetic, so a float32 layer on
    # float64 input sends back a float32 cotangent.
    g, xhat = g.astype(xhat.dtype).compact(), xhat.compact()
    groups, members, group_stride, member_stride = _layout(g.shape, axis)
    out = g._new(g.shape)
    g.device.norm_backward(g.handle, xhat.handle, stats.compact().handle, out.handle, groups,
                           members, group_stride, member_stride, float(eps))
    return out


def _check_parameters(x, axis, parameters):
    """Each (label, array) must be a (cols,) array on x's device: batch norm (axis 0) has one
    per group, layer norm (axis 1) one per member, a column either way."""
    cols = x.shape[1]
    for label, array in parameters:
        if not isinstance(array, NDArray):
            raise TypeError(f"normalize's {label} must be an NDArray, got {type(array).__name__}")
        if array.shape != (cols,) or array.device != x.device:
            raise ValueError(f"normalize's {label} must have shape ({cols},) on {x.device} for "
                             f"input {x.shape}, got {array.shape} on {array.device}")


def _check_running(x, axis, running):
    """Running estimates updated in place by the forward: a compact (2, groups) array like the
    stats (x's device and dtype)."""
    groups = _layout(x.shape, axis)[0]
    if not isinstance(running, NDArray):
        raise TypeError(f"normalize's running estimates must be an NDArray, got "
                        f"{type(running).__name__}")
    if (running.shape, running.device, running.dtype) != ((2, groups), x.device, x.dtype):
        raise ValueError(f"normalize's running estimates must be a ({2}, {groups}) {x.dtype} "
                         f"array on {x.device} for input {x.shape}, got {running.dtype} "
                         f"{running.shape} on {running.device}")
    if not running.is_compact():
        raise ValueError("normalize's running estimates must be compact: they are updated in "
                         "place")


def normalize_affine(x, weight, bias, axis, eps, running=None, keep=1.0, take=0.0, relu=False):
    """(weight * xhat + bias, stats), xhat = normalize(x, axis, eps)'s out, with one weight and
    bias per column of the 2-D x (per group for axis 0, per member for axis 1): one kernel. With
    `running` (2, groups), also running <- keep * running + take * stats, in place, in the
    same kernel (batch norm's running estimates); with `relu`, the result goes through ReLU
    there too."""
    _check(x, axis)
    _check_parameters(x, axis, (("weight", weight), ("bias", bias)))
    if running is not None:
        _check_running(x, axis, running)
    x = x.compact()
    weight, bias = weight.astype(x.dtype).compact(), bias.astype(x.dtype).compact()
    groups, members, group_stride, member_stride = _layout(x.shape, axis)
    out, stats = x._new(x.shape), x._new((2, groups))
    x.device.norm_affine_forward(x.handle, weight.handle, bias.handle, out.handle, stats.handle,
                                 groups, members, group_stride, member_stride, float(eps),
                                 int(axis == 1), None if running is None else running.handle,
                                 float(keep), float(take), relu=bool(relu))
    return out, stats


def normalize_affine_grad(g, x, stats, weight, axis, eps, gate=None):
    """(x's, weight's and bias's gradients) of `normalize_affine` for the cotangent g, from its
    input x and stats: one kernel (batch norm) or two (layer norm: the parameters' column sums).
    With `gate` (like x: the output of a normalization that ran with its ReLU), g is ReLU's
    gradient's input: zeroed where gate <= 0 inside the same kernels."""
    _check(g, axis, "cotangent")
    _check_parameters(x, axis, (("weight", weight),))
    if g.shape != x.shape or g.device != x.device:
        raise ValueError(f"normalize's gradient needs a cotangent like its input {x.shape} "
                         f"(on {x.device}), got {g.shape} (on {g.device})")
    g, x = g.astype(x.dtype).compact(), x.compact()
    weight = weight.astype(x.dtype).compact()
    groups, members, group_stride, member_stride = _layout(g.shape, axis)
    out, weight_grad, bias_grad = g._new(g.shape), g._new(weight.shape), g._new(weight.shape)
    gated = {} if gate is None else {"gate": gate.astype(x.dtype).compact().handle}
    g.device.norm_affine_backward(g.handle, x.handle, stats.compact().handle, weight.handle,
                                  out.handle, weight_grad.handle, bias_grad.handle, groups,
                                  members, group_stride, member_stride, float(eps),
                                  int(axis == 1), **gated)
    return out, weight_grad, bias_grad
