"""Tensor and reverse-mode automatic differentiation, in needle's design (Value/Op/Tensor).
Engine layer, above engine.backend. Gradients are built from differentiable ops, so the gradient
of a gradient works; the topological sort is iterative so deep graphs never hit recursion limits.
"""

import contextlib
import threading

import numpy as np

from .backend import NDArray, default_device, write_stamps
from .backend.device import BackendDevice


class _GradState(threading.local):
    grad_enabled = True  # the class attribute is every thread's default


_state = _GradState()
_new_object = object.__new__


# Counts in-place writes of device buffers (optimizer steps update parameters in place; NDArray
# setitem and fill stamp theirs). A node keeps the count when it was made, so backward tells a
# graph whose inputs' buffers were written after it was built, through any alias of them
# (`.data`, `detach()`, views). One clock for all threads.
_clock = write_stamps.clock


def mark_changed_in_place(leaves):
    """Record that the data of these leaf Tensors changed in place: a graph built before on them,
    or on any alias of their buffers, would differentiate with the new values, so its backward
    raises instead."""
    for leaf in leaves:
        write_stamps.stamp(leaf.realize_cached_data().handle)


def grad_enabled():
    return _state.grad_enabled


@contextlib.contextmanager
def no_grad():
    """Within this block ops record no graph: results are detached constants."""
    previous = grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    previous = grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


class Op:
    """An operator: `compute` on NDArrays, `gradient` on Tensors (itself differentiable)."""

    def __call__(self, *args):
        raise TypeError(f"{type(self).__name__}: derive from TensorOp or TensorTupleOp")

    def compute(self, *args):
        raise TypeError(f"{type(self).__name__} does not define compute (an abstract Op)")

    def gradient(self, out_grad, node):
        raise TypeError(f"{type(self).__name__} does not define gradient (an abstract Op)")

    def gradient_as_tuple(self, out_grad, node):
        grads = self.gradient(out_grad, node)
        if isinstance(grads, tuple):
            return grads
        if isinstance(grads, list):
            return tuple(grads)
        return (grads,)


class TensorOp(Op):
    def __call__(self, *args):
        return Tensor.make_from_op(self, args)


class TensorTupleOp(Op):
    def __call__(self, *args):
        return TensorTuple.make_from_op(self, args)


class Value:
    """A node of the graph: the op that made it, its inputs (in order), and its realized data."""

    __slots__ = ("op", "inputs", "cached_data", "requires_grad", "grad", "generation",
                 "__weakref__")

    def realize_cached_data(self):
        if self.cached_data is None:
            self.cached_data = self.op.compute(*[x.realize_cached_data() for x in self.inputs])
        return self.cached_data

    def is_leaf(self):
        return self.op is None

    def _init(self, op, inputs, cached_data=None, requires_grad=None):
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        self.cached_data = cached_data
        self.requires_grad = requires_grad
        self.grad = None
        self.generation = _clock.now

    @classmethod
    def make_const(cls, data, requires_grad=False):
        value = _new_object(cls)
        value.op = None
        value.inputs = []
        value.cached_data = data
        value.requires_grad = requires_grad
        value.grad = None
        value.generation = _clock.now
        return value

    @classmethod
    def make_from_op(cls, op, inputs):
        # Runs once per op: written out flat (no helper calls, no generators) on purpose.
        data = op.compute(*[x.realize_cached_data() if x.cached_data is None else x.cached_data
                            for x in inputs])
        value = _new_object(cls)
        requires_grad = False
        if _state.grad_enabled:
            for x in inputs:
                if x.requires_grad:
                    requires_grad = True
                    break
        if requires_grad:
            value.op = op
            value.inputs = list(inputs)
        else:
            # No grad mode, or nothing upstream wants a gradient: keep no graph, so it is freed.
            value.op = None
            value.inputs = []
        value.cached_data = data
        value.requires_grad = requires_grad
        value.grad = None
        value.generation = _clock.now
        return value


class TensorTuple(Value):
    """A tuple of tensors produced by one op (split); index it to get Tensors."""

    __slots__ = ()

    def __len__(self):
        return len(self.realize_cached_data())

    def __getitem__(self, index):
        return ops.tuple_get_item(self, index)

    def tuple(self):
        return tuple(self[i] for i in range(len(self)))

    def __iter__(self):
        return iter(self.tuple())

    def __repr__(self):
        return f"TensorTuple({self.tuple()!r})"

    def __add__(self, other):
        if len(self) != len(other):
            raise ValueError(f"adding TensorTuples of lengths {len(self)} and {len(other)}")
        return ops.make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self):
        return TensorTuple.make_const(self.realize_cached_data())


