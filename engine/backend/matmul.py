"""Matrix multiply on NDArrays: batched, batch dimensions broadcast, transposed and broadcast
operands passed to the device kernel as strides (never copied). Backend layer, used by NDArray.
"""

import math

import numpy as np

from .dropout import dropout as dropout_array
from .dropout import protocol_arguments

_ONES_ROWS = {}
_ONES_CACHE_LIMIT = 64


def ones_row(device, dtype, n):
    """A cached, never written (1, n) array of ones."""
    key = (device.name, dtype, n)
    row = _ONES_ROWS.get(key)
    if row is None:
        if len(_ONES_ROWS) >= _ONES_CACHE_LIMIT:
            _ONES_ROWS.clear()
        row = _ONES_ROWS[key] = device.empty((1, n), dtype)
        row.fill(1.0)
    return row


def matmul(a, b, gate=None, relu=False, bias=None, dropout=None):
    """Batched matmul with broadcast batch dimensions; transposed and broadcast operands are
    passed to the kernel as strides, never copied. Epilogues in the same kernel, in this order:
    `bias` (an NDArray of the result's last dimension, shape (n,) or (1, n)) added to every row;
    `dropout` ((p, seed), as backend.dropout draws it over the compact result); `gate` (an
    NDArray of the result's shape) zeroes the result where gate <= 0, ReLU's gradient fused into
    the product that computes it; `relu` applies ReLU. Both arrays must have the result's device
    and dtype."""
    a_shape, b_shape = a.shape, b.shape
    if len(a_shape) == 2 and len(b_shape) == 2 and a.device is b.device:
        # The common case (every Linear layer): no batch axes to resolve.
        m, k = a_shape
        n = b_shape[1]
        if k == b_shape[0] and m and n and k:
            out = a._new((m, n))
            a_strides, b_strides = a.strides, b.strides
            a.device.matmul(a.handle, b.handle, out.handle, 1, m, k, n,
                            a.offset, 0, a_strides[0], a_strides[1],
                            b.offset, 0, b_strides[0], b_strides[1],
                            **_epilogue(gate, relu, bias, dropout, out))
            return out
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul needs operands of rank >= 2, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    if a.device != b.device:
        raise ValueError(f"matmul across devices {a.device} and {b.device}")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch_shape = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    batch = math.prod(batch_shape)
    out = a._new(batch_shape + (m, n))
    epilogue = _epilogue(gate, relu, bias, dropout, out)
    if batch == 0 or m == 0 or n == 0:
        return out
    if k == 0:
        out.fill(0.0)
        if bias is not None:  # the bias alone; zeros stay zeros through the other epilogues
            out = out + bias.reshape((n,)).broadcast_to(out.shape)
            out = dropout_array(out, *dropout) if dropout is not None else out
            out = out.relu_grad(gate) if gate is not None else out
            out = out.relu() if relu else out
        return out
    a3 = as_batch3(a.broadcast_to(batch_shape + (m, k)), batch)
    b3 = as_batch3(b.broadcast_to(batch_shape + (k, n)), batch)
    a.device.matmul(a3.handle, b3.handle, out.handle, batch, m, k, n,
                    a3.offset, *a3.strides, b3.offset, *b3.strides, **epilogue)
    return out


# Read-only keyword dictionaries for the products without a buffer or dropout to pass.
_NO_EPILOGUE, _RELU_ONLY = {}, {"relu": True}


def _epilogue(gate, relu, bias, dropout, out):
    """The device call's keywords for the epilogues asked ({} for none): the compact handles of the
    gate and the bias, once their shapes, devices and dtypes are checked against the result
    `out`, dropout's protocol arguments and relu."""
    if gate is None and bias is None and dropout is None:  # every product calls this
        return _RELU_ONLY if relu else _NO_EPILOGUE
    keywords = {"relu": True} if relu else {}
    if dropout is not None:
        keywords["dropout"] = protocol_arguments(*dropout)
    for name, array, shapes in (("gate", gate, (out.shape,)),
                                ("bias", bias, ((out.shape[-1],), (1, out.shape[-1])))):
        if array is None:
            continue
        if array.shape not in shapes:
            raise ValueError(f"matmul: the {name} has shape {array.shape}, the product "
                             f"{out.shape}")
        if array.device != out.device or array.dtype != out.dtype:
            raise ValueError(f"matmul: the {name} ({array.dtype} on {array.device}) must match "
                             f"the product ({out.dtype} on {out.device})")
        keywords[name] = array.compact().handle
    return keywords


def as_batch3(array, batch):
    """A rank-3 (batch, rows, cols) view of `array`; compacts only when its batch axes cannot be
    expressed with one stride."""
    lead_shape, lead_strides = array.shape[:-2], array.strides[:-2]
    dims = [(n, s) for n, s in zip(lead_shape, lead_strides) if n != 1]
    if not dims:
        batch_stride = 0
    elif all(s == 0 for _, s in dims):
        batch_stride = 0
    elif all(dims[i][1] == dims[i + 1][1] * dims[i + 1][0] for i in range(len(dims) - 1)):
        batch_stride = dims[-1][1]
    else:
        array = array.compact()
        batch_stride = array.shape[-2] * array.shape[-1]
    return array._like((batch,) + array.shape[-2:], (batch_stride,) + array.strides[-2:],
                       array.offset)
