"""NDArray: a strided view (shape, strides in elements, offset) over a device handle.
Backend layer. Views (reshape of compact data, permute, broadcast_to, getitem, as_strided) are
metadata only; `compact()` is the one gateway from strided to dense; every computation is one call
of the device protocol (see protocol.py) writing into a freshly allocated `out`.
"""

import functools
import math
import numbers

import numpy as np

from .device import BackendDevice, default_device


def prod(shape):
    return math.prod(shape)


@functools.lru_cache(maxsize=4096)
def compact_strides(shape):
    strides, stride = [], 1
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    return tuple(reversed(strides))


class NDArray:
    """An n-dimensional array on a device. Build one from a numpy array, a nested list, a scalar or
    another NDArray (optionally moving it to `device`)."""

    __slots__ = ("_shape", "_strides", "_offset", "_device", "_handle", "_dtype")
    __array_priority__ = 1000  # numpy scalars on the left defer to our reflected operators

    def __init__(self, other, device=None, dtype=None):
        if isinstance(other, NDArray):
            device = device or other.device
            dtype = dtype or other.dtype
            if device == other.device and dtype == other.dtype:
                copy = other._new(other.shape)
                device.compact(other.handle, copy.handle, other.shape, other.strides, other.offset)
                self._init_from(copy)
                return
            other = other.numpy()
        device = device or default_device()
        if dtype is None:
            # Keep a float array's precision where the device has it; float32 otherwise.
            native = isinstance(other, np.ndarray) and other.dtype.name in device.dtypes
            dtype = other.dtype.name if native else "float32"
        dtype = device.check_dtype(dtype)
        host = np.array(other, dtype=dtype, order="C", copy=None)
        array = NDArray.make(host.shape, device=device, dtype=dtype)
        device.from_numpy(host, array._handle)
        self._init_from(array)

    def _init_from(self, other):
        self._shape = other._shape
        self._strides = other._strides
        self._offset = other._offset
        self._device = other._device
        self._handle = other._handle
        self._dtype = other._dtype

    @staticmethod
    def make(shape, strides=None, device=None, handle=None, offset=0, dtype="float32"):
        """An NDArray over `handle` (a new buffer of prod(shape) elements when None)."""
        array = object.__new__(NDArray)
        array._shape = tuple(shape)
        array._strides = compact_strides(array._shape) if strides is None else tuple(strides)
        array._offset = offset
        array._device = device if device is not None else default_device()
        array._dtype = dtype
        array._handle = array._device.alloc(prod(array._shape), dtype) if handle is None else handle
        return array

    def _like(self, shape, strides, offset):
        """A view sharing this array's handle."""
        return NDArray.make(shape, strides, self._device, self._handle, offset, self._dtype)

    def _new(self, shape):
        return NDArray.make(shape, None, self._device, None, 0, self._dtype)

    # properties
    shape = property(lambda self: self._shape)
    strides = property(lambda self: self._strides)
    offset = property(lambda self: self._offset)
    device = property(lambda self: self._device)
    handle = property(lambda self: self._handle)
    dtype = property(lambda self: self._dtype)
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: prod(self._shape))

    def __repr__(self):
        return f"NDArray({self.numpy()!r}, device={self.device})"

    def __str__(self):
        return str(self.numpy())

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d NDArray")
        return self._shape[0]

    def __bool__(self):
        raise TypeError("the truth value of an NDArray is ambiguous; compare explicitly")

    # memory
    def fill(self, value):
        if self.is_compact():
            self._device.fill(self._handle, value, self.size)
        else:
            self._device.scalar_setitem(self.size, value, self._handle, self._shape,
                                        self._strides, self._offset)

    def numpy(self):
        return self._device.to_numpy(self._handle, self._shape, self._strides, self._offset)

    def to(self, device):
        return self if device == self._device else NDArray(self.numpy(), device=device,
                                                           dtype=self._dtype)

    def astype(self, dtype):
        return self if np.dtype(dtype).name == self._dtype else NDArray(
            self.numpy(), device=self._device, dtype=dtype)

    def is_compact(self):
        return self._offset == 0 and self._strides == compact_strides(self._shape)

    def compact(self):
        if self.is_compact():
            return self
        out = self._new(self._shape)
        self._device.compact(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

    # views
    def as_strided(self, shape, strides):
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {tuple(shape)} and strides {tuple(strides)} "
                             "differ in rank")
        return self._like(tuple(shape), tuple(strides), self._offset)

    @property
    def flat(self):
        """A 1-D view of all elements (copies first when the array is not compact)."""
        return self.reshape((self.size,))

    def _resolve_shape(self, new_shape):
        new_shape = tuple(int(n) for n in new_shape)
        if new_shape.count(-1) > 1:
            raise ValueError(f"reshape: more than one -1 in {new_shape}")
        if -1 in new_shape:
            known = prod(n for n in new_shape if n != -1)
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape array of shape {self._shape} into {new_shape}")
            new_shape = tuple(self.size // known if n == -1 else n for n in new_shape)
        if any(n < 0 for n in new_shape) or prod(new_shape) != self.size:
            raise ValueError(f"cannot reshape array of shape {self._shape} (size {self.size}) "
                             f"into {new_shape}")
        return new_shape

    def reshape(self, new_shape):
        """A view when this array is dense row-major (any offset); otherwise a compact copy."""
        new_shape = self._resolve_shape(new_shape)
        if new_shape == self._shape:
            return self
        base = self if self._strides == compact_strides(self._shape) else self.compact()
        return base._like(new_shape, compact_strides(new_shape), base._offset)

    def permute(self, new_axes):
        axes = tuple(int(a) % self.ndim if self.ndim else int(a) for a in new_axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: axes {tuple(new_axes)} are not a permutation of "
                             f"range({self.ndim}) for shape {self._shape}")
        return self._like(tuple(self._shape[a] for a in axes),
                          tuple(self._strides[a] for a in axes), self._offset)

    def swapaxes(self, a, b):
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return self.permute(axes)

    def broadcast_to(self, new_shape):
        new_shape = tuple(int(n) for n in new_shape)
        if new_shape == self._shape:
            return self
        lead = len(new_shape) - self.ndim
        if lead < 0:
            raise ValueError(f"cannot broadcast shape {self._shape} to {new_shape}")
        strides = [0] * lead
        for old, new, stride in zip(self._shape, new_shape[lead:], self._strides):
            if old == new:
                strides.append(stride)
            elif old == 1:
                strides.append(0)
            else:
                raise ValueError(f"cannot broadcast shape {self._shape} to {new_shape}")
        return self._like(new_shape, tuple(strides), self._offset)

    def flip(self, axes):
        """A view reversed along `axes` (negative strides; compact() makes it dense)."""
        axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
        index = [slice(None)] * self.ndim
        for a in axes:
            if not -self.ndim <= a < self.ndim:
                raise ValueError(f"flip: axis {a} out of range for shape {self._shape}")
            index[a] = slice(None, None, -1)
        return self[tuple(index)]

    def pad(self, axes):
        """A new array zero-padded by `axes` = ((before, after), ...) per axis, as in numpy."""
        axes = tuple(tuple(int(p) for p in pair) for pair in axes)
        if len(axes) != self.ndim or any(len(p) != 2 or min(p) < 0 for p in axes):
            raise ValueError(f"pad: need one non-negative (before, after) pair per axis of "
                             f"shape {self._shape}, got {axes}")
        out = self._new(tuple(n + b + e for n, (b, e) in zip(self._shape, axes)))
        out.fill(0.0)
        out[tuple(slice(b, b + n) for n, (b, _) in zip(self._shape, axes))] = self
        return out

    def _index(self, idxs):
        """(shape, strides, offset) of the basic-indexing view `self[idxs]` (numpy semantics:
        ints drop their axis, slices keep it, `...` and None are understood)."""
        if not isinstance(idxs, tuple):
            idxs = (idxs,)
        if sum(i is Ellipsis for i in idxs) > 1:
            raise IndexError("an index can only have a single ellipsis")
        n_real = sum(1 for i in idxs if i is not None and i is not Ellipsis)
        if n_real > self.ndim:
            raise IndexError(f"too many indices ({n_real}) for array of shape {self._shape}")
        if Ellipsis in idxs:
            at = idxs.index(Ellipsis)
            idxs = idxs[:at] + (slice(None),) * (self.ndim - n_real) + idxs[at + 1:]
        else:
            idxs = idxs + (slice(None),) * (self.ndim - n_real)
        shape, strides, offset, axis = [], [], self._offset, 0
        for idx in idxs:
            if idx is None:
                shape.append(1)
                strides.append(0)
                continue
            n, stride = self._shape[axis], self._strides[axis]
            if isinstance(idx, slice):
                start, stop, step = idx.indices(n)
                length = len(range(start, stop, step))
                offset += start * stride if length else 0
                shape.append(length)
                strides.append(stride * step)
            elif isinstance(idx, numbers.Integral) and not isinstance(idx, bool):
                i = int(idx)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n} "
                                     f"(array shape {self._shape})")
                offset += (i % n) * stride
            else:
                raise TypeError(f"unsupported index {idx!r}: use ints, slices, None or ...")
            axis += 1
        return tuple(shape), tuple(strides), offset

    def __getitem__(self, idxs):
        return self._like(*self._index(idxs))

    def __setitem__(self, idxs, other):
        shape, strides, offset = self._index(idxs)
        if isinstance(other, NDArray):
            if other.shape != shape:
                other = other.broadcast_to(shape)
            other = other.to(self._device).compact()
            self._device.ewise_setitem(other._handle, self._handle, shape, strides, offset)
        else:
            self._device.scalar_setitem(prod(shape), float(other), self._handle, shape, strides,
                                        offset)

    # elementwise
    def _ewise(self, other, ewise_fn, scalar_fn):
        a = self.compact()
        out = self._new(self._shape)
        if isinstance(other, NDArray):
            if other._shape != self._shape:
                raise ValueError(f"elementwise op on shapes {self._shape} and {other._shape}: "
                                 "broadcast explicitly first")
            if other._device != self._device:
                raise ValueError(f"elementwise op across devices {self._device} and "
                                 f"{other._device}")
            ewise_fn(a._handle, other.compact()._handle, out._handle, out.size)
        else:
            scalar_fn(a._handle, float(other), out._handle, out.size)
        return out

    def _unary(self, fn):
        a = self.compact()
        out = self._new(self._shape)
        fn(a._handle, out._handle, out.size)
        return out

    def __add__(self, other):
        return self._ewise(other, self._device.ewise_add, self._device.scalar_add)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        return self._ewise(other, self._device.ewise_mul, self._device.scalar_mul)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._ewise(other, self._device.ewise_div, self._device.scalar_div)

    def __rtruediv__(self, other):
        out = self._new(self._shape)
        self._device.scalar_rdiv(self.compact()._handle, float(other), out._handle, out.size)
        return out

    def __neg__(self):
        return self._unary(self._device.ewise_neg)

    def __pow__(self, other):
        if isinstance(other, NDArray):
            raise TypeError("NDArray ** NDArray is not supported; use a scalar exponent")
        return self._ewise(other, None, self._device.scalar_power)

    def maximum(self, other):
        return self._ewise(other, self._device.ewise_maximum, self._device.scalar_maximum)

    def __eq__(self, other):
        return self._ewise(other, self._device.ewise_eq, self._device.scalar_eq)

    def __ge__(self, other):
        return self._ewise(other, self._device.ewise_ge, self._device.scalar_ge)

    def __gt__(self, other):
        return self._ewise(other, self._device.ewise_gt, self._device.scalar_gt)

    def __ne__(self, other):
        return 1 - (self == other)

    def __lt__(self, other):
        return 1 - (self >= other)

    def __le__(self, other):
        return 1 - (self > other)

    __hash__ = object.__hash__

    def log(self):
        return self._unary(self._device.ewise_log)

    def exp(self):
        return self._unary(self._device.ewise_exp)

    def tanh(self):
        return self._unary(self._device.ewise_tanh)

    def relu(self):
        return self._unary(self._device.ewise_relu)

    def sigmoid(self):
        return self._unary(self._device.ewise_sigmoid)

    def sqrt(self):
        return self._unary(self._device.ewise_sqrt)

    # reductions
    def _reduce(self, fn, axis, keepdims):
        if axis is None:
            axes = tuple(range(self.ndim))
        else:
            axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
            for a in axes:
                if not -self.ndim <= a < max(self.ndim, 1):
                    raise ValueError(f"axis {a} is out of range for shape {self._shape}")
            axes = tuple(sorted(set(a % self.ndim for a in axes))) if self.ndim else ()
        kept = tuple(a for a in range(self.ndim) if a not in axes)
        moved = self if axes == tuple(range(self.ndim - len(axes), self.ndim)) else \
            self.permute(kept + axes)
        reduce_size = prod(self._shape[a] for a in axes)
        out_shape = tuple(self._shape[a] for a in kept)
        if reduce_size == 0 and fn is self._device.reduce_max:
            raise ValueError(f"max over an empty axis of shape {self._shape}")
        out = self._new(out_shape)
        fn(moved.compact()._handle, out._handle, reduce_size, out.size)
        if keepdims:
            out = out.reshape(tuple(1 if a in axes else n for a, n in enumerate(self._shape)))
        return out

    def sum(self, axis=None, keepdims=False):
        return self._reduce(self._device.reduce_sum, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return self._reduce(self._device.reduce_max, axis, keepdims)

    # matmul
    def __matmul__(self, other):
        return matmul(self, other)


def _matrix_strides(array):
    """(batch stride, row stride, col stride, offset) of a rank-3 view, collapsing nothing."""
    return array.strides[0], array.strides[1], array.strides[2], array.offset


def matmul(a, b):
    """Batched matmul with broadcast batch dimensions; transposed and broadcast operands are
    passed to the kernel as strides, never copied."""
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul needs operands of rank >= 2, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    if a.device != b.device:
        raise ValueError(f"matmul across devices {a.device} and {b.device}")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if a.ndim == 2 and b.ndim == 2 and m and n and k:
        # The common case (every Linear layer): no batch axes to resolve.
        out = NDArray.make((m, n), device=a.device, dtype=a.dtype)
        a.device.matmul(a.handle, b.handle, out.handle, 1, m, k, n,
                        a.offset, 0, a.strides[0], a.strides[1],
                        b.offset, 0, b.strides[0], b.strides[1])
        return out
    batch_shape = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    batch = prod(batch_shape)
    out = NDArray.make(batch_shape + (m, n), device=a.device, dtype=a.dtype)
    if batch == 0 or m == 0 or n == 0:
        return out
    if k == 0:
        out.fill(0.0)
        return out
    a3 = _as_batch3(a.broadcast_to(batch_shape + (m, k)), batch)
    b3 = _as_batch3(b.broadcast_to(batch_shape + (k, n)), batch)
    a.device.matmul(a3.handle, b3.handle, out.handle, batch, m, k, n,
                    a3.offset, *a3.strides, b3.offset, *b3.strides)
    return out


def _as_batch3(array, batch):
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


def array(a, dtype="float32", device=None):
    return NDArray(a, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    return (device or default_device()).empty(shape, dtype)


def full(shape, fill_value, dtype="float32", device=None):
    return (device or default_device()).full(shape, fill_value, dtype)


def broadcast_to(array, new_shape):
    return array.broadcast_to(new_shape)


def reshape(array, new_shape):
    return array.reshape(new_shape)


def maximum(a, b):
    return a.maximum(b)


def log(a):
    return a.log()


def exp(a):
    return a.exp()


def tanh(a):
    return a.tanh()


def summation(a, axis=None, keepdims=False):
    return a.sum(axis=axis, keepdims=keepdims)


__all__ = ["NDArray", "BackendDevice", "array", "empty", "full", "matmul", "broadcast_to",
           "reshape", "maximum", "log", "exp", "tanh", "summation", "compact_strides", "prod"]
