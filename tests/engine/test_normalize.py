"""The fused normalization ops (ops.normalize, ops.normalize_affine) behind BatchNorm1d/2d and
LayerNorm1d: values, first and second derivatives against central differences on every device,
errors, and the kernels a normalization layer spends per training step. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.ops.normalization import (
    Normalize,
    NormalizeAffine,
    NormalizeAffineGrad,
    NormalizeGrad,
)
from tests.devices import DEVICE_PARAMS
from tests.op_check import check_op


def _normalized(x, axis, eps=1e-5):
    mean = x.mean(axis=axis, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _normalize_grad(x, g, axis, eps):
    """J(x) g in float64, written out (J symmetric)."""
    xhat, count = _normalized(x, axis, eps), x.shape[axis]
    scale = 1.0 / np.sqrt(((x - x.mean(axis=axis, keepdims=True)) ** 2).mean(
        axis=axis, keepdims=True) + eps)
    return scale * (g - g.sum(axis=axis, keepdims=True) / count
                    - xhat * (g * xhat).sum(axis=axis, keepdims=True) / count)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
@pytest.mark.parametrize("axis", [0, 1])
def test_normalize_value_and_gradient(device, view, axis):
    check_op(lambda x: ndl.ops.normalize(x, axis), lambda x: _normalized(x, axis), (6, 5),
             device=device, view=view)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("axis", [0, 1])
def test_gradient_op_and_its_own_gradient(device, axis):
    # A large eps keeps the central differences of the second derivative well conditioned.
    def gradient_op(x, g):
        forward = Normalize(axis, 0.1)
        return NormalizeGrad(forward, forward.compute(x.realize_cached_data()))(x, g)

    check_op(gradient_op, lambda x, g: _normalize_grad(x, g, axis, 0.1), (5, 4), (5, 4),
             device=device)


def test_statistics_after_compute():
    x = np.random.default_rng(2).standard_normal((7, 3)) * 2.0 + 1.0
    forward = Normalize(0, 1e-5)
    forward.compute(ndl.NDArray(x, device=ndl.cpu_numpy(), dtype="float64"))
    np.testing.assert_allclose(forward.stats.numpy(), [x.mean(axis=0), x.var(axis=0)],
                               rtol=1e-12)


@pytest.mark.parametrize("shape, axis", [((2, 3, 4), 1), ((4,), 0), ((3, 4), 2), ((3, 4), -1)])
def test_normalize_rejects_other_ranks_and_axes(shape, axis):
    with pytest.raises(ValueError, match="normalize works over axis 0 or 1 of a 2-D tensor"):
        ndl.ops.normalize(ndl.Tensor(np.zeros(shape), device=ndl.cpu_numpy()), axis)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
@pytest.mark.parametrize("axis", [0, 1])
def test_normalize_affine_value_and_gradients(device, view, axis):
    check_op(lambda x, w, b: ndl.ops.normalize_affine(x, w, b, axis),
             lambda x, w, b: w * _normalized(x, axis) + b, (6, 5), (5,), (5,), device=device,
             view=view)


def _affine_gradient(x, w, g, axis, eps):
    """(x's, weight's, bias's gradients) of w * xhat + b for the cotangent g, in float64."""
    return (_normalize_grad(x, w * g, axis, eps), (g * _normalized(x, axis, eps)).sum(axis=0),
            g.sum(axis=0))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("output", [0, 1, 2], ids=["input", "weight", "bias"])
def test_affine_gradient_op_and_its_own_gradient(device, axis, output):
    # Each of the tuple op's three outputs, differentiated with respect to x, weight and g.
    def gradient_op(x, w, g):
        forward = NormalizeAffine(axis, 0.1)
        data = x.realize_cached_data()
        forward.compute(data, w.realize_cached_data(), data.device.full((4,), 0.0, data.dtype))
        return NormalizeAffineGrad(forward)(x, w, g)[output]

    check_op(gradient_op, lambda x, w, g: _affine_gradient(x, w, g, axis, 0.1)[output], (5, 4),
             (4,), (5, 4), device=device)


@pytest.mark.parametrize("weight_shape, message", [
    ((4,), r"weight must have shape \(3,\)"),
    ((1, 3), r"weight must have shape \(3,\)"),
])
def test_normalize_affine_rejects_parameters_of_another_shape(weight_shape, message):
    x = ndl.Tensor(np.zeros((2, 3)), device=ndl.cpu_numpy())
    weight = ndl.Tensor(np.ones(weight_shape), device=ndl.cpu_numpy())
    bias = ndl.Tensor(np.zeros(3), device=ndl.cpu_numpy())
    with pytest.raises(ValueError, match=message):
        ndl.ops.normalize_affine(x, weight, bias, 0)


def test_normalize_affine_rejects_other_ranks():
    x = ndl.Tensor(np.zeros((2, 3, 4)), device=ndl.cpu_numpy())
    with pytest.raises(ValueError, match="normalize works over axis 0 or 1 of a 2-D tensor"):
        ndl.ops.normalize_affine(x, x, x, 1)


@pytest.mark.parametrize("make, per_step", [
    # One kernel each way for the statistics and the affine part (layer norm's backward sums
    # its parameters' gradients in the same protocol call; batch norm's forward updates both
    # running estimates); the test's sum adds a reduction, a fill, and a compact of the
    # broadcast cotangent; the gradients of x, weight and bias accumulate onto the first
    # step's (3 adds). The composed formula took 57 and 48; fused statistics with a composed
    # affine part and separate running estimates, 19 and 16.
    (lambda: nn.BatchNorm1d(8, device=ndl.cpu_numpy()), 8),
    (lambda: nn.LayerNorm1d(8, device=ndl.cpu_numpy()), 8),
], ids=["batch_norm", "layer_norm"])
def test_normalization_layer_launches(make, per_step):
    layer = make()
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((16, 8)), device=ndl.cpu_numpy(),
                   dtype="float32")
    layer(x).sum().backward()
    with count_launches(ndl.cpu_numpy()) as launches:
        layer(x).sum().backward()
    assert launches["norm_affine_forward"] == 1 and launches["norm_affine_backward"] == 1
    assert launches["ewise_add"] == 3
    assert sum(launches.values()) == per_step


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_batch_norm_running_estimates_move_in_place_in_the_forward(device):
    # Both estimates are rows of one array that the forward's kernel updates; the layer's
    # running_mean and running_var stay its views, so a Tensor read before the step sees it.
    layer = nn.BatchNorm1d(3, momentum=0.25, device=device)
    x = np.random.default_rng(2).standard_normal((6, 3))
    layer(ndl.Tensor(x, device=device, dtype="float32"))
    mean, var = layer.running_mean, layer.running_var
    with count_launches(device) as launches:
        layer(ndl.Tensor(x, device=device, dtype="float32"))
    assert launches["norm_affine_forward"] == 1 and launches["ewise_axpby"] == 0
    assert layer.running_mean is mean and layer.running_var is var
    decay = 0.75 ** 2
    np.testing.assert_allclose(mean.numpy(), (1 - decay) * x.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var.numpy(), decay + (1 - decay) * x.var(axis=0), rtol=1e-5)