def _to_ndarray(array, device, dtype):
    if isinstance(array, NDArray):
        if device is not None and array.device != device:
            array = array.to(device)
        if dtype is not None and np.dtype(dtype).name != array.dtype:
            array = array.astype(dtype)
        return array
    device = device or default_device()
    if dtype is None:
        dtype = "float64" if (isinstance(array, np.ndarray) and array.dtype == np.float64
                              and "float64" in device.dtypes) else "float32"
    return NDArray(array, device=device, dtype=np.dtype(dtype).name)


class Tensor(Value):
    """A differentiable n-dimensional array. `Tensor(array_like, device=None, dtype=None,
    requires_grad=True)`; float32 unless float64 data goes to a device that supports it."""

    __slots__ = ()
    __array_priority__ = 1000

    def __init__(self, array, *, device=None, dtype=None, requires_grad=True, **kwargs):
        if isinstance(array, Tensor):
            data = array.realize_cached_data()
            if (device is None or device == data.device) and (
                    dtype is None or np.dtype(dtype).name == data.dtype):
                data = data
            else:
                data = _to_ndarray(data, device, dtype)
        else:
            if device is not None and not isinstance(device, BackendDevice):
                raise TypeError(
                    f"device must be a BackendDevice (e.g. engine.cpu()), got {device!r}")
            data = _to_ndarray(array, device, dtype)
        self._init(None, [], cached_data=data, requires_grad=requires_grad)

    @staticmethod
    def from_numpy(array, dtype=None, device=None):
        return Tensor.make_const(_to_ndarray(array, device, dtype))

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        new = value.realize_cached_data()
        if new.dtype != self.dtype:
            raise TypeError(f"dtype mismatch setting .data: {new.dtype} into {self.dtype}")
        self.cached_data = new
        # A graph built before reads this leaf's data when backward runs: it would see the new.
        _clock.now += 1
        self.generation = _clock.now

    def detach(self):
        return Tensor.make_const(self.realize_cached_data())

    @property
    def shape(self):
        data = self.cached_data
        return (self.realize_cached_data() if data is None else data).shape

    @property
    def dtype(self):
        data = self.cached_data
        return (self.realize_cached_data() if data is None else data).dtype

    @property
    def device(self):
        data = self.cached_data
        return (self.realize_cached_data() if data is None else data).device

    @property
    def ndim(self):
        return len(self.shape)

    def size(self, dim=None):
        shape = self.shape
        return int(np.prod(shape)) if dim is None else shape[dim]

    def numel(self):
        return self.size()

    def numpy(self):
        return self.realize_cached_data().numpy()

    def item(self):
        if self.size() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.numpy().reshape(()))

    def to(self, device):
        return Tensor(self, device=device, requires_grad=self.requires_grad)

    def backward(self, out_grad=None):
        """Accumulate d(self)/d(leaf) * out_grad into every leaf's `.grad` (out_grad defaults to
        ones). Gradients are Tensors built from ops, so they can be differentiated again."""
        if out_grad is None:
            out_grad = Tensor.make_const(self.device.full(self.shape, 1.0, self.dtype))
        elif out_grad.shape != self.shape:
            raise ValueError(f"backward: out_grad shape {out_grad.shape} != tensor shape "
                             f"{self.shape}")
        compute_gradient_of_variables(self, out_grad)

    def __repr__(self):
        return f"Tensor({self.realize_cached_data()!r})"

    def __str__(self):
        return str(self.realize_cached_data())

    def __bool__(self):
        raise TypeError("the truth value of a Tensor is ambiguous; compare .numpy() explicitly")

    def __len__(self):
        return self.shape[0]

    __hash__ = object.__hash__

    # operators: implicit broadcasting for tensor-tensor arithmetic
    def _binary(self, other, tensor_op, scalar_op):
        if isinstance(other, Tensor):
            if self.shape == other.shape:
                return tensor_op(self, other)
            a, b = ops.broadcast_pair(self, other)
            return tensor_op(a, b)
        if isinstance(other, NDArray):
            return self._binary(Tensor.make_const(other), tensor_op, scalar_op)
        return scalar_op(self, other)

    def __add__(self, other):
        return self._binary(other, ops.add, ops.add_scalar)

    __radd__ = __add__

    def __mul__(self, other):
        return self._binary(other, ops.multiply, ops.mul_scalar)

    __rmul__ = __mul__

    def __sub__(self, other):
        if isinstance(other, (Tensor, NDArray)):
            return self._binary(other, ops.subtract, None)
        return ops.add_scalar(self, -other)

    def __rsub__(self, other):
        return ops.add_scalar(ops.negate(self), other)

    def __truediv__(self, other):
        return self._binary(other, ops.divide, ops.divide_scalar)

    def __rtruediv__(self, other):
        return ops.rdivide_scalar(self, other)

    def __pow__(self, other):
        if isinstance(other, Tensor):
            a, b = ops.broadcast_pair(self, other)
            return ops.power(a, b)
        return ops.power_scalar(self, other)

    def __neg__(self):
        return ops.negate(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __getitem__(self, idxs):
        return ops.get_item(self, idxs)

    # sugar
    def matmul(self, other):
        return self @ other

    def sum(self, axes=None, keepdims=False):
        return ops.summation(self, axes, keepdims)

    def mean(self, axes=None, keepdims=False):
        return ops.mean(self, axes, keepdims)

    def max(self, axes=None, keepdims=False):
        return ops.max(self, axes, keepdims)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return ops.reshape(self, tuple(shape))

    def transpose(self, axes=None):
        return ops.transpose(self, axes)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return ops.permute(self, tuple(axes))

    @property
    def T(self):
        return self.transpose()

    def relu(self):
        return ops.relu(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)


def find_topo_sort(node_list):
    """Post-order depth-first order of the graph under `node_list`, inputs visited in order.
    Iterative (an explicit stack), so a chain of 100,000 nodes is fine."""
    visited = set()
    order = []
    for root in node_list:
        if id(root) in visited:
            continue
        stack = [(root, iter(root.inputs))]
        visited.add(id(root))
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def compute_gradient_of_variables(output_tensor, out_grad):
    """Reverse-mode sweep: each node's adjoint is the sum of its consumers' contributions; leaves
    that require a gradient accumulate it into `.grad`."""
    order = find_topo_sort([output_tensor])
    # Checked before any gradient accumulates, so a backward that raises changes nothing.
    _check_inputs_unchanged([node for node in order if node.op is not None])
    grads = {id(output_tensor): [out_grad]}
    pop, get = grads.pop, grads.get
    for node in reversed(order):
        contributions = pop(id(node), None)
        if contributions is None or not node.requires_grad:
            continue
        adjoint = contributions[0] if len(contributions) == 1 else ops.sum_tensors(contributions)
        op = node.op
        if op is None:
            node.grad = adjoint if node.grad is None else node.grad + adjoint
            continue
        for child, grad in zip(node.inputs, op.gradient_as_tuple(adjoint, node)):
            if grad is not None and child.requires_grad:
                existing = get(id(child))
                if existing is None:
                    grads[id(child)] = [grad]
                else:
                    existing.append(grad)


def _check_inputs_unchanged(nodes):
    """Raise if an input of one of these graph nodes got new data (.data), or its buffer or the
    node's own (exp, tanh, sigmoid and a ReLU layer differentiate through their output) was
    written after the node was made. The buffers are looked up only when a write came after the
    oldest node: not in a training step, whose last writes are the previous step's."""
    if not nodes:
        return
    check_buffers = _clock.last_write > min(node.generation for node in nodes)
    written_after = write_stamps.written_after
    for node in nodes:
        generation = node.generation
        own = node.cached_data
        if check_buffers and own.__class__ is NDArray and written_after(own.handle, generation):
            _changed_under(node)
        for child in node.inputs:
            if child.generation > generation:
                _changed_under(child)
            if check_buffers:
                data = child.cached_data  # a tuple of arrays for a TensorTuple
                if data.__class__ is NDArray and written_after(data.handle, generation):
                    _changed_under(child)


def _changed_under(value):
    raise RuntimeError(
        f"the data of a tensor of shape {tuple(value.shape)} changed (an optimizer step, a write "
        f"into it or an alias of it, or a new .data) after the graph this backward runs through "
        f"was built, so its gradients would mix the old and the new values: run the forward "
        f"again after the change (PyTorch raises here too)")


# Imported last, once Tensor and the Op classes exist (engine.ops builds on them): a module global
# instead of an import inside every operator method, which would cost a microsecond per call.
from . import ops  # noqa: E402
