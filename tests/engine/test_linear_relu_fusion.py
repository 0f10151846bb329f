"""nn.Sequential runs a bias-free Linear and the ReLU after it as one kernel (ops.matmul_relu), and
their backward gates inside the products: the same values as the layers run apart, on every device,
and apart whenever a hook must see the product. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.nn import container
from engine.probes import LayerProbe
from tests.devices import DEVICE_PARAMS


def _mlp(device, bias=False, depth=4, width=12):
    ndl.manual_seed(4)
    layers = []
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width, bias=bias, device=device), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 3, bias=bias, device=device))


def _batch(device, rows=9, width=12):
    data = np.random.default_rng(2).standard_normal((rows, width))
    return ndl.Tensor(data, device=device, requires_grad=False)


def _step(model, x):
    """(output, weight gradients, forward launches, backward launches) of sum(out^2)."""
    with count_launches(x.device) as forward:
        out = model(x)
    with count_launches(x.device) as backward:
        (out * out).sum().backward()
    return out.numpy(), [p.grad.numpy() for p in model.parameters()], forward, backward


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_fused_layers_give_the_separate_layers_values_exactly(device, monkeypatch):
    x = _batch(device)
    fused = _step(_mlp(device), x)
    monkeypatch.setattr(container, "_runs_as_one_kernel", lambda *args: False)
    apart = _step(_mlp(device), x)
    np.testing.assert_array_equal(fused[0], apart[0])
    for got, want in zip(fused[1], apart[1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert dict(fused[2]) == {"matmul": 4}
    assert apart[2]["ewise_relu"] == 3
    # Backward: 2 products per layer (1 for the first, whose input needs no gradient), each
    # hidden layer's ReLU gradient inside one of them.
    assert fused[3]["matmul"] == 7 and fused[3]["ewise_relu_grad"] == 0
    assert apart[3]["ewise_relu_grad"] == 0  # the gate fuses into the product either way


def test_a_hook_on_the_linear_sees_its_product():
    device = ndl.cpu_numpy()
    model, x = _mlp(device), _batch(device)
    seen = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append(output.numpy()))
    with count_launches(device) as launches:
        model(x)
    assert launches["ewise_relu"] == 1  # the hooked layer's ReLU runs on its own
    assert seen[0].min() < 0  # the product itself, before ReLU
    np.testing.assert_allclose(seen[0], x.numpy() @ model[0].weight.numpy(), rtol=1e-6)


@pytest.mark.parametrize("change", ["bias", "subclass", "batched_input"])
def test_what_the_fused_kernel_cannot_run_goes_apart(change):
    device = ndl.cpu_numpy()
    model, x = _mlp(device, bias=change == "bias"), _batch(device)
    if change == "subclass":
        class Scaled(nn.ReLU):
            def forward(self, value):
                return super().forward(value) * 2.0
        model.layers[1] = Scaled()
    if change == "batched_input":
        x = ndl.Tensor(np.ones((2, 3, 12)), device=device, requires_grad=False)
    with count_launches(device) as launches:
        model(x)
    assert launches["ewise_relu"] >= 1


def test_matmul_relu_names_bad_shapes():
    device = ndl.cpu_numpy()
    a = ndl.Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"matmul_relu needs matrices .* \(2, 3\) and \(4, 5\)"):
        ndl.matmul_relu(a, ndl.Tensor(np.ones((4, 5)), device=device))


def test_probes_hook_only_while_they_record(monkeypatch):
    device = ndl.cpu_numpy()
    model, x = _mlp(device), _batch(device)
    probe = LayerProbe(model)
    assert not any(module._forward_hooks for module in model.layers)
    labels = ndl.Tensor(np.zeros(9), device=device, requires_grad=False)
    record = probe.snapshot(0, x, labels, nn.SoftmaxLoss())
    assert not any(module._forward_hooks for module in model.layers)
    monkeypatch.setattr(container, "_runs_as_one_kernel", lambda *args: False)
    apart = LayerProbe(model).snapshot(0, x, labels, nn.SoftmaxLoss())
    assert record == apart
    assert record["layers"][0]["pre_act_norm"] > record["layers"][0]["post_act_norm"] > 0