def test_an_eval_graph_keeps_the_mean_of_its_forward_across_a_training_step():
    # The running mean moves in place; an eval-mode graph still open when a training step runs
    # must differentiate with the mean its forward used.
    device = ndl.cpu_numpy()

    def weight_grad(step_between):
        ndl.manual_seed(0)
        layer = nn.BatchNorm1d(3, momentum=0.5, device=device)
        rng = np.random.default_rng(7)
        layer(ndl.Tensor(rng.standard_normal((4, 3)), device=device, dtype="float32"))
        layer.eval()
        loss = layer(ndl.Tensor(np.ones((2, 3)), device=device, dtype="float32")).sum()
        if step_between:
            layer.train()
            layer(ndl.Tensor(100 + rng.standard_normal((4, 3)), device=device, dtype="float32"))
        loss.backward()
        return layer.weight.grad.numpy()

    np.testing.assert_array_equal(weight_grad(True), weight_grad(False))


def test_batch_norm_given_a_numpy_dtype_still_fuses_its_estimates():
    device = ndl.cpu_numpy()
    layer = nn.BatchNorm1d(3, device=device, dtype=np.float32)
    x = ndl.Tensor(np.ones((4, 3)), device=device, dtype="float32")
    layer(x)
    with count_launches(device) as launches:
        layer(x)
    assert launches["ewise_axpby"] == 0 and launches["norm_affine_forward"] == 1


