"""Optimizers: each update rule against a hand-written numpy version over several steps; no
in-place change of .grad; no graph kept alive. Engine layer tests (optim)."""

import gc
import tracemalloc

import numpy as np
import pytest

import engine as ndl
from engine import nn, optim
from tests.devices import DEVICE_PARAMS

A = np.array([[3.0, 0.5], [0.5, 1.0]])
B = np.array([1.0, -2.0])
W0 = np.array([[0.5, -1.0], [2.0, 0.3]])


def grad_of(w):
    """Gradient of f(W) = sum_cols 1/2 w^T A w - b^T w (a quadratic with distinct curvatures)."""
    return A @ w - B[:, None]


def run_engine(make_optimizer, steps=6, device=None, dtype="float32"):
    param = nn.Parameter(ndl.Tensor(W0, dtype=dtype, device=device))
    optimizer = make_optimizer([param])
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        param.grad = ndl.Tensor(grad_of(param.numpy().astype(np.float64)), dtype=dtype,
                                device=device, requires_grad=False)
        optimizer.step()
        trajectory.append(param.numpy().copy())
    return trajectory


def numpy_sgd(lr, momentum=0.0, wd=0.0, damp=None, unbiased=False, nesterov=False, steps=6):
    """The lectures' formulas in theta-space; Nesterov evaluates the gradient at theta - lr * s
    and the trajectory reports that look-ahead point (what the model holds)."""
    damp = momentum if damp is None else damp
    theta, u, s = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    out = []
    for t in range(1, steps + 1):
        point = theta - lr * s if nesterov else theta
        g = grad_of(point) + wd * point
        if momentum == 0.0:
            theta = theta - lr * g
        else:
            u = momentum * u + (1 - damp) * g
            s = u / (1 - momentum ** t) if unbiased else u
            theta = theta - lr * s
        out.append(theta - lr * s if nesterov else theta)
    return out


def numpy_adam(lr, b1, b2, eps, wd=0.0, corrected=True, steps=6):
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    out = []
    for t in range(1, steps + 1):
        g = grad_of(w) + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if corrected else (m, v)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out


