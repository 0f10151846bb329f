"""The numpy device: the executable specification of the device protocol (see protocol.py).
Backend layer. Handles are 1-D numpy arrays (float32 or float64); every other device is tested
against these functions.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .numpy_conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward  # noqa: F401
from .numpy_optim import adam_update, sgd_update  # noqa: F401
from .numpy_pool import (  # noqa: F401
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

DTYPES = ("float32", "float64")


def _view(a, shape, strides, offset):
    """A numpy view of the strided region of handle `a` (strides in elements, non-negative here):
    as_strided checks nothing, so a region past the buffer raises instead of reading or writing
    outside it."""
    item = a.itemsize
    if all(shape):
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if offset < 0 or last >= a.size or any(n < 0 for n in shape):
            raise ValueError(f"strided region shape {tuple(shape)} strides {tuple(strides)} "
                             f"offset {offset} reaches past a buffer of {a.size} elements")
    return as_strided(a[offset:], shape=shape, strides=tuple(s * item for s in strides))


def _check_sizes(name, **sizes):
    for key, value in sizes.items():
        if value < 0:
            raise ValueError(f"{name}: negative {key} {value}")


def _checked_view(a, shape, strides, offset):
    # Negative strides point before a[offset:]; as_strided cannot express that, so use the base.
    if any(s < 0 for s in strides):
        start = offset + sum((n - 1) * s for n, s in zip(shape, strides) if s < 0 and n > 0)
        flipped = tuple(abs(s) for s in strides)
        view = _view(a, shape, flipped, start)
        index = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in strides)
        return view[index]
    return _view(a, shape, strides, offset)


def alloc(size, dtype="float32"):
    return np.empty(size, dtype=dtype)


def from_numpy(src, out):
    out[: src.size] = src.reshape(-1)


def to_numpy(a, shape, strides, offset):
    return np.array(_checked_view(a, shape, strides, offset), copy=True)


def fill(out, value, size):
    out[:size] = value


def compact(a, out, shape, strides, offset):
    size = int(np.prod(shape, dtype=np.int64))
    out[:size] = _checked_view(a, shape, strides, offset).reshape(-1)


def ewise_setitem(a, out, shape, strides, offset):
    size = int(np.prod(shape, dtype=np.int64))
    _checked_view(out, shape, strides, offset)[...] = a[:size].reshape(shape)


def scalar_setitem(size, value, out, shape, strides, offset):
    _checked_view(out, shape, strides, offset)[...] = value


def _binary(fn):
    # IEEE results (0/0 is NaN, x/0 is inf) without numpy's warnings, as the other devices give.
    def ewise(a, b, out, size):
        with np.errstate(all="ignore"):
            out[:size] = fn(a[:size], b[:size])

    def scalar(a, value, out, size):
        with np.errstate(all="ignore"):
            out[:size] = fn(a[:size], out.dtype.type(value))

    return ewise, scalar


ewise_add, scalar_add = _binary(np.add)
ewise_mul, scalar_mul = _binary(np.multiply)
ewise_div, scalar_div = _binary(np.divide)
ewise_maximum, scalar_maximum = _binary(np.maximum)
ewise_eq, scalar_eq = _binary(np.equal)
ewise_ge, scalar_ge = _binary(np.greater_equal)
ewise_gt, scalar_gt = _binary(np.greater)
_, scalar_power = _binary(np.power)


def _row_binary(fn):
    def row_op(a, row, out, size, period):
        if size < 0 or size > min(a.size, out.size) or (size and not 0 < period <= row.size) \
                or (size and size % period):
            raise ValueError(f"row op: size {size} and period {period} do not fit buffers of "
                             f"{a.size} (a), {row.size} (row) and {out.size} (out) elements, "
                             f"or size is not a whole number of rows")
        if size:
            values = a[:size].reshape(-1, period)
            out[:size] = fn(values, row[:period]).reshape(-1)

    return row_op


ewise_add_row = _row_binary(np.add)
ewise_mul_row = _row_binary(np.multiply)


def scalar_rdiv(a, value, out, size):
    out[:size] = out.dtype.type(value) / a[:size]


def _unary(fn):
    def unary(a, out, size):
        out[:size] = fn(a[:size])

    return unary


def _sigmoid(x):
    # Split by sign so that exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


ewise_neg = _unary(np.negative)
ewise_log = _unary(np.log)
ewise_exp = _unary(np.exp)
ewise_tanh = _unary(np.tanh)
ewise_relu = _unary(lambda x: np.maximum(x, 0))
ewise_sigmoid = _unary(_sigmoid)
ewise_sqrt = _unary(np.sqrt)


def ewise_relu_grad(g, x, out, size):
    out[:size] = np.where(x[:size] <= 0, out.dtype.type(0), g[:size])


def ewise_add_scaled(a, b, value, out, size):
    # Two roundings (numpy has no fused multiply-add); the other devices may round once.
    out[:size] = a[:size] + out.dtype.type(value) * b[:size]


def ewise_axpby(a, b, alpha, beta, out, size):
    dtype = out.dtype.type
    out[:size] = dtype(alpha) * a[:size] + dtype(beta) * b[:size]


def dropout_hash(seed, index):
    """hash(seed, i) of the protocol's ewise_dropout for the uint64 array `index` (values < 2^32),
    as uint64 values < 2^32."""
    mask = np.uint64(0xFFFFFFFF)
    x = ((index * np.uint64(0x9E3779B9)) & mask) ^ np.uint64(seed)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & mask
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & mask
    return x ^ (x >> np.uint64(16))


def ewise_dropout(a, out, size, threshold, scale, seed):
    if not (0 <= size <= min(a.size, out.size, 2**32) and 0 <= threshold <= 2**24
            and 0 <= seed < 2**32):
        raise ValueError(f"ewise_dropout: size {size} (buffers of {a.size} and {out.size}), "
                         f"threshold {threshold} (0 to 2^24) or seed {seed} (0 to 2^32) out "
                         f"of range")
    keep = (dropout_hash(seed, np.arange(size, dtype=np.uint64)) >> np.uint64(8)) >= threshold
    out[:size] = np.where(keep, a[:size] * out.dtype.type(scale), out.dtype.type(0))


def reduce_sum(a, out, reduce_size, out_size):
    out[:out_size] = a[: out_size * reduce_size].reshape(out_size, reduce_size).sum(axis=1)


def reduce_max(a, out, reduce_size, out_size):
    out[:out_size] = a[: out_size * reduce_size].reshape(out_size, reduce_size).max(axis=1)


def reduce_logsumexp(a, out, reduce_size, out_size):
    if reduce_size == 0:
        out[:out_size] = -np.inf
        return
    rows = a[: reduce_size * out_size].reshape(out_size, reduce_size)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        peak = rows.max(axis=1, keepdims=True)
        # An infinite (or NaN) maximum shifts nothing: exp then gives inf, 0 or NaN as it should.
        shift = np.where(np.isfinite(peak), peak, 0).astype(rows.dtype)
        out[:out_size] = np.log(np.exp(rows - shift).sum(axis=1)) + shift[:, 0]


def _softmax_xent_rows(z, labels, classes, rows):
    """The logits as (rows, classes), each row's lse, its label as an index (0 where invalid) and
    whether the label is valid."""
    logits = z[: classes * rows].reshape(rows, classes)
    lse = np.empty(rows, dtype=z.dtype)
    reduce_logsumexp(z, lse, classes, rows)
    label_values = labels[:rows]
    with np.errstate(invalid="ignore"):
        valid = (label_values >= 0) & (label_values < classes)
    index = np.where(valid, label_values, 0).astype(np.int64)
    return logits, lse, index, valid


def softmax_xent(z, labels, out, classes, rows):
    _check_sizes("softmax_xent", classes=classes, rows=rows)
    logits, lse, index, valid = _softmax_xent_rows(z, labels, classes, rows)
    picked = logits[np.arange(rows), index] if classes else np.zeros(rows, dtype=z.dtype)
    with np.errstate(invalid="ignore"):
        out[:rows] = np.where(valid, lse - picked, np.nan)


def softmax_xent_grad(z, labels, g, out, classes, rows):
    _check_sizes("softmax_xent_grad", classes=classes, rows=rows)
    if classes == 0 or rows == 0:
        return
    logits, lse, index, valid = _softmax_xent_rows(z, labels, classes, rows)
    with np.errstate(invalid="ignore", over="ignore"):
        grad = np.exp(logits - lse[:, None])
        grad[np.arange(rows), index] -= 1
        grad *= g[:rows, None]
    grad[~valid] = np.nan
    out[: classes * rows] = grad.reshape(-1)


def _groups(buffer, stats, groups, members, group_stride, member_stride):
    """The (groups, members) strided view of `buffer` that the norm functions work on."""
    _check_sizes("norm", groups=groups, members=members, group_stride=group_stride,
                 member_stride=member_stride)
    if stats.size < 2 * groups:
        raise ValueError(f"norm: stats holds {stats.size} elements, {2 * groups} needed")
    return _view(buffer, (groups, members), (group_stride, member_stride), 0)


def norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps):
    view = _groups(x, stats, groups, members, group_stride, member_stride)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = view.sum(axis=1) / view.dtype.type(members)
        centered = view - mean[:, None]
        var = (centered * centered).sum(axis=1) / view.dtype.type(members)
        scale = np.sqrt(var + view.dtype.type(eps))
    stats[:groups], stats[groups: 2 * groups] = mean, var
    if members:
        normed = _groups(out, stats, groups, members, group_stride, member_stride)
        normed[...] = centered / scale[:, None]


def norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps):
    if members == 0:
        return
    grad = _groups(g, stats, groups, members, group_stride, member_stride)
    normed = _groups(xhat, stats, groups, members, group_stride, member_stride)
    count = grad.dtype.type(members)
    grad_mean = grad.sum(axis=1, keepdims=True) / count
    projection = (grad * normed).sum(axis=1, keepdims=True) / count
    scale = np.sqrt(stats[groups: 2 * groups] + grad.dtype.type(eps))[:, None]
    _groups(out, stats, groups, members, group_stride, member_stride)[...] = (
        (grad - grad_mean - normed * projection) / scale)


def _parameters(name, handles, groups, members, per_member):
    """Each (label, handle) of a learned scale or shift as a view broadcast over the (groups,
    members) elements, one value per group (per_member 0) or per member (1)."""
    if per_member not in (0, 1):
        raise ValueError(f"{name}: per_member must be 0 or 1, got {per_member!r}")
    count = members if per_member else groups
    for label, handle in handles:
        if handle.size < count:
            raise ValueError(f"{name}: {label} holds {handle.size} elements, {count} needed")
    return [handle[:count][None, :] if per_member else handle[:count][:, None]
            for _, handle in handles]


def norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                        eps, per_member, running=None, keep=1.0, take=0.0, relu=False):
    scale, shift = _parameters("norm_affine_forward", (("weight", weight), ("bias", bias)),
                               groups, members, per_member)
    if running is not None and running.size < 2 * groups:
        raise ValueError(f"norm_affine_forward: running holds {running.size} elements, "
                         f"{2 * groups} needed")
    norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps)
    if members:
        normed = _groups(out, stats, groups, members, group_stride, member_stride)
        normed[...] = scale * normed + shift
        if relu:
            normed[...] = np.maximum(normed, 0)  # ewise_relu's rule
    if running is not None:
        count = 2 * groups
        ewise_axpby(running[:count], stats[:count], keep, take, running[:count], count)


def norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                         group_stride, member_stride, eps, per_member, gate=None):
    (scale,) = _parameters("norm_affine_backward", (("weight", weight),), groups, members,
                           per_member)
    _parameters("norm_affine_backward", (("weight_grad", weight_grad), ("bias_grad", bias_grad)),
                groups, members, per_member)
    grad = _groups(g, stats, groups, members, group_stride, member_stride)
    if gate is not None:
        reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
        if groups and members and gate.size < reach:
            raise ValueError(f"norm_affine_backward: the gate holds {gate.size} elements, "
                             f"{reach} needed")
        # ewise_relu_grad's rule, on a copy: g is an input.
        grad = np.where(_groups(gate, stats, groups, members, group_stride, member_stride) <= 0,
                        grad.dtype.type(0), grad)
    values = _groups(x, stats, groups, members, group_stride, member_stride)
    with np.errstate(invalid="ignore", divide="ignore"):
        inverse_std = 1 / np.sqrt(stats[groups: 2 * groups] + grad.dtype.type(eps))[:, None]
        xhat = (values - stats[:groups][:, None]) * inverse_std
    count, summed_axis = (members, 0) if per_member else (groups, 1)
    weight_grad[:count] = (grad * xhat).sum(axis=summed_axis)
    bias_grad[:count] = grad.sum(axis=summed_axis)
    if members == 0:
        return
    scaled = scale * grad
    size = grad.dtype.type(members)
    grad_mean = scaled.sum(axis=1, keepdims=True) / size
    projection = (scaled * xhat).sum(axis=1, keepdims=True) / size
    _groups(out, stats, groups, members, group_stride, member_stride)[...] = (
        (scaled - grad_mean - xhat * projection) * inverse_std)


def matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, gate=None, relu=False,
           bias=None, dropout=None):
    av = _checked_view(a, (batch, m, k), (a_batch_stride, a_row_stride, a_col_stride), a_offset)
    bv = _checked_view(b, (batch, k, n), (b_batch_stride, b_row_stride, b_col_stride), b_offset)
    size = batch * m * n
    if gate is not None and gate.size < size:
        raise ValueError(f"matmul: the gate holds {gate.size} elements, {size} needed")
    if bias is not None and bias.size < n:
        raise ValueError(f"matmul: the bias holds {bias.size} elements, {n} needed")
    if batch == 1:
        # 2-D views reach BLAS even when transposed; a strided 3-D matmul does not.
        np.matmul(av[0], bv[0], out=out[:size].reshape(m, n))
    else:
        out[:size] = np.matmul(av, bv).reshape(-1)
    if bias is not None and size:
        ewise_add_row(out, bias, out, size, n)
    if dropout is not None:
        ewise_dropout(out, out, size, *dropout)
    if gate is not None:
        ewise_relu_grad(out, gate, out, size)
    if relu:
        ewise_relu(out, out, size)


_threads = {"n": None, "limiter": None}


def set_num_threads(n):
    """numpy's own kernels run single-threaded; this caps its BLAS pool (OpenBLAS) at n."""
    from threadpoolctl import threadpool_limits

    _threads["n"] = int(n)
    _threads["limiter"] = threadpool_limits(limits=int(n), user_api="blas")


def get_num_threads():
    if _threads["n"] is not None:
        return _threads["n"]
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(blas, default=1)
