"""Layer outputs and gradients against numpy implementations of the same formulas (gradients by
central differences of the float64 numpy forward). Engine layer tests (nn)."""

import numpy as np
import pytest

import engine as ndl
from engine import init, nn

RNG = np.random.default_rng(42)


def tensor(array, requires_grad=True):
    return ndl.Tensor(np.asarray(array, dtype=np.float32), dtype="float32",
                      requires_grad=requires_grad)


def numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = f(x)
        x[index] = old - eps
        down = f(x)
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


def check_module(module, reference, x, params=()):
    """Forward equals `reference(x, *params)`; the gradients of sum(out * r) for the input and each
    named parameter equal the numeric gradients of the reference."""
    x_t = tensor(x)
    out = module(x_t)
    expected = reference(x.astype(np.float64), *[p.numpy().astype(np.float64) for p in params])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    r = RNG.standard_normal(expected.shape)
    (out * tensor(r, requires_grad=False)).sum().backward()
    values = [x.astype(np.float64)] + [p.numpy().astype(np.float64) for p in params]
    for position, got in enumerate([x_t] + list(params)):
        def objective(v, position=position):
            args = list(values)
            args[position] = v
            return float(np.sum(reference(*args) * r))
        expected_grad = numeric_grad(objective, values[position].copy())
        np.testing.assert_allclose(got.grad.numpy(), expected_grad, rtol=1e-3, atol=1e-3)


def test_linear_matches_x_w_plus_b():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (5, 3) and layer.bias.shape == (1, 3)
    check_module(layer, lambda x, w, b: x @ w + b, RNG.standard_normal((4, 5)),
                 [layer.weight, layer.bias])


def test_linear_without_bias_and_with_chosen_inits():
    layer = nn.Linear(6, 2, bias=False, weight_init=init.zeros)
    assert layer.bias is None and len(layer.parameters()) == 1
    np.testing.assert_array_equal(layer.weight.numpy(), np.zeros((6, 2)))
    zero_bias = nn.Linear(6, 2, bias_init="zeros")
    np.testing.assert_array_equal(zero_bias.bias.numpy(), np.zeros((1, 2)))


def test_linear_default_init_is_needles_kaiming_uniform():
    ndl.manual_seed(5)
    layer = nn.Linear(400, 300)
    bound = np.sqrt(2.0) * np.sqrt(3.0 / 400)
    weight = layer.weight.numpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.95 * bound
    assert abs(weight.var() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3
    bias_bound = np.sqrt(2.0) * np.sqrt(3.0 / 300)  # needle: kaiming_uniform(out, 1)
    assert np.abs(layer.bias.numpy()).max() <= bias_bound


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="width 5.*\\(2, 4\\)"):
        nn.Linear(5, 3)(tensor(np.ones((2, 4))))


def test_linear_accepts_higher_rank_input():
    layer = nn.Linear(4, 2)
    x = RNG.standard_normal((3, 5, 4))
    expected = x @ layer.weight.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(layer(tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module, reference", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Identity(), lambda x: x),
])
def test_activations(module, reference):
    check_module(module, reference, RNG.standard_normal((3, 4)) + 0.05)


def test_flatten_and_residual():
    x = RNG.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(nn.Flatten()(tensor(x)).numpy(),
                                  x.reshape(2, 12).astype(np.float32))
    check_module(nn.Residual(nn.Tanh()), lambda v: v + np.tanh(v), RNG.standard_normal((3, 4)))


def softmax_loss_reference(z, y):
    z_max = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - z_max).sum(axis=1)) + z_max[:, 0]
    return np.mean(lse - z[np.arange(len(y)), y])


def test_softmax_loss_value_and_gradient():
    z = RNG.standard_normal((6, 4))
    y = np.array([0, 3, 1, 2, 3, 0])
    z_t = tensor(z)
    loss = nn.SoftmaxLoss()(z_t, tensor(y, requires_grad=False))
    np.testing.assert_allclose(float(loss.numpy()), softmax_loss_reference(z, y), rtol=1e-5)
    loss.backward()
    expected = numeric_grad(lambda v: softmax_loss_reference(v, y), z.copy())
    np.testing.assert_allclose(z_t.grad.numpy(), expected, rtol=1e-3, atol=1e-4)


def test_softmax_loss_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        nn.SoftmaxLoss()(tensor(np.zeros((4, 3))), tensor(np.zeros(5), requires_grad=False))


def layer_norm_reference(x, w, b, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return w * (x - mean) / np.sqrt(var + eps) + b


def batch_norm_reference(x, w, b, eps=1e-5):
    return w * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + b


def test_layer_norm_matches_reference():
    layer = nn.LayerNorm1d(5)
    layer.weight.data = tensor(RNG.standard_normal(5))
    layer.bias.data = tensor(RNG.standard_normal(5))
    check_module(layer, layer_norm_reference, RNG.standard_normal((4, 5)) * 3,
                 [layer.weight, layer.bias])


def test_batch_norm_training_matches_reference_and_updates_running_stats():
    layer = nn.BatchNorm1d(3, momentum=0.1)
    layer.weight.data = tensor(RNG.standard_normal(3))
    layer.bias.data = tensor(RNG.standard_normal(3))
    x = RNG.standard_normal((8, 3)) * 2 + 1
    check_module(layer, batch_norm_reference, x, [layer.weight, layer.bias])
    # check_module ran one forward: running = 0.9 * initial + 0.1 * batch statistic (biased var)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * x.var(axis=0), rtol=1e-5)


def test_batch_norm_eval_uses_running_stats_so_examples_are_independent():
    layer = nn.BatchNorm1d(4)
    for _ in range(3):
        layer(tensor(RNG.standard_normal((16, 4)) * 3 + 2))
    layer.eval()
    batch = RNG.standard_normal((10, 4))
    alone = layer(tensor(batch[:1])).numpy()
    together = layer(tensor(batch)).numpy()[:1]
    np.testing.assert_allclose(alone, together, rtol=1e-6)
    expected = (batch[:1] - layer.running_mean.numpy()) / np.sqrt(
        layer.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(alone, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(4), nn.LayerNorm1d(4)])
def test_norms_reject_wrong_rank_or_width(layer):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=f"{name}.*\\(2, 3, 4\\)"):
        layer(tensor(np.ones((2, 3, 4))))
    with pytest.raises(ValueError, match=f"{name}.*\\(2, 5\\)"):
        layer(tensor(np.ones((2, 5))))


def test_dropout_preserves_mean_and_zeroes_fraction_p():
    ndl.manual_seed(0)
    p = 0.3
    x = np.ones((500, 400))
    out = nn.Dropout(p)(tensor(x)).numpy()
    assert abs(out.mean() - 1.0) < 0.01
    assert abs((out == 0).mean() - p) < 0.01
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)


def test_dropout_is_identity_in_eval_and_reproducible_from_seed():
    layer = nn.Dropout(0.5)
    x = tensor(RNG.standard_normal((20, 20)))
    np.testing.assert_array_equal(layer.eval()(x).numpy(), x.numpy())
    layer.train()
    ndl.manual_seed(7)
    first = layer(x).numpy()
    ndl.manual_seed(7)
    np.testing.assert_array_equal(layer(x).numpy(), first)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match="Dropout probability"):
        nn.Dropout(p)
