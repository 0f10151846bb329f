"""Autograd semantics: graph building, no_grad, detach, gradient of gradient, deep graphs, errors.
Tests of engine/autograd.py.
"""

import numpy as np
import pytest

import engine as ndl
from engine.autograd import find_topo_sort

DEV = ndl.cpu_numpy()


def T(x, requires_grad=True):
    return ndl.Tensor(np.asarray(x, dtype=np.float64), device=DEV, dtype="float64",
                      requires_grad=requires_grad)


def test_gradient_of_gradient_matches_second_derivative():
    x = T([0.5, -1.0, 2.0])
    y = (x * x * x).sum()  # dy/dx = 3x^2, d2y/dx2 = 6x
    y.backward()
    first = x.grad
    np.testing.assert_allclose(first.numpy(), 3 * x.numpy() ** 2)
    x.grad = None
    first.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_hessian_vector_product_through_matmul_and_tanh():
    rng = np.random.default_rng(1)
    w = T(rng.standard_normal((3, 3)))
    x = T(rng.standard_normal((2, 3)), requires_grad=False)
    loss = ndl.tanh(x @ w).sum()
    loss.backward()
    grad = w.grad
    v = rng.standard_normal((3, 3))
    w.grad = None
    (grad * T(v, requires_grad=False)).sum().backward()
    eps = 1e-6

    def g(wv):  # d/dW sum(tanh(x W)) = x^T (1 - tanh^2(x W))
        return x.numpy().T @ (1 - np.tanh(x.numpy() @ wv) ** 2)

    numeric = (g(w.numpy() + eps * v) - g(w.numpy() - eps * v)) / (2 * eps)
    np.testing.assert_allclose(w.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


def test_chain_of_100000_nodes_has_no_recursion_limit():
    x = T([1.0, 2.0])
    y = x
    for _ in range(100_000):
        y = y + 1.0
    assert len(find_topo_sort([y])) == 100_001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_topo_sort_is_post_order_with_inputs_in_order():
    a, b = T([1.0]), T([2.0])
    c = a + b
    d = c * a
    order = find_topo_sort([d])
    assert order == [a, b, c, d]


def test_gradients_accumulate_over_shared_subexpressions():
    x = T([3.0])
    y = x * x + x
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0])


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = T([1.0, 2.0])
    with ndl.no_grad():
        y = x * 2.0
    assert y.op is None and not y.requires_grad
    z = (x * 2.0).detach()
    assert z.op is None and not z.requires_grad
    assert x.data.op is None and not x.data.requires_grad


def test_requires_grad_propagates_and_constants_keep_no_graph():
    a = T([1.0], requires_grad=False)
    b = T([2.0])
    assert not (a * 2.0).requires_grad
    assert (a * b).requires_grad
    const = a + a
    assert const.inputs == []


def test_scalar_and_reflected_operators():
    x = T([1.0, 2.0, 4.0])
    np.testing.assert_allclose((2.0 - x).numpy(), [1.0, 0.0, -2.0])
    np.testing.assert_allclose((2.0 / x).numpy(), [2.0, 1.0, 0.5])
    np.testing.assert_allclose((3.0 * x + 1).numpy(), [4.0, 7.0, 13.0])
    np.testing.assert_allclose((x ** 2).numpy(), [1.0, 4.0, 16.0])
    np.testing.assert_allclose((-x).numpy(), [-1.0, -2.0, -4.0])


def test_data_setter_replaces_values_without_graph():
    x = T([1.0, 2.0])
    x.data = x.data * 3.0
    np.testing.assert_allclose(x.numpy(), [3.0, 6.0])
    with pytest.raises(TypeError, match="Tensor"):
        x.data = np.zeros(2)


def test_tensor_properties_and_default_dtype():
    t = ndl.Tensor([[1, 2], [3, 4]], device=DEV)
    assert t.shape == (2, 2) and t.dtype == "float32" and t.device == DEV
    assert t.sum().item() == 10.0
    with pytest.raises(TypeError, match="ambiguous"):
        bool(t)


def test_backward_rejects_cotangent_of_wrong_shape():
    x = T([1.0, 2.0])
    with pytest.raises(ValueError, match=r"out_grad shape \(3,\)"):
        (x * 2.0).backward(T([1.0, 1.0, 1.0]))


@pytest.mark.parametrize("make,match", [
    (lambda: T(np.ones((2, 3))) + T(np.ones((4, 3))), r"\(2, 3\).*\(4, 3\)"),
    (lambda: T(np.ones((2, 3))) @ T(np.ones((2, 3))), r"\(2, 3\) @ \(2, 3\)"),
    (lambda: T(np.ones((2, 3))).reshape(4, 2), r"shape \(2, 3\).*\(4, 2\)"),
    (lambda: T(np.ones((2, 3))).sum(axes=(2,)), "axis 2 out of range"),
    (lambda: T(np.ones((2, 3)))[5], "index 5 is out of bounds for axis 0 with size 2"),
    (lambda: ndl.broadcast_to(T(np.ones((2, 3))), (4, 3)), r"broadcast shape \(2, 3\)"),
    (lambda: ndl.stack([T(np.ones(2)), T(np.ones(3))], 0), r"\(2,\) and \(3,\)"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises((ValueError, IndexError), match=match):
        make()


def test_split_and_stack_round_trip_gradients():
    x = T(np.arange(6.0).reshape(3, 2))
    parts = ndl.split(x, 0)
    assert len(parts) == 3
    y = ndl.stack([parts[2], parts[0]], 1)
    y.backward(T(np.ones((2, 2)), requires_grad=False))
    np.testing.assert_allclose(x.grad.numpy(), [[1, 1], [0, 0], [1, 1]])


def test_logsumexp_is_stable_for_large_inputs():
    x = T([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(ndl.logsumexp(x, (1,)).numpy(),
                               [1000.0 + np.log(2), -1000.0 + np.log(2)])
    ninf = T([[-np.inf, -np.inf]])
    assert ndl.logsumexp(ninf, (1,)).numpy()[0] == -np.inf
