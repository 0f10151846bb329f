"""nn.Sequential runs a normalization layer (LayerNorm1d, BatchNorm1d, BatchNorm2d) and the ReLU
after it in the normalization's own kernels, forward and backward: the same outputs, gradients
and running estimates as the layers run apart, on every device, in training and in evaluation.
Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.nn import container
from tests.devices import DEVICE_PARAMS


def _mlp(device, norm):
    ndl.manual_seed(6)
    layers = []
    for _ in range(3):
        layers += [nn.Linear(10, 10, device=device), norm(10, device=device), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(10, 4, device=device))


def _convnet(device, _=None):
    ndl.manual_seed(6)
    return nn.Sequential(nn.Conv(2, 4, 3, device=device), nn.BatchNorm2d(4, device=device),
                         nn.ReLU(), nn.Conv(4, 3, 3, device=device))


def _batch(device, shape):
    data = np.random.default_rng(1).standard_normal(shape)
    return ndl.Tensor(data, device=device, dtype="float32", requires_grad=False)


def _run(model, x, training):
    """(output, parameter gradients, buffers, launches forward and backward) of sum(out^2)."""
    model.train() if training else model.eval()
    with count_launches(x.device) as launches:
        out = model(x)
        (out * out).sum().backward()
    buffers = [getattr(m, name).numpy() for _, m in model.named_modules()
               for name in m._buffer_names]
    return out.numpy(), [p.grad.numpy() for p in model.parameters()], buffers, launches


CASES = [("layer_norm", _mlp, nn.LayerNorm1d, (7, 10)),
         ("batch_norm", _mlp, nn.BatchNorm1d, (7, 10)),
         ("batch_norm_2d", _convnet, None, (3, 2, 5, 5))]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,build,norm,shape", CASES, ids=[c[0] for c in CASES])
def test_a_norm_and_its_relu_give_the_separate_layers_values(name, build, norm, shape, training,
                                                             device, monkeypatch):
    x = _batch(device, shape)
    fused = _run(build(device, norm), x, training)
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    apart = _run(build(device, norm), x, training)
    np.testing.assert_array_equal(fused[0], apart[0])
    for got, want in zip(fused[1] + fused[2], apart[1] + apart[2], strict=True):
        np.testing.assert_array_equal(got, want)
    if training:  # in evaluation batch norm is a scale and a shift, and its ReLU runs apart
        # Forward, the ReLU in the norm's kernel; backward, its gradient in the norm's (before a
        # product, in the product's either way).
        assert fused[3]["ewise_relu"] == 0 and apart[3]["ewise_relu"] > 0
        assert fused[3]["ewise_relu_grad"] == 0
        assert apart[3]["ewise_relu_grad"] == (1 if name == "batch_norm_2d" else 0)


@pytest.mark.parametrize("norm", [nn.LayerNorm1d, nn.BatchNorm1d])
@pytest.mark.parametrize("head", [False, True], ids=["product_gates", "norm_gates"])
def test_the_fused_norm_differentiates_twice(norm, head):
    # A gradient-norm penalty through the normalization's kernel and its ReLU gate, against the
    # layers run apart, in float64. With the norm at the head, its own backward applies the gate.
    device = ndl.cpu_numpy()

    def penalty(fuse):
        ndl.manual_seed(2)
        layers = [nn.Linear(6, 6, device=device, dtype="float64"),
                  norm(6, device=device, dtype="float64"), nn.ReLU()]
        if not head:
            layers.append(nn.Linear(6, 1, device=device, dtype="float64"))
        model = nn.Sequential(*layers)
        x = ndl.Tensor(np.random.default_rng(0).standard_normal((5, 6)), device=device,
                       dtype="float64")
        if not fuse:
            container._takes_the_relu, saved = (lambda *args: False), container._takes_the_relu
        try:
            (model(x) ** 2).sum().backward()
            gx = x.grad
            x.grad = None
            (gx * gx).sum().backward()
        finally:
            if not fuse:
                container._takes_the_relu = saved
        return [p.grad.numpy() for p in model.parameters()]

    for got, want in zip(penalty(True), penalty(False), strict=True):
        np.testing.assert_array_equal(got, want)