CASES = [
    ("plain", lambda p: optim.SGD(p, lr=0.1), numpy_sgd(0.1)),
    ("weight decay", lambda p: optim.SGD(p, lr=0.1, weight_decay=0.05), numpy_sgd(0.1, wd=0.05)),
    ("momentum EMA", lambda p: optim.SGD(p, lr=0.1, momentum=0.9), numpy_sgd(0.1, 0.9)),
    ("pytorch-style dampening 0", lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.0),
     numpy_sgd(0.1, 0.9, damp=0.0)),
    ("unbiased momentum", lambda p: optim.SGD(p, lr=0.1, momentum=0.9, bias_correction=True),
     numpy_sgd(0.1, 0.9, unbiased=True)),
    ("nesterov", lambda p: optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True),
     numpy_sgd(0.1, 0.8, nesterov=True)),
    ("nesterov unbiased + wd", lambda p: optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True,
                                                   bias_correction=True, weight_decay=0.1),
     numpy_sgd(0.1, 0.8, wd=0.1, unbiased=True, nesterov=True)),
    ("adam", lambda p: optim.Adam(p, lr=0.05), numpy_adam(0.05, 0.9, 0.999, 1e-8)),
    ("adam wd no correction", lambda p: optim.Adam(p, lr=0.05, beta1=0.8, beta2=0.99, eps=1e-3,
                                                   weight_decay=0.1, bias_correction=False),
     numpy_adam(0.05, 0.8, 0.99, 1e-3, wd=0.1, corrected=False)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("make, expected", [(m, e) for _, m, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_update_rule_matches_numpy_over_several_steps(make, expected, device):
    trajectory = run_engine(make, device=device)
    for step, (got, want) in enumerate(zip(trajectory, expected, strict=True)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("make, expected", [(m, e) for _, m, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_update_rule_in_float64_matches_numpy_closely(make, expected):
    trajectory = run_engine(make, device=ndl.cpu_numpy(), dtype="float64")
    for step, (got, want) in enumerate(zip(trajectory, expected, strict=True)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"step {step + 1}")


def test_nesterov_differs_from_plain_momentum():
    plain = run_engine(lambda p: optim.SGD(p, lr=0.1, momentum=0.8))
    nesterov = run_engine(lambda p: optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True))
    assert not np.allclose(plain[-1], nesterov[-1])


def test_step_leaves_grad_untouched_and_params_leaves():
    param = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    grad = ndl.Tensor(np.ones_like(W0), dtype="float32", requires_grad=False)
    param.grad = grad
    for optimizer in (optim.SGD([param], lr=0.1, momentum=0.9, weight_decay=0.1),
                      optim.Adam([param], lr=0.1, weight_decay=0.1)):
        optimizer.step()
    assert param.grad is grad
    np.testing.assert_array_equal(grad.numpy(), np.ones_like(W0))
    assert param.is_leaf() and param.requires_grad


def test_state_is_created_lazily_and_params_without_grad_are_skipped():
    used = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    unused = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    optimizer = optim.Adam([used, unused])
    assert optimizer.state == {}
    used.grad = ndl.Tensor(np.ones_like(W0), dtype="float32", requires_grad=False)
    optimizer.step()
    assert list(optimizer.state) == [0] and optimizer.state[0]["step"] == 1
    np.testing.assert_array_equal(unused.numpy(), W0.astype(np.float32))


def test_zero_grad_and_needles_reset_grad():
    model = nn.Linear(3, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    model(ndl.Tensor(np.ones((2, 3)), dtype="float32")).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer.reset_grad()
    assert all(p.grad is None for p in model.parameters())


def test_memory_stays_flat_over_many_steps():
    ndl.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((4, 8)), dtype="float32",
                   requires_grad=False)
    y = ndl.Tensor(np.array([0, 1, 2, 3]), dtype="float32", requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    def train(steps):
        for _ in range(steps):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()

    train(20)
    tracemalloc.start()
    train(20)
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    train(300)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 300 steps"


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-1.0), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.Adam(p, beta2=1.5), "beta2"),
    (lambda p: optim.SGD([], lr=0.1), "empty"),
])
def test_bad_hyperparameters_are_named(make, message):
    param = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    with pytest.raises(ValueError, match=message):
        make([param])


def _with_grad(param, grad):
    param.grad = ndl.Tensor(grad, dtype="float32", device=param.device, requires_grad=False)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.5),
                                  lambda p: optim.Adam(p, lr=0.5)], ids=["sgd", "adam"])
def test_step_updates_the_parameter_in_place(device, make):
    # As in PyTorch: the array keeps its identity, and a Tensor sharing it sees the new values.
    param = nn.Parameter(ndl.Tensor(W0, dtype="float32", device=device))
    array, alias = param.realize_cached_data(), param.data
    _with_grad(param, np.ones_like(W0))
    make([param]).step()
    assert param.realize_cached_data() is array
    np.testing.assert_allclose(alias.numpy(), W0 - 0.5, rtol=1e-5, atol=1e-6)


def test_a_parameter_listed_twice_is_refused():
    param = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    other = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    with pytest.raises(ValueError, match="parameter 2 is parameter 0 listed again"):
        optim.SGD([param, other, param], lr=0.1)


def test_a_gradient_reading_another_weight_sees_it_before_the_step():
    # Weights change in place: a gradient that is another parameter's weight must be read as it
    # was when the step began, whatever the order of the parameters.
    first = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    second = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    _with_grad(first, np.ones_like(W0))
    second.grad = first.detach()
    optim.SGD([first, second], lr=0.5).step()
    np.testing.assert_allclose(second.numpy(), 0.5 * W0, rtol=1e-6)


def test_a_step_that_fails_changes_nothing():
    params = [nn.Parameter(ndl.Tensor(W0, dtype="float32")) for _ in range(3)]
    optimizer = optim.Adam(params, lr=0.1)
    for param in params:
        _with_grad(param, np.ones_like(W0))
    optimizer.step()
    before = [param.numpy().copy() for param in params]
    params[2].data = ndl.Tensor(W0, dtype="float32", device=ndl.cpu_numpy())
    _with_grad(params[2], np.ones_like(W0))
    with pytest.raises(ValueError, match="parameter 2: its optimizer state 'm' is float32"):
        optimizer.step()
    for param, values in zip(params[:2], before[:2]):
        np.testing.assert_array_equal(param.numpy(), values)
    assert [optimizer.state[i]["step"] for i in range(3)] == [1, 1, 1]


