"""NDArray: a strided view (shape, strides in elements, offset) over a device handle.
Backend layer. Views (reshape of compact data, permute, broadcast_to, getitem, as_strided) are
metadata only; `compact()` is the one gateway from strided to dense; every computation is one call
of the device protocol (see protocol.py) writing into a freshly allocated `out`.
"""

import math
import numbers

import numpy as np

from .device import BackendDevice, default_device
from .matmul import matmul, ones_row
from .reduce_plan import reduce_plan
from .strides import (
    canonical_strides,
    compact_strides,
    index_view,
    is_permuted_dense,
    repeated_row_period,
)
from .write_stamps import stamp

prod = math.prod
_new_object = object.__new__


class NDArray:
    """An n-dimensional array on a device. Build one from a numpy array, a nested list, a scalar or
    another NDArray (optionally moving it to `device`)."""

    # Plain slots rather than read-only properties: attribute reads are the hottest path of every
    # op, and a property costs a Python call per read. Treat them as read-only all the same.
    __slots__ = ("shape", "strides", "offset", "device", "handle", "dtype")
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
        device.from_numpy(host, array.handle)
        self._init_from(array)

    def _init_from(self, other):
        self.shape = other.shape
        self.strides = other.strides
        self.offset = other.offset
        self.device = other.device
        self.handle = other.handle
        self.dtype = other.dtype

    @staticmethod
    def make(shape, strides=None, device=None, handle=None, offset=0, dtype="float32"):
        """An NDArray over `handle` (a new buffer of prod(shape) elements when None)."""
        array = _new_object(NDArray)
        array.shape = shape = tuple(shape)
        if strides is None:
            array.strides = compact_strides(shape)
        else:
            array.strides = canonical_strides(shape, tuple(strides)) if 1 in shape else tuple(
                strides)
        array.offset = offset
        if device is None:
            device = default_device()
        array.device = device
        array.dtype = dtype
        array.handle = device.alloc(prod(shape), dtype) if handle is None else handle
        return array

    def _like(self, shape, strides, offset):
        """A view sharing this array's handle (`shape` and `strides` are tuples)."""
        array = _new_object(NDArray)
        array.shape = shape
        array.strides = canonical_strides(shape, strides) if 1 in shape else strides
        array.offset = offset
        array.device = self.device
        array.handle = self.handle
        array.dtype = self.dtype
        return array

    def _new(self, shape):
        """A new compact array of `shape` (a tuple) on this array's device and dtype."""
        array = _new_object(NDArray)
        array.shape = shape
        array.strides = compact_strides(shape)
        array.offset = 0
        array.device = device = self.device
        array.dtype = dtype = self.dtype
        array.handle = device.alloc(prod(shape), dtype)
        return array

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return prod(self.shape)

    def __repr__(self):
        return f"NDArray({self.numpy()!r}, device={self.device})"

    def __str__(self):
        return str(self.numpy())

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d NDArray")
        return self.shape[0]

    def __bool__(self):
        raise TypeError("the truth value of an NDArray is ambiguous; compare explicitly")

    # memory
    def fill(self, value):
        stamp(self.handle)
        if self.is_compact():
            self.device.fill(self.handle, value, self.size)
        else:
            self.device.scalar_setitem(self.size, value, self.handle, self.shape,
                                       self.strides, self.offset)

    def numpy(self):
        return self.device.to_numpy(self.handle, self.shape, self.strides, self.offset)

    def to(self, device):
        return self if device is self.device or device == self.device else NDArray(
            self.numpy(), device=device, dtype=self.dtype)

    def astype(self, dtype):
        # The string test first: np.dtype(...).name costs microseconds.
        if dtype == self.dtype:
            return self
        return self if np.dtype(dtype).name == self.dtype else NDArray(
            self.numpy(), device=self.device, dtype=dtype)

    def is_compact(self):
        return self.offset == 0 and self.strides == compact_strides(self.shape)

    def compact(self):
        shape = self.shape
        if self.offset == 0 and self.strides == compact_strides(shape):
            return self
        out = self._new(shape)
        self.device.compact(self.handle, out.handle, self.shape, self.strides, self.offset)
        return out

    def copy(self):
        """A new compact array holding this array's values (never shares its buffer)."""
        out = self._new(self.shape)
        self.device.compact(self.handle, out.handle, self.shape, self.strides, self.offset)
        return out

    # views
    def as_strided(self, shape, strides):
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {tuple(shape)} and strides {tuple(strides)} "
                             "differ in rank")
        return self._like(tuple(shape), tuple(strides), self.offset)

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
                raise ValueError(f"cannot reshape array of shape {self.shape} into {new_shape}")
            new_shape = tuple(self.size // known if n == -1 else n for n in new_shape)
        if any(n < 0 for n in new_shape) or prod(new_shape) != self.size:
            raise ValueError(f"cannot reshape array of shape {self.shape} (size {self.size}) "
                             f"into {new_shape}")
        return new_shape

    def reshape(self, new_shape):
        """A view when this array is dense row-major (any offset); otherwise a compact copy."""
        if type(new_shape) is tuple and new_shape == self.shape:
            return self
        new_shape = self._resolve_shape(new_shape)
        if new_shape == self.shape:
            return self
        base = self if self.strides == compact_strides(self.shape) else self.compact()
        return base._like(new_shape, compact_strides(new_shape), base.offset)

    def permute(self, new_axes):
        shape, strides = self.shape, self.strides
        if type(new_axes) is tuple and new_axes == (1, 0) and len(shape) == 2:
            # The matrix transpose (every matmul gradient), without the general checks.
            return self._like((shape[1], shape[0]), (strides[1], strides[0]), self.offset)
        ndim = len(shape)
        axes = tuple([int(a) % ndim if ndim else int(a) for a in new_axes])
        if sorted(axes) != list(range(ndim)):
            raise ValueError(f"permute: axes {tuple(new_axes)} are not a permutation of "
                             f"range({ndim}) for shape {self.shape}")
        return self._like(tuple([shape[a] for a in axes]), tuple([strides[a] for a in axes]),
                          self.offset)

    def swapaxes(self, a, b):
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return self.permute(axes)

    def broadcast_to(self, new_shape):
        if type(new_shape) is tuple and new_shape == self.shape:
            return self
        new_shape = tuple(int(n) for n in new_shape)
        if new_shape == self.shape:
            return self
        lead = len(new_shape) - self.ndim
        if lead < 0:
            raise ValueError(f"cannot broadcast shape {self.shape} to {new_shape}")
        strides = [0] * lead
        for old, new, stride in zip(self.shape, new_shape[lead:], self.strides):
            if old == new:
                strides.append(stride)
            elif old == 1:
                strides.append(0)
            else:
                raise ValueError(f"cannot broadcast shape {self.shape} to {new_shape}")
        return self._like(new_shape, tuple(strides), self.offset)

    def flip(self, axes):
        """A view reversed along `axes` (negative strides; compact() makes it dense)."""
        axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
        index = [slice(None)] * self.ndim
        for a in axes:
            if not -self.ndim <= a < self.ndim:
                raise ValueError(f"flip: axis {a} out of range for shape {self.shape}")
            index[a] = slice(None, None, -1)
        return self[tuple(index)]

    def pad(self, axes):
        """A new array zero-padded by `axes` = ((before, after), ...) per axis, as in numpy."""
        axes = tuple(tuple(int(p) for p in pair) for pair in axes)
        if len(axes) != self.ndim or any(len(p) != 2 or min(p) < 0 for p in axes):
            raise ValueError(f"pad: need one non-negative (before, after) pair per axis of "
                             f"shape {self.shape}, got {axes}")
        out = self._new(tuple(n + b + e for n, (b, e) in zip(self.shape, axes)))
        out.fill(0.0)
        out[tuple(slice(b, b + n) for n, (b, _) in zip(self.shape, axes))] = self
        return out

    def _index(self, idxs):
        return index_view(self.shape, self.strides, self.offset, idxs)

    def __getitem__(self, idxs):
        return self._like(*self._index(idxs))

    def __setitem__(self, idxs, other):
        shape, strides, offset = self._index(idxs)
        stamp(self.handle)
        if isinstance(other, NDArray):
            if other.shape != shape:
                other = other.broadcast_to(shape)
            other = other.to(self.device).compact()
            self.device.ewise_setitem(other.handle, self.handle, shape, strides, offset)
        else:
            self.device.scalar_setitem(prod(shape), float(other), self.handle, shape, strides,
                                        offset)

    # elementwise
    def _ewise(self, other, ewise_fn, scalar_fn, row_fn=None):
        # Written out flat (no helper calls): this runs once per elementwise op. An input that had
        # to be compacted is a fresh temporary, so it doubles as `out` (elementwise kernels allow
        # out to alias an input), which saves an allocation. A commutative op (`row_fn` given)
        # reads a broadcast row (a bias, a scale) as stored instead of compacting it.
        shape = self.shape
        self_compact = self.offset == 0 and self.strides == compact_strides(shape)
        if isinstance(other, NDArray):
            if other.shape != shape:
                raise ValueError(f"elementwise op on shapes {shape} and {other.shape}: "
                                 "broadcast explicitly first")
            if other.device is not self.device and other.device != self.device:
                raise ValueError(f"elementwise op across devices {self.device} and "
                                 f"{other.device}")
            other_compact = other.offset == 0 and other.strides == compact_strides(shape)
            if row_fn is not None and self_compact != other_compact:
                dense, row = (self, other) if self_compact else (other, self)
                # Every broadcast row has a stride-0 axis: other views skip the search.
                period = repeated_row_period(row) if 0 in row.strides else 0
                if period:
                    out = self._new(shape)
                    row_fn(dense.handle, row.handle, out.handle, prod(shape), period)
                    return out
            if (not self_compact and self.strides == other.strides and self.offset == 0
                    and other.offset == 0 and is_permuted_dense(shape, self.strides)):
                # Two views of one permuted layout (NHWC activations seen as NCHW): run over
                # the buffers as stored and keep the layout.
                out = self._new_like_view()
                ewise_fn(self.handle, other.handle, out.handle, prod(shape))
                return out
            a = self if self_compact else self.compact()
            if other_compact:
                b = other
                out = a if a is not self else self._new(shape)
            else:
                b = other.compact()
                # The result takes self's dtype whatever the layouts (mixed dtypes on cpu_numpy).
                out = b if b.dtype == self.dtype else (a if a is not self else self._new(shape))
            ewise_fn(a.handle, b.handle, out.handle, prod(shape))
        elif not self_compact and self.offset == 0 and is_permuted_dense(shape, self.strides):
            out = self._new_like_view()
            scalar_fn(self.handle, float(other), out.handle, prod(shape))
        else:
            a = self if self_compact else self.compact()
            out = a if a is not self else self._new(shape)
            scalar_fn(a.handle, float(other), out.handle, prod(shape))
        return out

    def _unary(self, fn):
        shape = self.shape
        if self.offset == 0 and self.strides == compact_strides(shape):
            a, out = self, self._new(shape)
        elif self.offset == 0 and is_permuted_dense(shape, self.strides):
            a, out = self, self._new_like_view()
        else:
            a = out = self.compact()
        fn(a.handle, out.handle, prod(shape))
        return out

    def _new_like_view(self):
        """A new array laid out like this permuted dense view: its strides over a fresh buffer."""
        out = self._new(self.shape)
        out.strides = self.strides
        return out

    def __add__(self, other):
        device = self.device
        return self._ewise(other, device.ewise_add, device.scalar_add, device.ewise_add_row)

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, NDArray):
            return self.add_scaled(other, -1.0)  # exact: a + (-1) * b rounds once, like a - b
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        device = self.device
        return self._ewise(other, device.ewise_mul, device.scalar_mul, device.ewise_mul_row)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._ewise(other, self.device.ewise_div, self.device.scalar_div)

    def __rtruediv__(self, other):
        value = float(other)
        a = self.compact()
        out = a if a is not self else self._new(self.shape)
        self.device.scalar_rdiv(a.handle, value, out.handle, prod(self.shape))
        return out

    def __neg__(self):
        return self._unary(self.device.ewise_neg)

    def __pow__(self, other):
        if isinstance(other, NDArray):
            raise TypeError("NDArray ** NDArray is not supported; use a scalar exponent")
        return self._ewise(other, None, self.device.scalar_power)

    def maximum(self, other):
        return self._ewise(other, self.device.ewise_maximum, self.device.scalar_maximum)

    def __eq__(self, other):
        return self._ewise(other, self.device.ewise_eq, self.device.scalar_eq)

    def __ge__(self, other):
        return self._ewise(other, self.device.ewise_ge, self.device.scalar_ge)

    def __gt__(self, other):
        return self._ewise(other, self.device.ewise_gt, self.device.scalar_gt)

    def __ne__(self, other):
        return 1 - (self == other)

    def __lt__(self, other):
        return 1 - (self >= other)

    def __le__(self, other):
        return 1 - (self > other)

    __hash__ = object.__hash__

    def log(self):
        return self._unary(self.device.ewise_log)

    def exp(self):
        return self._unary(self.device.ewise_exp)

    def tanh(self):
        return self._unary(self.device.ewise_tanh)

    def relu(self):
        return self._unary(self.device.ewise_relu)

    def sigmoid(self):
        return self._unary(self.device.ewise_sigmoid)

    def sqrt(self):
        return self._unary(self.device.ewise_sqrt)

    # fused pairs (one kernel each where NDArray arithmetic would launch two)
    def relu_grad(self, x):
        """0 where x <= 0, else self: the ReLU gradient of cotangent `self` at input `x`."""
        if not isinstance(x, NDArray):
            raise TypeError(f"relu_grad needs an NDArray input, got {type(x).__name__}")
        return self._ewise(x, self.device.ewise_relu_grad, None)

    def add_scaled(self, other, value):
        """self + value * other (arrays of one shape), in one pass."""
        if not isinstance(other, NDArray):
            raise TypeError(f"add_scaled needs an NDArray to scale, got {type(other).__name__}")
        if not isinstance(value, numbers.Real):
            raise TypeError(f"add_scaled needs a number to scale by, got {type(value).__name__}")
        value, fused = float(value), self.device.ewise_add_scaled
        return self._ewise(other, lambda a, b, out, size: fused(a, b, value, out, size), None)

    def axpby(self, alpha, other, beta):
        """alpha * self + beta * other (arrays of one shape), in one pass: a moving average."""
        if not isinstance(other, NDArray):
            raise TypeError(f"axpby needs an NDArray to add, got {type(other).__name__}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not isinstance(value, numbers.Real):
                raise TypeError(f"axpby needs a number as {name}, got {type(value).__name__}")
        alpha, beta, fused = float(alpha), float(beta), self.device.ewise_axpby
        return self._ewise(other, lambda a, b, out, size: fused(a, b, alpha, beta, out, size),
                           None)

    # reductions
    def _reduce(self, fn, axis, keepdims, sum_by_matmul=False):
        shape = self.shape
        order, reduce_size, out_shape, leading = reduce_plan(shape, axis, keepdims)
        device = self.device
        if reduce_size == 0 and fn is device.reduce_max:
            raise ValueError(f"max over an empty axis of shape {shape}")
        out = self._new(out_shape)
        kept_size = prod(out_shape)
        if (sum_by_matmul and leading and reduce_size > 1 and kept_size and self.offset == 0
                and self.strides == compact_strides(shape)):
            # A sum over the leading axes of dense data (the bias gradient of a Linear layer) is
            # ones(1, R) @ data(R, K): one kernel call instead of a transposed copy plus a reduce.
            ones = ones_row(device, self.dtype, reduce_size)
            device.matmul(ones.handle, self.handle, out.handle, 1, 1, reduce_size, kept_size,
                          0, 0, reduce_size, 1, 0, 0, kept_size, 1)
            return out
        if order is None:
            moved = self
        else:
            strides = self.strides
            moved = self._like(tuple([shape[a] for a in order]),
                               tuple([strides[a] for a in order]), self.offset)
        fn(moved.compact().handle, out.handle, reduce_size, kept_size)
        return out

    def sum(self, axis=None, keepdims=False):
        return self._reduce(self.device.reduce_sum, axis, keepdims, sum_by_matmul=True)

    def max(self, axis=None, keepdims=False):
        return self._reduce(self.device.reduce_max, axis, keepdims)

    def logsumexp(self, axis=None, keepdims=False):
        """log(sum(exp(self))) over `axis` in one kernel, without overflow; -inf over an empty
        axis."""
        return self._reduce(self.device.reduce_logsumexp, axis, keepdims)

    # matmul
    def __matmul__(self, other):
        return matmul(self, other)


__all__ = ["NDArray", "BackendDevice", "matmul", "compact_strides", "prod"]
