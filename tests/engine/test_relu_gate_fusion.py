"""A ReLU whose output feeds a product gets its gradient inside that product's backward kernel
(ops.linalg.GatedMatMul): one launch fewer per layer, the same values as the unfused pair on
every device, and a graph that still differentiates. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import ops
from engine.backend import count_launches
from engine.ops import linalg
from tests.devices import DEVICE_PARAMS

REFERENCE = ndl.cpu_numpy()


def _tensor(data, device, requires_grad=True, dtype="float32"):
    return ndl.Tensor(np.asarray(data), device=device, dtype=dtype, requires_grad=requires_grad)


def _mlp_grads(device, fused, dtype="float32", depth=4, width=12, rows=9):
    """The weight gradients of sum(out^2) for a bias-free ReLU MLP, with the fusion on or off."""
    rng = np.random.default_rng(3)
    weights = [_tensor(rng.standard_normal((width, width)) * 0.4, device, dtype=dtype)
               for _ in range(depth)]
    x = _tensor(rng.standard_normal((rows, width)), device, requires_grad=False, dtype=dtype)
    saved = linalg._relu_input
    if not fused:
        linalg._relu_input = lambda tensor, first: None
    try:
        h = x
        for weight in weights[:-1]:
            h = ops.relu(ops.matmul(h, weight))
        out = ops.matmul(h, weights[-1])
        with count_launches(device) as launches:
            (out * out).sum().backward()
    finally:
        linalg._relu_input = saved
    return [w.grad.numpy() for w in weights], launches


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_fused_gradients_equal_the_unfused_pair_exactly(device):
    fused, fused_launches = _mlp_grads(device, True)
    unfused, unfused_launches = _mlp_grads(device, False)
    for got, want in zip(fused, unfused, strict=True):
        np.testing.assert_array_equal(got, want)
    assert fused_launches["ewise_relu_grad"] == 0
    assert unfused_launches["ewise_relu_grad"] == 3
    assert fused_launches["matmul"] == unfused_launches["matmul"]


def test_fused_gradients_in_float64_match_numpy():
    grads, _ = _mlp_grads(REFERENCE, True, dtype="float64", depth=3)
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal((12, 12)) * 0.4 for _ in range(3)]
    x = rng.standard_normal((9, 12))
    zs, h = [], x
    for weight in weights[:-1]:
        zs.append(h @ weight)
        h = np.maximum(zs[-1], 0)
    out = h @ weights[-1]
    g = 2 * out
    want = [None] * 3
    want[2] = h.T @ g
    g = (g @ weights[2].T) * (zs[1] > 0)
    want[1] = np.maximum(zs[0], 0).T @ g
    g = (g @ weights[1].T) * (zs[0] > 0)
    want[0] = x.T @ g
    for got, expected in zip(grads, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_a_relu_output_with_two_consumers_is_gated_once_more():
    # The product's gated share and the sum's ungated one add up before the ReLU's backward, which
    # then gates the whole: gating twice changes nothing, so the result is the plain gradient.
    x = _tensor([[-1.0, 2.0, 0.5], [3.0, -0.5, 0.0]], REFERENCE, dtype="float64")
    w = _tensor(np.arange(6.0).reshape(3, 2) / 4, REFERENCE, dtype="float64")
    h = ops.relu(x)
    with count_launches(REFERENCE) as launches:
        (ops.matmul(h, w).sum() + (h * h).sum()).backward()
    assert launches["ewise_relu_grad"] == 1
    mask = x.numpy() > 0
    want = (np.ones((2, 2)) @ w.numpy().T + 2 * np.maximum(x.numpy(), 0)) * mask
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)


def test_a_relu_of_a_strided_view_takes_the_separate_gate():
    # The gate is read as the product's compact layout: a permuted input is not fused.
    data = np.array([[-1.0, 2.0], [0.5, -3.0], [4.0, 1.0]])
    x = _tensor(data.T.copy(), REFERENCE, dtype="float64")
    w = _tensor([[1.0, -2.0], [0.5, 3.0]], REFERENCE, dtype="float64")
    h = ops.relu(ops.transpose(x))
    with count_launches(REFERENCE) as launches:
        ops.matmul(h, w).sum().backward()
    assert launches["ewise_relu_grad"] == 1
    want = (np.ones((3, 2)) @ w.numpy().T * (data > 0)).T
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)


def test_the_gated_product_differentiates_again():
    # A directional second derivative through the fused backward: d/dW2 <dL/dW1, V1> along V2,
    # against central differences of the numpy gradient.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    w1, w2 = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    v1, v2 = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))

    def grad_w1(w1_, w2_):
        z = x @ w1_
        y = np.maximum(z, 0) @ w2_
        return x.T @ ((y @ w2_.T) * (z > 0))

    eps = 1e-6
    numeric = (np.sum(grad_w1(w1, w2 + eps * v2) * v1)
               - np.sum(grad_w1(w1, w2 - eps * v2) * v1)) / (2 * eps)
    tw1, tw2 = _tensor(w1, REFERENCE, dtype="float64"), _tensor(w2, REFERENCE, dtype="float64")
    y = ops.matmul(ops.relu(ops.matmul(_tensor(x, REFERENCE, False, "float64"), tw1)), tw2)
    (y * y).sum().backward()
    first = tw1.grad
    np.testing.assert_allclose(first.numpy(), 2 * grad_w1(w1, w2), rtol=1e-12)
    tw1.grad = tw2.grad = None
    (first * _tensor(v1, REFERENCE, False, "float64")).sum().backward()
    np.testing.assert_allclose(np.sum(tw2.grad.numpy() * v2), 2 * numeric, rtol=1e-6)


def test_a_kept_gradient_seeds_a_new_graph_after_its_gate_changed():
    # The gated product's gate is the ReLU input it was built from: once that input is written,
    # a ReLU of the new values must gate again (the unfused answer).
    x = _tensor([[1.0, -2.0], [3.0, 0.5]], REFERENCE, dtype="float64")
    w = _tensor(np.eye(2), REFERENCE, dtype="float64")
    ops.matmul(ops.relu(x), w).sum().backward()
    kept = x.grad
    assert kept.op.relu_gate is x.realize_cached_data()
    x.realize_cached_data()[0, :] = -1.0
    x.grad = None
    ops.relu(x).backward(kept)
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0], [1.0, 1.0]])


def test_a_gate_in_another_dtype_than_the_product_takes_the_separate_gate():
    # The product writes its first operand's dtype: a float64 gradient reaching a float32 ReLU
    # input is gated on its own, as without the fusion.
    x = _tensor([[1.0, -2.0], [3.0, 0.5]], REFERENCE)
    w = _tensor(np.eye(2), REFERENCE)
    scale = _tensor(np.full((2, 2), 2.0), REFERENCE, requires_grad=False, dtype="float64")
    with count_launches(REFERENCE) as launches:
        (scale * ops.matmul(ops.relu(x), w)).sum().backward()
    assert launches["ewise_relu_grad"] == 1
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [2.0, 2.0]])


def test_a_layer_with_dropout_differentiates_twice_as_its_ops_composed():
    # relu(x W1) through dropout, then W2, as one layer kernel and a gated product with the mask,
    # against the ops composed: the same first and second derivatives, bit for bit.
    rng = np.random.default_rng(4)
    x_data, w1_data, w2_data = (rng.standard_normal(shape) for shape in ((6, 5), (5, 7), (7, 3)))

    def second_order(fused):
        x = _tensor(x_data, REFERENCE, dtype="float64")
        w1, w2 = _tensor(w1_data, REFERENCE, dtype="float64"), _tensor(w2_data, REFERENCE,
                                                                         dtype="float64")
        if fused:
            hidden = ops.linear(x, w1, relu=True, dropout=(0.4, 99))
        else:
            hidden = ops.dropout(ops.relu(ops.matmul(x, w1)), 0.4, 99)
        (ops.matmul(hidden, w2) ** 2).sum().backward()
        first = x.grad
        x.grad = w1.grad = w2.grad = None
        (first * first).sum().backward()
        return [first.numpy(), x.grad.numpy(), w1.grad.numpy(), w2.grad.numpy()]

    for got, want in zip(second_order(True), second_order(False), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("consumers", ["two_products", "residual"])
def test_a_layer_with_dropout_and_several_consumers_drops_once(consumers):
    # Each consumer's product gates its share; the mask and its scale apply once, to the sum.
    rng = np.random.default_rng(6)
    x_data, w1_data, w2_data, w3_data = (rng.standard_normal(shape) for shape in
                                         ((6, 5), (5, 7), (7, 3), (7, 7)))

    def grads(fused):
        x = _tensor(x_data, REFERENCE, dtype="float64")
        w1, w2, w3 = (_tensor(w, REFERENCE, dtype="float64") for w in (w1_data, w2_data, w3_data))
        if fused:
            hidden = ops.linear(x, w1, relu=True, dropout=(0.4, 99))
        else:
            hidden = ops.dropout(ops.relu(ops.matmul(x, w1)), 0.4, 99)
        if consumers == "two_products":
            out = ops.matmul(hidden, w2) + ops.matmul(hidden, w3) @ w2
        else:
            out = ops.matmul(hidden + ops.matmul(hidden, w3), w2)
        (out ** 2).sum().backward()
        return [x.grad.numpy(), w1.grad.numpy(), w2.grad.numpy(), w3.grad.numpy()]

    for got, want in zip(grads(True), grads(False), strict=True):
        np.testing.assert_array_equal(got, want)
