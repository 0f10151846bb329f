"""Every differentiable op, forward and backward, on every enabled device and on strided views.
Tests of the engine ops layer, through tests/op_check.check_op.
"""

import numpy as np
import pytest

import engine as ndl
from tests.devices import DEVICE_PARAMS
from tests.op_check import VIEWS, check_op

SHAPES = [(1,), (7,), (3, 5), (2, 1, 3), (1, 4, 1)]


def _lse(x, axes):
    m = x.max(axis=axes, keepdims=True)
    return (np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m).squeeze(axis=axes)


UNARY = [
    ("negate", ndl.negate, np.negative, False),
    ("exp", ndl.exp, np.exp, False),
    ("log", ndl.log, np.log, True),
    ("relu", ndl.relu, lambda x: np.maximum(x, 0), False),
    ("tanh", ndl.tanh, np.tanh, False),
    ("sigmoid", ndl.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
    ("add_scalar", lambda a: ndl.add_scalar(a, 1.5), lambda x: x + 1.5, False),
    ("mul_scalar", lambda a: ndl.mul_scalar(a, -2.5), lambda x: x * -2.5, False),
    ("divide_scalar", lambda a: ndl.divide_scalar(a, 3.0), lambda x: x / 3.0, False),
    ("power_scalar_2", lambda a: ndl.power_scalar(a, 2), lambda x: x ** 2, False),
    ("power_scalar_half", lambda a: ndl.power_scalar(a, 0.5), np.sqrt, True),
    ("power_scalar_neg", lambda a: ndl.power_scalar(a, -1.5), lambda x: x ** -1.5, True),
    ("rdivide_scalar", lambda a: 2.0 / a, lambda x: 2.0 / x, True),
    ("rsub_scalar", lambda a: 1.0 - a, lambda x: 1.0 - x, False),
]

BINARY = [
    ("add", ndl.add, np.add, False),
    ("multiply", ndl.multiply, np.multiply, False),
    ("divide", ndl.divide, np.divide, True),
    ("power", ndl.power, np.power, True),
    ("sub_operator", lambda a, b: a - b, np.subtract, False),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,fn,ref,positive", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, ref, positive, shape, view, device):
    check_op(fn, ref, shape, device=device, view=view, positive=positive)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,fn,ref,positive", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, ref, positive, shape, view, device):
    check_op(fn, ref, shape, shape, device=device, view=view, positive=positive)


BROADCASTS = [((3, 4), (4,)), ((3, 1), (1, 5)), ((2, 1, 3), (4, 1)), ((5,), (2, 3, 5)), ((1,), ())]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_implicit_broadcasting(shapes, device):
    check_op(lambda a, b: a * b + a, lambda x, y: x * y + x, *shapes, device=device)
    check_op(lambda a, b: a / b, np.divide, *shapes, device=device, positive=True)


REDUCTIONS = [
    ("sum_all", lambda a: ndl.summation(a), lambda x: x.sum(), (3, 5)),
    ("sum_axis0", lambda a: ndl.summation(a, axes=(0,)), lambda x: x.sum(axis=0), (3, 5)),
    ("sum_axes02_keep", lambda a: ndl.summation(a, axes=(0, 2), keepdims=True),
     lambda x: x.sum(axis=(0, 2), keepdims=True), (2, 3, 5)),
    ("sum_neg_axis", lambda a: a.sum(-1), lambda x: x.sum(axis=-1), (4, 1, 3)),
    ("mean", lambda a: a.mean((1,)), lambda x: x.mean(axis=1), (3, 7)),
    ("max_axis1", lambda a: ndl.max(a, axes=(1,)), lambda x: x.max(axis=1), (3, 7)),
    ("max_all_keep", lambda a: ndl.max(a, keepdims=True),
     lambda x: x.max(keepdims=True), (2, 3, 2)),
    ("logsumexp_1", lambda a: ndl.logsumexp(a, axes=(1,)), lambda x: _lse(x, (1,)), (3, 7)),
    ("logsumexp_all", lambda a: ndl.logsumexp(a), lambda x: _lse(x, (0, 1, 2)), (2, 3, 4)),
    ("logsumexp_02", lambda a: ndl.logsumexp(a, axes=(0, 2)), lambda x: _lse(x, (0, 2)),
     (2, 3, 4)),
    ("logsoftmax", ndl.logsoftmax,
     lambda x: x - _lse(x, (1,))[:, None], (4, 6)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
@pytest.mark.parametrize("name,fn,ref,shape", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, ref, shape, view, device):
    check_op(fn, ref, shape, device=device, view=view)


SHAPE_OPS = [
    ("reshape", lambda a: ndl.reshape(a, (6, 2)), lambda x: x.reshape(6, 2), (3, 4)),
    ("reshape_minus1", lambda a: a.reshape(2, -1), lambda x: x.reshape(2, -1), (2, 3, 2)),
    ("broadcast_to", lambda a: ndl.broadcast_to(a, (2, 3, 4)),
     lambda x: np.broadcast_to(x, (2, 3, 4)), (3, 1)),
    ("transpose_last2", lambda a: ndl.transpose(a), lambda x: np.swapaxes(x, -1, -2), (2, 3, 4)),
    ("transpose_axes", lambda a: ndl.transpose(a, (0, 2)),
     lambda x: np.swapaxes(x, 0, 2), (2, 3, 4)),
    ("permute", lambda a: ndl.permute(a, (2, 0, 1)),
     lambda x: np.transpose(x, (2, 0, 1)), (2, 3, 4)),
    ("getitem_slices", lambda a: a[1:3, ::2], lambda x: x[1:3, ::2], (4, 5)),
    ("getitem_int", lambda a: a[2], lambda x: x[2], (4, 5)),
    ("getitem_neg_step", lambda a: a[:, ::-1], lambda x: x[:, ::-1], (3, 4)),
    ("getitem_ellipsis_none", lambda a: a[..., None, 1], lambda x: x[..., None, 1], (2, 3, 4)),
    ("stack1", lambda a, b: ndl.stack([a, b], 1), lambda x, y: np.stack([x, y], 1), (3, 4)),
    ("split0", lambda a: ndl.split(a, 0)[1] * 2.0 + ndl.split(a, 0)[2],
     lambda x: x[1] * 2.0 + x[2], (3, 4)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
@pytest.mark.parametrize("name,fn,ref,shape", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_op(name, fn, ref, shape, view, device):
    n_inputs = fn.__code__.co_argcount
    check_op(fn, ref, *([shape] * n_inputs), device=device, view=view)


MATMULS = [((3, 4), (4, 5)), ((1, 1), (1, 1)), ((7, 13), (13, 1)), ((2, 3, 4), (4, 5)),
           ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((17, 31), (31, 19))]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
@pytest.mark.parametrize("shapes", MATMULS, ids=str)
def test_matmul(shapes, view, device):
    check_op(ndl.matmul, np.matmul, *shapes, device=device, view=view, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted"))
@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((17, 31), (31, 19))], ids=str)
def test_relu_into_matmul(shapes, view, device):
    # A compact ReLU input gets its gradient inside the product's kernel (ops.linalg.GatedMatMul),
    # a permuted one through the separate gate.
    check_op(lambda a, b: ndl.matmul(ndl.relu(a), b), lambda a, b: np.maximum(a, 0) @ b,
             *shapes, device=device, view=view, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted"))
@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((17, 31), (31, 19))], ids=str)
def test_linear(shapes, view, device):
    # Two ReLU layers and a plain one, so each product gates with the fused output before it.
    def layers(a, b, bias):
        hidden = ndl.linear(a, b, ndl.reshape(bias, (1, -1)), relu=True)
        hidden = ndl.linear(ndl.linear(hidden, ndl.transpose(b), relu=True), b)
        return hidden

    def reference(a, b, bias):
        hidden = np.maximum(a @ b + bias, 0)
        return np.maximum(hidden @ b.T, 0) @ b

    check_op(layers, reference, *shapes, (shapes[1][1],), device=device, view=view, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted"))
def test_linear_with_dropout(view, device):
    # A ReLU layer with dropout in its kernel, then a product that applies the layer's mask and
    # gate in its own.
    from engine.backend.dropout import dropout as dropout_array

    mask = dropout_array(ndl.NDArray(np.ones((17, 19)), device=ndl.cpu_numpy()), 0.3, 7).numpy()

    def layers(a, b):
        return ndl.linear(ndl.linear(a, b, relu=True, dropout=(0.3, 7)), ndl.transpose(b))

    def reference(a, b):
        return (np.maximum(a @ b, 0) * mask) @ b.T

    check_op(layers, reference, (17, 31), (31, 19), device=device, view=view, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_softmax_loss_formula(device):
    y = np.array([0, 2, 1])

    def loss(z):
        onehot = ndl.Tensor(np.eye(4)[y], device=z.device, dtype=z.dtype, requires_grad=False)
        return (ndl.logsumexp(z, (1,)) - (z * onehot).sum((1,))).mean()

    check_op(loss, lambda z: (_lse(z, (1,)) - z[np.arange(3), y]).mean(), (3, 4), device=device)
