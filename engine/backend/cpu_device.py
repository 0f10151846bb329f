"""The cpu device: the device protocol (protocol.py) over our C kernels (kernels_c), float32 only.
Backend layer. Handles are 1-D float32 numpy arrays used only as memory: numpy allocates them and
copies host data in and out; every computation is one C call. Per-call Python cost dominates small
ops, so buffer addresses are cached on the handle and shape/stride arrays are cached by value.
"""

import ctypes

import numpy as np

# Part of this device's protocol, written in files of their own.
from .cpu_device_optim import adam_update, sgd_update  # noqa: F401
from .cpu_device_pool import (  # noqa: F401
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .cpu_device_rows import (  # noqa: F401
    norm_affine_backward,
    norm_affine_forward,
    norm_backward,
    norm_forward,
    softmax_xent,
    softmax_xent_grad,
)
from .cpu_handles import (
    _F32,
    Buffer,
    _address_of,
    _char_at,
    _check_sizes,
    _fail,
    _i64,
    _i64_fresh,
    _lib,
    _new_buffer,
    _ptr,
)

DTYPES = ("float32",)


# Memory
def alloc(size, dtype="float32"):
    if dtype != "float32" and np.dtype(dtype) != _F32:
        raise TypeError(f"cpu device supports float32 only, got {np.dtype(dtype).name}")
    # Built directly as a Buffer, and the address read through the buffer protocol: both several
    # times cheaper than np.empty(...).view(Buffer) and `.ctypes.data` (this runs once per op).
    handle = _new_buffer(Buffer, (size if size > 0 else 1,), _F32)
    handle.address = _address_of(_char_at(handle))
    return handle


def from_numpy(src, out):
    _ptr(out)
    if src.size > out.size:
        raise ValueError(f"from_numpy: {src.size} elements do not fit a buffer of {out.size}")
    out[: src.size] = src.reshape(-1)


def to_numpy(a, shape, strides, offset):
    host = np.empty(shape, dtype=_F32)
    status = _lib.nd_compact_f32(_ptr(a), host.ctypes.data, a.size, host.size, len(shape),
                                 _i64(tuple(shape)), _i64(tuple(strides)), offset)
    if status:
        raise _fail("to_numpy", status, shape=shape, strides=strides, offset=offset,
                    buffer=a.size)
    return host


def fill(out, value, size):
    address = _ptr(out)
    _check_sizes("fill", size, out)
    status = _lib.nd_fill_f32(address, value, size)
    if status:
        raise _fail("fill", status, size=size)


# Strided access
def compact(a, out, shape, strides, offset):
    try:
        pa, pout = a.address, out.address
    except AttributeError:
        pa, pout = _ptr(a), _ptr(out)
    status = _lib.nd_compact_f32(pa, pout, a.size, out.size, len(shape), _i64(shape),
                                 _i64(strides), offset)
    if status:
        raise _fail("compact", status, shape=shape, strides=strides, offset=offset,
                    buffer=a.size, out=out.size)


def ewise_setitem(a, out, shape, strides, offset):
    status = _lib.nd_ewise_setitem_f32(_ptr(a), _ptr(out), a.size, out.size, len(shape),
                                       _i64(shape), _i64(strides), offset)
    if status:
        raise _fail("ewise_setitem", status, shape=shape, strides=strides, offset=offset,
                    source=a.size, buffer=out.size)


def scalar_setitem(size, value, out, shape, strides, offset):
    status = _lib.nd_scalar_setitem_f32(value, _ptr(out), size, out.size, len(shape), _i64(shape),
                                        _i64(strides), offset)
    if status:
        raise _fail("scalar_setitem", status, size=size, shape=shape, strides=strides,
                    offset=offset, buffer=out.size)


# Elementwise
def _binary(name):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def ewise(a, b, out, size):
        try:
            # The fast path for our own buffers, with _ptr's checks for anything else.
            pa, pb, pout = a.address, b.address, out.address
        except AttributeError:
            pa, pb, pout = _ptr(a), _ptr(b), _ptr(out)
        if size > a.size or size > b.size or size > out.size or size < 0:
            _check_sizes(name, size, a, b, out)
        status = kernel(pa, pb, pout, size)
        if status:
            raise _fail(name, status, size=size)

    ewise.__name__ = name
    return ewise


def _scalar(name):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def scalar(a, value, out, size):
        try:
            pa, pout = a.address, out.address
        except AttributeError:
            pa, pout = _ptr(a), _ptr(out)
        if size > a.size or size > out.size or size < 0:
            _check_sizes(name, size, a, out)
        status = kernel(pa, value, pout, size)
        if status:
            raise _fail(name, status, size=size)

    scalar.__name__ = name
    return scalar


def _unary(name):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def unary(a, out, size):
        try:
            pa, pout = a.address, out.address
        except AttributeError:
            pa, pout = _ptr(a), _ptr(out)
        if size > a.size or size > out.size or size < 0:
            _check_sizes(name, size, a, out)
        status = kernel(pa, pout, size)
        if status:
            raise _fail(name, status, size=size)

    unary.__name__ = name
    return unary


ewise_add = _binary("ewise_add")
ewise_mul = _binary("ewise_mul")
ewise_div = _binary("ewise_div")
ewise_maximum = _binary("ewise_maximum")
ewise_eq = _binary("ewise_eq")
ewise_ge = _binary("ewise_ge")
ewise_gt = _binary("ewise_gt")

scalar_add = _scalar("scalar_add")
scalar_mul = _scalar("scalar_mul")
scalar_div = _scalar("scalar_div")
scalar_maximum = _scalar("scalar_maximum")
scalar_eq = _scalar("scalar_eq")
scalar_ge = _scalar("scalar_ge")
scalar_gt = _scalar("scalar_gt")
scalar_power = _scalar("scalar_power")
scalar_rdiv = _scalar("scalar_rdiv")

ewise_neg = _unary("ewise_neg")
ewise_log = _unary("ewise_log")
ewise_exp = _unary("ewise_exp")
ewise_tanh = _unary("ewise_tanh")
ewise_relu = _unary("ewise_relu")
ewise_sigmoid = _unary("ewise_sigmoid")
ewise_sqrt = _unary("ewise_sqrt")

ewise_relu_grad = _binary("ewise_relu_grad")


def ewise_add_scaled(a, b, value, out, size):
    try:
        pa, pb, pout = a.address, b.address, out.address
    except AttributeError:
        pa, pb, pout = _ptr(a), _ptr(b), _ptr(out)
    if size > a.size or size > b.size or size > out.size or size < 0:
        _check_sizes("ewise_add_scaled", size, a, b, out)
    status = _lib.nd_ewise_add_scaled_f32(pa, pb, value, pout, size)
    if status:
        raise _fail("ewise_add_scaled", status, size=size)


def ewise_axpby(a, b, alpha, beta, out, size):
    try:
        pa, pb, pout = a.address, b.address, out.address
    except AttributeError:
        pa, pb, pout = _ptr(a), _ptr(b), _ptr(out)
    if size > a.size or size > b.size or size > out.size or size < 0:
        _check_sizes("ewise_axpby", size, a, b, out)
    status = _lib.nd_ewise_axpby_f32(pa, pb, alpha, beta, pout, size)
    if status:
        raise _fail("ewise_axpby", status, size=size)


_DROPOUT_THRESHOLD_MAX = 1 << 24
_DROPOUT_SEED_MAX = (1 << 32) - 1


def _check_dropout_draw(threshold, seed):
    """The clear error for a threshold or seed the kernel would refuse (ctypes would silently
    truncate a seed of 2^64 or more to a valid one, so the range is checked here)."""
    if not 0 <= threshold <= _DROPOUT_THRESHOLD_MAX:
        raise ValueError(f"ewise_dropout: threshold {threshold} outside [0, 2^24]")
    raise ValueError(f"ewise_dropout: seed {seed} outside [0, 2^32)")


def ewise_dropout(a, out, size, threshold, scale, seed):
    try:
        pa, pout = a.address, out.address
    except AttributeError:
        pa, pout = _ptr(a), _ptr(out)
    if size > a.size or size > out.size or size < 0:
        _check_sizes("ewise_dropout", size, a, out)
    if not (0 <= threshold <= _DROPOUT_THRESHOLD_MAX and 0 <= seed <= _DROPOUT_SEED_MAX):
        _check_dropout_draw(threshold, seed)
    try:
        status = _lib.nd_ewise_dropout_f32(pa, pout, size, threshold, scale, seed)
    except ctypes.ArgumentError as error:
        raise TypeError(f"ewise_dropout: size, threshold and seed must be integers, got "
                        f"{size!r}, {threshold!r}, {seed!r}") from error
    if status:
        raise _fail("ewise_dropout", status, size=size, threshold=threshold, seed=seed)


def _check_row_sizes(name, size, period, a, row, out):
    """The clear error for sizes a row kernel would refuse or buffers it would overrun; size 0
    reads and writes nothing, whatever the period."""
    if size == 0:
        return
    if size < 0:
        raise ValueError(f"{name}: negative size {size}")
    if period < 1 or size % period:
        raise ValueError(f"{name}: size {size} is not a whole number of rows of period {period}")
    for label, handle, needed in (("a", a, size), ("row", row, period), ("out", out, size)):
        if needed > handle.size:
            raise ValueError(f"{name}: {label} needs {needed} elements for size={size}, "
                             f"period={period}, its buffer has {handle.size}")


def _row_binary(name):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def row_op(a, row, out, size, period):
        try:
            pa, prow, pout = a.address, row.address, out.address
        except AttributeError:
            pa, prow, pout = _ptr(a), _ptr(row), _ptr(out)
        # Ordered so that size % period only runs once period >= 1.
        if size > a.size or size > out.size or size < 0 or not 0 < period <= row.size \
                or size % period:
            _check_row_sizes(name, size, period, a, row, out)
        status = kernel(pa, prow, pout, size, period)
        if status:
            raise _fail(name, status, size=size, period=period)

    row_op.__name__ = name
    return row_op


ewise_add_row = _row_binary("ewise_add_row")
ewise_mul_row = _row_binary("ewise_mul_row")


# Reductions
def _reduction(name):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def reduce(a, out, reduce_size, out_size):
        try:
            pa, pout = a.address, out.address
        except AttributeError:
            pa, pout = _ptr(a), _ptr(out)
        if reduce_size * out_size > a.size or out_size > out.size:
            raise ValueError(f"{name}: {out_size} x {reduce_size} elements exceed buffers of "
                             f"{a.size} (input) and {out.size} (output)")
        status = kernel(pa, pout, reduce_size, out_size)
        if status:
            raise _fail(name, status, reduce_size=reduce_size, out_size=out_size)

    reduce.__name__ = name
    return reduce


reduce_sum = _reduction("reduce_sum")
reduce_max = _reduction("reduce_max")
reduce_logsumexp = _reduction("reduce_logsumexp")


# Matrix multiply
def matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, gate=None, relu=False,
           bias=None, dropout=None):
    try:
        pa, pb, pout = a.address, b.address, out.address
    except AttributeError:
        pa, pb, pout = _ptr(a), _ptr(b), _ptr(out)
    if gate is not None or bias is not None:
        # The epilogue buffers' lengths, named as the other devices name them (C's status for
        # them is the generic out-of-bounds one).
        for name, handle, needed in (("gate", gate, batch * m * n), ("bias", bias, n)):
            if handle is not None and handle.size < needed:
                raise ValueError(f"matmul: the {name} holds {handle.size} elements, {needed} "
                                 f"needed")
    pgate = None if gate is None else _ptr(gate)
    pbias = None if bias is None else _ptr(bias)
    threshold, scale, seed = (0, 1.0, 0) if dropout is None else dropout
    if dropout is not None and not (0 <= threshold <= 2**24 and 0 <= seed < 2**32):
        raise ValueError(f"matmul: dropout threshold {threshold} (0 to 2^24) or seed {seed} "
                         f"(0 to 2^32) out of range")
    # One int64 array for the 21 sizes, cached unless dropout's seed changes them.
    sizes = (_i64 if dropout is None else _i64_fresh)((
        a.size, b.size, out.size, batch, m, k, n, a_offset, a_batch_stride, a_row_stride,
        a_col_stride, b_offset, b_batch_stride, b_row_stride, b_col_stride,
        0 if gate is None else gate.size, 1 if relu else 0, 0 if bias is None else bias.size,
        0 if dropout is None else 1, threshold, seed))
    status = _lib.nd_matmul_sizes_f32(pa, pb, pout, pgate, pbias, scale, sizes)
    if status:
        raise _fail("matmul", status, batch=batch, m=m, k=k, n=n,
                    a=(a_offset, a_batch_stride, a_row_stride, a_col_stride, a.size),
                    b=(b_offset, b_batch_stride, b_row_stride, b_col_stride, b.size),
                    out=out.size, gate=None if gate is None else gate.size,
                    bias=None if bias is None else bias.size)


