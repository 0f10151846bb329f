"""How many device kernels the training step's hot paths launch: optimizer updates, the ReLU
gradient, subtraction, logsumexp. On a GPU each launch costs tens of microseconds of host time, so
a fused pair that comes apart is a regression even when every value stays right. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn, optim
from engine.backend import count_launches

DEVICE = ndl.cpu_numpy()


@pytest.fixture
def launches():
    """A Counter of kernel calls on the cpu_numpy device, by protocol function."""
    with count_launches(DEVICE) as counter:
        yield counter


def _params(count=3):
    rng = np.random.default_rng(0)
    params = [nn.Parameter(ndl.Tensor(rng.standard_normal((4, 5)), device=DEVICE))
              for _ in range(count)]
    for param in params:
        param.grad = ndl.Tensor(rng.standard_normal((4, 5)), device=DEVICE, requires_grad=False)
    return params


@pytest.mark.parametrize("make,update,state", [
    (lambda p: optim.SGD(p, lr=0.1), "sgd_update", 0),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=0.01), "sgd_update", 0),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), "sgd_update", 1),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, bias_correction=True), "sgd_update", 1),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
     "sgd_update", 1),
    (lambda p: optim.Adam(p, lr=0.1, weight_decay=0.01), "adam_update", 2),
], ids=["sgd", "sgd_weight_decay", "momentum", "momentum_bias_corrected", "nesterov", "adam"])
def test_optimizer_step_is_one_call_for_all_parameters(make, update, state, launches):
    # The first step also zeroes each parameter's state buffers (one fill each), once.
    params = _params()
    optimizer = make(params)
    optimizer.step()
    assert dict(launches) == {update: 1, **({"fill": state * len(params)} if state else {})}
    launches.clear()
    optimizer.step()
    assert dict(launches) == {update: 1}


@pytest.mark.parametrize("make, update, calls", [
    (lambda p: optim.Adam(p, lr=0.1), "adam_update", 2),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "sgd_update", 2),
    (lambda p: optim.Adam(p, lr=0.1, bias_correction=False), "adam_update", 1),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), "sgd_update", 1),
], ids=["adam", "nesterov", "adam_uncorrected", "momentum"])
def test_parameters_at_different_step_counts(make, update, calls, launches):
    # Bias corrections and the look-ahead depend on the step count, which a parameter without a
    # gradient skips: one call per count where the update uses it, one call in all where not.
    params = _params()
    optimizer = make(params)
    grad = params[0].grad
    params[0].grad = None
    optimizer.step()
    params[0].grad = grad
    launches.clear()
    optimizer.step()
    assert launches[update] == calls


def test_relu_backward_is_one_kernel(launches):
    x = ndl.Tensor(np.array([[-1.0, 2.0], [0.0, 3.0]]), device=DEVICE, requires_grad=True)
    y = ndl.relu(x)
    launches.clear()
    y.backward(ndl.Tensor(np.array([[5.0, 6.0], [7.0, 8.0]]), device=DEVICE))
    assert dict(launches) == {"ewise_relu_grad": 1}
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 6.0], [0.0, 8.0]])


def test_relu_second_derivative_gates_again():
    # ReLU's gradient is linear in the cotangent, so differentiating it applies the same gate.
    x = ndl.Tensor(np.array([-1.0, 2.0, 0.5]), device=DEVICE, requires_grad=True)
    cotangent = ndl.Tensor(np.array([3.0, 4.0, 5.0]), device=DEVICE, requires_grad=True)
    y = ndl.relu(x)
    (grad_x,) = y.op.gradient_as_tuple(cotangent, y)
    np.testing.assert_array_equal(grad_x.numpy(), [0.0, 4.0, 5.0])
    grad_x.backward(ndl.Tensor(np.array([1.0, 1.0, 1.0]), device=DEVICE))
    np.testing.assert_array_equal(cotangent.grad.numpy(), [0.0, 1.0, 1.0])


def test_subtraction_is_one_kernel_each_way(launches):
    a = ndl.Tensor(np.array([1.0, 2.0]), device=DEVICE, requires_grad=True)
    b = ndl.Tensor(np.array([0.5, -4.0]), device=DEVICE, requires_grad=True)
    out = a - b
    assert dict(launches) == {"ewise_add_scaled": 1}
    launches.clear()
    out.backward(ndl.Tensor(np.array([1.0, 3.0]), device=DEVICE))
    assert dict(launches) == {"ewise_neg": 1}
    np.testing.assert_array_equal(out.numpy(), [0.5, 6.0])
    np.testing.assert_array_equal(b.grad.numpy(), [-1.0, -3.0])


def test_logsumexp_forward_is_one_kernel(launches):
    z = ndl.Tensor(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -np.inf]]), device=DEVICE)
    out = ndl.logsumexp(z, axes=(1,))
    assert dict(launches) == {"reduce_logsumexp": 1}
    np.testing.assert_allclose(out.numpy(), [3.0 + np.log1p(np.exp(-1.0) + np.exp(-2.0)), 1000.0],
                               rtol=1e-6)