def test_batch_norm_on_wider_input_updates_its_estimates_apart():
    # A float64 batch in a float32 layer: the stats come in float64, the estimates stay float32
    # and take one separate kernel.
    device = ndl.cpu_numpy()
    layer = nn.BatchNorm1d(3, momentum=0.5, device=device)
    x = np.random.default_rng(3).standard_normal((5, 3))
    with count_launches(device) as launches:
        layer(ndl.Tensor(x, device=device, dtype="float64"))
    assert launches["ewise_axpby"] == 1
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.5 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.5 + 0.5 * x.var(axis=0), rtol=1e-6)
    mean = layer.running_mean
    layer(ndl.Tensor(x, device=device, dtype="float64"))
    assert layer.running_mean is mean  # updated in place, as on the fused path
    np.testing.assert_allclose(mean.numpy(), 0.75 * x.mean(axis=0), rtol=1e-6)


def test_running_estimates_keep_the_layer_dtype_on_wider_input():
    layer = nn.BatchNorm1d(3, device=ndl.cpu_numpy())
    layer(ndl.Tensor(np.random.default_rng(1).standard_normal((5, 3)), device=ndl.cpu_numpy(),
                     dtype="float64"))
    assert layer.running_mean.dtype == "float32" and layer.running_var.dtype == "float32"


def test_running_estimates_follow_assignments_and_loads():
    # The estimates live in one (2, dim) array between steps; replacing either (by assignment
    # or load_state_dict) must be honoured by the next step, not overwritten by the old array.
    device = ndl.cpu_numpy()
    layer = nn.BatchNorm1d(2, momentum=0.5, device=device)
    x = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 6.0]]), device=device, dtype="float32")
    layer(x)
    np.testing.assert_allclose(layer.running_mean.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(layer.running_var.numpy(), [1.0, 2.5])
    layer.running_mean = ndl.Tensor(np.array([10.0, 20.0]), device=device, dtype="float32")
    layer(x)
    np.testing.assert_allclose(layer.running_mean.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(layer.running_var.numpy(), [1.0, 3.25])
    layer.load_state_dict({"weight": np.ones(2), "bias": np.zeros(2),
                           "running_mean": np.zeros(2), "running_var": np.full(2, 4.0)})
    layer(x)
    np.testing.assert_allclose(layer.running_mean.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(layer.running_var.numpy(), [2.5, 4.0])


def test_batch_norm_rejects_an_empty_training_batch():
    layer = nn.BatchNorm1d(3, device=ndl.cpu_numpy())
    with pytest.raises(ValueError, match=r"at least one example in training mode.*\(0, 3\)"):
        layer(ndl.Tensor(np.zeros((0, 3)), device=ndl.cpu_numpy()))


def test_running_estimates_keep_the_layer_dtype_after_an_assignment():
    layer = nn.BatchNorm1d(2, device=ndl.cpu_numpy())
    layer.running_mean = ndl.Tensor(np.zeros(2), device=ndl.cpu_numpy(), dtype="float64")
    layer(ndl.Tensor(np.ones((3, 2)), device=ndl.cpu_numpy(), dtype="float32"))
    assert layer.running_mean.dtype == "float32" and layer.running_var.dtype == "float32"


def test_normalize_affine_names_parameters_that_are_not_tensors():
    x = ndl.Tensor(np.zeros((2, 3)), device=ndl.cpu_numpy())
    with pytest.raises(TypeError, match="weight must be a Tensor, got list"):
        ndl.ops.normalize_affine(x, [1.0, 1.0, 1.0], x, 0)


def test_affine_second_derivative_keeps_float64_with_a_float32_layer():
    device = ndl.cpu_numpy()
    rng = np.random.default_rng(4)
    x = ndl.Tensor(rng.standard_normal((4, 3)), device=device, dtype="float64")
    weight = ndl.Tensor(rng.standard_normal(3), device=device, dtype="float32")
    g = ndl.Tensor(rng.standard_normal((4, 3)), device=device, dtype="float64")
    forward = NormalizeAffine(0, 1e-5)
    forward.compute(x.realize_cached_data(), weight.realize_cached_data(),
                    weight.realize_cached_data())
    grads = NormalizeAffineGrad(forward)(x, weight, g)
    grads[0].sum().backward()
    assert g.grad.dtype == "float64" and x.grad.dtype == "float64"
