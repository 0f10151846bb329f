"""The fused normalization op (ops.normalize) behind BatchNorm1d/2d and LayerNorm1d: values, first
and second derivatives against central differences on every device, errors, and the kernels a
normalization layer spends per training step. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.ops.normalization import Normalize, NormalizeGrad
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


@pytest.mark.parametrize("make, per_step", [
    # With the test's sum: one kernel each way for the statistics, 2 for the running estimates
    # and 1 to compact the variance's offset view; the affine part is composed, its broadcast
    # rows read as stored. The composed formula took 57 and 48.
    (lambda: nn.BatchNorm1d(8, device=ndl.cpu_numpy()), 19),
    (lambda: nn.LayerNorm1d(8, device=ndl.cpu_numpy()), 16),
], ids=["batch_norm", "layer_norm"])
def test_normalization_layer_launches(make, per_step):
    layer = make()
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((16, 8)), device=ndl.cpu_numpy(),
                   dtype="float32")
    layer(x).sum().backward()  # the first bias gradient also fills a cached row of ones
    with count_launches(ndl.cpu_numpy()) as launches:
        layer(x).sum().backward()
    assert launches["norm_forward"] == 1 and launches["norm_backward"] == 1
    assert sum(launches.values()) == per_step


def test_running_estimates_keep_the_layer_dtype_on_wider_input():
    layer = nn.BatchNorm1d(3, device=ndl.cpu_numpy())
    layer(ndl.Tensor(np.random.default_rng(1).standard_normal((5, 3)), device=ndl.cpu_numpy(),
                     dtype="float64"))
    assert layer.running_mean.dtype == "float32" and layer.running_var.dtype == "float32"