# Convolution
def _conv(name, first_elements, second_elements, out_elements):
    kernel = getattr(_lib, f"nd_{name}_f32")

    def conv(first, second, out, n, h, w_, c, k, kh, kw, oh, ow,
             stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
        sizes = dict(n=n, h=h, w=w_, c=c, k=k, kh=kh, kw=kw, oh=oh, ow=ow, stride=(stride_h,
                     stride_w), padding=(pad_h, pad_w), dilation=(dil_h, dil_w), groups=groups)
        if groups < 1 or c % groups or k % groups:
            raise ValueError(f"{name}: groups={groups} must divide channels c={c} and k={k}")
        addresses = (_ptr(first), _ptr(second), _ptr(out))
        needed = (first_elements(sizes), second_elements(sizes), out_elements(sizes))
        for label, handle, count in zip(("first input", "second input", "output"),
                                        (first, second, out), needed, strict=True):
            if count > handle.size:
                raise ValueError(f"{name}: the {label} needs {count} elements, its buffer has "
                                 f"{handle.size} ({sizes})")
        status = kernel(*addresses, n, h, w_, c, k, kh, kw, oh, ow,
                        stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
        if status:
            raise _fail(name, status, **sizes)

    conv.__name__ = name
    return conv


def _x_size(s):
    return s["n"] * s["h"] * s["w"] * s["c"]


def _w_size(s):
    return s["kh"] * s["kw"] * (s["c"] // s["groups"]) * s["k"]


def _y_size(s):
    return s["n"] * s["oh"] * s["ow"] * s["k"]


conv2d_forward = _conv("conv2d_forward", _x_size, _w_size, _y_size)
conv2d_backward_input = _conv("conv2d_backward_input", _y_size, _w_size, _x_size)
conv2d_backward_weight = _conv("conv2d_backward_weight", _x_size, _y_size, _w_size)


# Threads
def set_num_threads(n):
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _lib.nd_set_num_threads(int(n))


def get_num_threads():
    return _lib.nd_get_num_threads()