def test_a_view_parameter_gets_an_array_of_its_own():
    base = ndl.Tensor(np.arange(6.0).reshape(2, 3), dtype="float32")
    param = nn.Parameter(ndl.Tensor(np.zeros((3, 2)), dtype="float32"))
    param.data = ndl.transpose(base)  # a strided view of base's buffer
    assert not param.realize_cached_data().is_compact()
    _with_grad(param, np.ones((3, 2)))
    optim.SGD([param], lr=1.0).step()
    np.testing.assert_array_equal(param.numpy(), np.arange(6.0).reshape(2, 3).T - 1.0)
    np.testing.assert_array_equal(base.numpy(), np.arange(6.0).reshape(2, 3))
    assert param.realize_cached_data().is_compact()


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.5, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.5)], ids=["momentum", "adam"])
def test_parameters_sharing_an_array_are_updated_once_each(make):
    first = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    second = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    second.data = first.data
    alone = [nn.Parameter(ndl.Tensor(W0, dtype="float32")) for _ in range(2)]
    for param, grad in ((first, np.ones_like(W0)), (second, -np.ones_like(W0)),
                        (alone[0], np.ones_like(W0)), (alone[1], -np.ones_like(W0))):
        _with_grad(param, grad)
    make([first, second]).step()
    make(alone).step()
    np.testing.assert_array_equal(first.numpy(), alone[0].numpy())
    np.testing.assert_array_equal(second.numpy(), alone[1].numpy())


def test_a_parameter_that_skips_a_step_keeps_its_own_step_count():
    steady = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    late = nn.Parameter(ndl.Tensor(W0, dtype="float32"))
    optimizer = optim.Adam([steady, late], lr=0.05)
    _with_grad(steady, grad_of(W0))
    optimizer.step()
    for _ in range(3):
        for param in (steady, late):
            _with_grad(param, grad_of(param.numpy().astype(np.float64)))
        optimizer.step()
    assert optimizer.state[0]["step"] == 4 and optimizer.state[1]["step"] == 3
    want = numpy_adam(0.05, 0.9, 0.999, 1e-8, steps=4)
    np.testing.assert_allclose(steady.numpy(), want[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(late.numpy(), want[2], rtol=1e-5, atol=1e-6)


def test_a_gradient_on_another_device_is_named():
    param = nn.Parameter(ndl.Tensor(W0, dtype="float32", device=ndl.cpu()))
    param.grad = ndl.Tensor(W0, dtype="float32", device=ndl.cpu_numpy(), requires_grad=False)
    with pytest.raises(ValueError, match="parameter 0: gradient on cpu_numpy"):
        optim.SGD([param], lr=0.1).step()


def _loss(model, x):
    return (model(x) * model(x)).sum()


def test_backward_through_a_graph_built_before_a_step_raises():
    # The step updates the weights in place: the old graph would mix old and new values.
    model = nn.Linear(3, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x = ndl.Tensor(np.ones((4, 3)), dtype="float32", requires_grad=False)
    _loss(model, x).backward()
    stale = _loss(model, x)
    optimizer.step()
    optimizer.zero_grad()
    with pytest.raises(RuntimeError, match=r"tensor of shape \(\d+, \d+\) changed"):
        stale.backward()
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated


def test_graphs_built_after_a_step_or_without_the_stepped_parameters_are_fine():
    stepped, other = nn.Linear(3, 2), nn.Linear(3, 2)
    optimizer = optim.SGD(stepped.parameters(), lr=0.1)
    x = ndl.Tensor(np.ones((4, 3)), dtype="float32", requires_grad=False)
    untouched = _loss(other, x)
    for _ in range(3):
        optimizer.zero_grad()
        _loss(stepped, x).backward()
        optimizer.step()
    untouched.backward()
    assert all(p.grad is not None for p in other.parameters())
