"""The fused softmax cross-entropy op (ops.softmax_cross_entropy) and SoftmaxLoss built on it:
values, first and second derivatives against central differences on every device, the labels it
accepts and rejects, and the kernels a training step spends on it. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.ops.loss import SoftmaxCrossEntropyGrad
from tests.devices import DEVICE_PARAMS
from tests.op_check import check_op

LABELS = np.array([0, 3, 1, 2, 3])


def _per_row_loss(z, labels=LABELS):
    peak = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - peak).sum(axis=1)) + peak[:, 0]
    return lse - z[np.arange(len(labels)), labels]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
def test_per_row_loss_and_gradient(device, view):
    check_op(lambda z: ndl.ops.softmax_cross_entropy(z, LABELS), _per_row_loss, (5, 4),
             device=device, view=view)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_gradient_op_and_its_own_gradient(device):
    # The backward op is differentiable in turn (Hessian-vector products through the loss).
    def gradient_op(z, g):
        labels = ndl.NDArray(LABELS, device=z.device, dtype=z.dtype)
        return SoftmaxCrossEntropyGrad(labels)(z, g)

    check_op(gradient_op, lambda z, g: g[:, None] * (_softmax(z) - np.eye(4)[LABELS]),
             (5, 4), (5,), device=device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_softmax_loss_matches_the_composed_formula(device):
    rng = np.random.default_rng(3)
    z = (5.0 * rng.standard_normal((32, 10))).astype(np.float32)
    y = rng.integers(0, 10, 32)
    logits = ndl.Tensor(z, device=device)
    loss = nn.SoftmaxLoss()(logits, ndl.Tensor(y, device=device, requires_grad=False))
    loss.backward()
    np.testing.assert_allclose(loss.numpy(), _per_row_loss(z.astype(np.float64), y).mean(),
                               rtol=1e-5)
    want = (_softmax(z.astype(np.float64)) - np.eye(10)[y]) / 32
    np.testing.assert_allclose(logits.grad.numpy(), want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("labels", [
    np.array([0, 2, 1]), [0, 2, 1], np.array([0.0, 2.0, 1.0], np.float32),
    ndl.Tensor(np.array([0, 2, 1]), requires_grad=False),
    ndl.NDArray(np.array([0, 2, 1]), device=ndl.cpu_numpy()),
], ids=["int_array", "list", "float_array", "tensor", "ndarray_other_device"])
def test_labels_in_every_form_give_one_answer(labels):
    z = ndl.Tensor(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0], [2.0, -1.0, 0.5]]),
                   device=ndl.cpu_numpy())
    out = ndl.ops.softmax_cross_entropy(z, labels)
    np.testing.assert_allclose(out.numpy(), _per_row_loss(z.numpy(), np.array([0, 2, 1])),
                               rtol=1e-6)


def test_labels_already_on_the_device_are_not_copied():
    device = ndl.cpu_numpy()
    z = ndl.Tensor(np.zeros((2, 3)), device=device, dtype="float32")
    labels = ndl.Tensor(np.array([2.0, 0.0]), device=device, dtype="float32", requires_grad=False)
    out = ndl.ops.softmax_cross_entropy(z, labels)
    assert out.op.labels is labels.realize_cached_data()


@pytest.mark.parametrize("labels, message", [
    ([0, 3, 1], r"integers in \[0, 3\), got 3 at row 1 \(1 bad"),
    ([-1, 0, 1], r"got -1 at row 0"),
    ([0.5, 1.0, 2.0], r"got 0.5 at row 0"),
    ([0.0, np.nan, np.inf], r"got nan at row 1 \(2 bad"),
    ([0, 1], r"labels of shape \(2,\) do not match 3 logits rows"),
    ([[0, 1, 2]], r"labels of shape \(1, 3\)"),
    (np.array(["a", "b", "c"]), r"labels must be numbers"),
])
def test_bad_labels_raise_a_clear_error(labels, message):
    z = ndl.Tensor(np.zeros((3, 3)), device=ndl.cpu_numpy())
    with pytest.raises(ValueError, match=message):
        ndl.ops.softmax_cross_entropy(z, labels)


def test_labels_beyond_float32_precision_raise():
    # 2^24 + 1 classes (a broadcast view: no memory): the last label has no float32 value.
    classes = 2**24 + 2
    wide = ndl.NDArray(np.zeros((1, 1)), device=ndl.cpu_numpy(), dtype="float32")
    wide = wide.broadcast_to((1, classes))
    with pytest.raises(ValueError, match="not exact in float32"):
        ndl.ops.softmax_cross_entropy(ndl.Tensor.make_const(wide), [classes - 1])


def test_softmax_loss_launches_three_kernels_forward_and_four_backward():
    device = ndl.cpu_numpy()
    logits = ndl.Tensor(np.random.default_rng(0).standard_normal((8, 5)), device=device)
    labels = ndl.Tensor(np.arange(8) % 5, device=device, dtype=logits.dtype, requires_grad=False)
    with count_launches(device) as forward:
        loss = nn.SoftmaxLoss()(logits, labels)
    with count_launches(device) as backward:
        loss.backward()
    assert dict(forward) == {"softmax_xent": 1, "reduce_sum": 1, "scalar_div": 1}
    # The seed, the mean's division, the broadcast of its gradient to rows, then the fused one.
    assert dict(backward) == {"fill": 1, "scalar_div": 1, "compact": 1, "softmax_xent_grad": 1}


def test_a_float64_seed_on_a_float32_loss():
    device = ndl.cpu_numpy()
    logits = ndl.Tensor(np.zeros((2, 3)), device=device, dtype="float32")
    loss = nn.SoftmaxLoss()(logits, [0, 2])
    loss.backward(ndl.Tensor(1.0, device=device, dtype="float64"))
    np.testing.assert_allclose(logits.grad.numpy(), (np.full((2, 3), 1 / 3) - np.eye(3)[[0, 2]])
                               / 2, rtol=1e-6)
