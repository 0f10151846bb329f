"""Normalization of a 2-D NDArray over one axis (per column: batch norm; per row: layer norm) and
its gradient, one device kernel each (the protocol's norm pair). Backend layer, beside ndarray.py;
engine.ops builds on it.
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
