"""The convolution issue's nn layers on every enabled device: Conv (NCHW, needle's init), MaxPool2d,
AvgPool2d, BatchNorm2d; their gradients and errors, and per-layer probes on a conv net.
Tests of the engine nn layer.
"""

import math

import numpy as np
import pytest

import engine as ndl
from engine import init
from engine.nn.activation import ReLU
from engine.nn.container import Flatten, Sequential
from engine.nn.conv import Conv
from engine.nn.linear import Linear
from engine.nn.norm2d import BatchNorm2d
from engine.nn.pooling import AvgPool2d, MaxPool2d
from engine.probes import LayerProbe
from tests.devices import DEVICE_PARAMS
from tests.engine.test_conv_ops import reference_conv, reference_pool
from tests.op_check import REFERENCE, check_op


def _nchw(fn):
    """An NHWC numpy reference applied to NCHW data."""
    return lambda x, *rest: np.transpose(fn(np.transpose(x, (0, 2, 3, 1)), *rest), (0, 3, 1, 2))


# (in, out, kernel, stride, padding, dilation, groups, input NCHW)
CONV_LAYERS = [
    (2, 3, 3, 1, None, 1, 1, (1, 2, 5, 4)),
    (3, 2, 1, 2, None, 1, 1, (2, 3, 4, 5)),
    (2, 2, 2, 1, 1, 1, 1, (1, 2, 3, 4)),
    (2, 2, 3, 1, None, 2, 1, (1, 2, 6, 5)),
    (4, 2, 3, 2, None, 1, 2, (1, 4, 5, 5)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layer", CONV_LAYERS, ids=str)
def test_conv_layer_forward_and_gradients(layer, device):
    c_in, c_out, k, stride, padding, dilation, groups, x_shape = layer
    resolved = dilation * (k - 1) // 2 if padding is None else padding

    def fn(x, w, b):
        module = Conv(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, device=x.device, dtype=x.dtype)
        module.weight, module.bias = w, b
        return module(x)

    def ref(x, w, b):
        return _nchw(lambda v: reference_conv(v, w, stride, resolved, dilation, groups) + b)(x)

    check_op(fn, ref, x_shape, (k, k, c_in // groups, c_out), (c_out,), device=device, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_conv_default_padding_keeps_size(device):
    x = init.randn(2, 3, 7, 6, device=device)
    for k, dilation in ((1, 1), (3, 1), (5, 1), (3, 2)):
        assert Conv(3, 4, k, dilation=dilation, device=device)(x).shape == (2, 4, 7, 6)
    assert Conv(3, 4, 3, stride=2, device=device)(x).shape == (2, 4, 4, 3)


def test_conv_init_follows_needle():
    ndl.manual_seed(0)
    layer = Conv(8, 64, 3, groups=2, device=REFERENCE)
    fan_in = 8 // 2 * 9
    assert layer.weight.shape == (3, 3, 4, 64) and layer.bias.shape == (64,)
    assert (layer.fan_in, layer.fan_out) == (fan_in, 64 * 9)
    weight, bias = layer.weight.numpy(), layer.bias.numpy()
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.95 * bound
    assert abs(weight.var() - bound ** 2 / 3) < 0.1 * bound ** 2 / 3
    assert np.abs(bias).max() <= 1 / math.sqrt(fan_in) and np.abs(bias).max() > 0.8 / 6
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert Conv(2, 2, 3, bias=False, device=REFERENCE).parameters()[0].shape == (3, 3, 2, 2)
    assert len(Conv(2, 2, 3, bias=False, device=REFERENCE).parameters()) == 1


def test_conv_custom_inits_and_reset():
    layer = Conv(2, 3, 3, device=REFERENCE, weight_init=init.kaiming_normal, bias_init=init.zeros)
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(3))
    before = layer.weight.numpy().copy()
    layer.reset_parameters()
    assert layer.weight.shape == before.shape and not np.array_equal(layer.weight.numpy(), before)


def test_conv_layer_rejects_bad_input():
    layer = Conv(3, 4, 3, device=REFERENCE)
    with pytest.raises(ValueError, match=r"NCHW input with 3 channels, got shape \(1, 2, 5, 5\)"):
        layer(init.randn(1, 2, 5, 5, device=REFERENCE))
    with pytest.raises(ValueError, match=r"got shape \(3, 5, 5\)"):
        layer(init.randn(3, 5, 5, device=REFERENCE))
    with pytest.raises(ValueError, match=r"groups=2 must divide in_channels=3"):
        Conv(3, 4, 3, groups=2, device=REFERENCE)
    with pytest.raises(ValueError, match=r"Conv: kernel_size must be >= 1"):
        Conv(3, 4, 0, device=REFERENCE)
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        Conv(3, 4, 5, padding=0, device=REFERENCE)(init.randn(1, 3, 3, 3, device=REFERENCE))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("kind", ("max", "avg"))
def test_pool_layers(kind, device):
    cls, reduce = (MaxPool2d, np.maximum) if kind == "max" else (AvgPool2d, np.add)
    check_op(lambda a: cls(3, stride=2, padding=1)(a),
             _nchw(lambda x: reference_pool(x, 3, 2, 1, reduce)), (2, 2, 5, 6), device=device)
    x = init.randn(1, 3, 8, 6, device=device)
    assert cls(2)(x).shape == (1, 3, 4, 3)
    with pytest.raises(ValueError, match=r"expects NCHW input of rank 4, got shape \(8, 6\)"):
        cls(2)(init.randn(8, 6, device=device))


def _batchnorm_reference(x, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_batchnorm2d_training_forward_and_gradient(device):
    check_op(lambda x: BatchNorm2d(3, device=x.device, dtype=x.dtype)(x),
             _batchnorm_reference, (2, 3, 3, 2), device=device)


def test_batchnorm2d_running_statistics_and_eval():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3, 5)) * 3.0 + 1.0
    layer = BatchNorm2d(2, momentum=0.5, device=REFERENCE, dtype="float64")
    layer(ndl.Tensor(x, device=REFERENCE, dtype="float64"))
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.5 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(layer.running_var.numpy(), 0.5 + 0.5 * x.var(axis=(0, 2, 3)))
    layer.eval()
    out = layer(ndl.Tensor(x[:1], device=REFERENCE, dtype="float64")).numpy()
    mean = layer.running_mean.numpy().reshape(1, 2, 1, 1)
    var = layer.running_var.numpy().reshape(1, 2, 1, 1)
    np.testing.assert_allclose(out, (x[:1] - mean) / np.sqrt(var + 1e-5))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(2\) expects NCHW .* \(4, 3, 3, 5\)"):
        layer(ndl.Tensor(np.zeros((4, 3, 3, 5)), device=REFERENCE, dtype="float64"))


def test_probes_see_conv_layers():
    ndl.manual_seed(0)
    model = Sequential(Conv(1, 4, 3, device=REFERENCE), BatchNorm2d(4, device=REFERENCE),
                       ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 3 * 3, 5, device=REFERENCE))
    probe = LayerProbe(model)
    x = init.randn(6, 1, 6, 6, device=REFERENCE)
    y = init.randn(6, 5, device=REFERENCE)
    record = probe.snapshot(0, x, y, lambda out, target: ((out - target) ** 2).mean())
    conv_record, linear_record = record["layers"]
    assert conv_record["fan_in"] == 9 and conv_record["activation"] == "ReLU"
    assert conv_record["pre_act_norm"] > 0 and conv_record["weight_grad_norm"] > 0
    assert linear_record["fan_in"] == 36
    probe.close()
