"""nn.Linear runs its product and bias as one kernel and nn.Sequential a Linear with the ReLU after
it (ops.linear), and their backward gates inside the products: the same values as the ops composed,
on every device, and the layers apart whenever a hook must see the product. Engine tests (the
normalization layers' own fusion: test_norm_relu_fusion.py).
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


def _batch(device, rows=9, width=12, dtype="float32"):
    data = np.random.default_rng(2).standard_normal((rows, width))
    return ndl.Tensor(data, device=device, dtype=dtype, requires_grad=False)


def _step(model, x):
    """(output, weight gradients, forward launches, backward launches) of sum(out^2)."""
    with count_launches(x.device) as forward:
        out = model(x)
    with count_launches(x.device) as backward:
        (out * out).sum().backward()
    return out.numpy(), [p.grad.numpy() for p in model.parameters()], forward, backward


def _composed_linear(self, X):
    """nn.Linear's forward as the ops composed (needle's), for the reference runs."""
    out = ndl.matmul(X, self.weight)
    return out if self.bias is None else out + ndl.broadcast_to(self.bias, out.shape)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_fused_layers_give_the_composed_ops_values_exactly(device, bias, monkeypatch):
    x = _batch(device)
    fused = _step(_mlp(device, bias), x)
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    monkeypatch.setattr(nn.Linear, "forward", _composed_linear)
    apart = _step(_mlp(device, bias), x)
    np.testing.assert_array_equal(fused[0], apart[0])
    for got, want in zip(fused[1], apart[1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert dict(fused[2]) == {"matmul": 4}
    assert apart[2]["ewise_relu"] == 3
    assert apart[2]["ewise_add_row"] == (4 if bias else 0)
    # Backward: 2 products per layer (1 for the first, whose input needs no gradient), each
    # hidden layer's ReLU gradient inside one of them; a bias's gradient is a product too.
    assert fused[3]["matmul"] == 7 + (4 if bias else 0) and fused[3]["ewise_relu_grad"] == 0
    assert apart[3]["ewise_relu_grad"] == 0  # the gate fuses into the product either way


def test_an_input_in_another_dtype_gives_the_composed_ops_values(monkeypatch):
    # The result follows the input's dtype, as the ops composed compute it.
    device = ndl.cpu_numpy()
    x = _batch(device, dtype="float64")
    fused = _step(_mlp(device, bias=True), x)
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    monkeypatch.setattr(nn.Linear, "forward", _composed_linear)
    apart = _step(_mlp(device, bias=True), x)
    assert fused[0].dtype == np.float64
    np.testing.assert_array_equal(fused[0], apart[0])
    for got, want in zip(fused[1], apart[1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_batched_input_runs_fused_too(monkeypatch):
    # Leading axes fold into the rows of the one product.
    device = ndl.cpu_numpy()
    x = ndl.Tensor(np.random.default_rng(3).standard_normal((2, 5, 12)), device=device,
                   dtype="float32", requires_grad=False)
    with count_launches(device) as launches:
        fused = _mlp(device, bias=True)(x).numpy()
    assert dict(launches) == {"matmul": 4}
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    np.testing.assert_array_equal(fused, _mlp(device, bias=True)(x).numpy())


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


@pytest.mark.parametrize("change", ["subclass", "instance_forward"])
def test_what_the_fused_kernel_cannot_run_goes_apart(change):
    device = ndl.cpu_numpy()
    model, x = _mlp(device), _batch(device)
    if change == "instance_forward":
        first = model.layers[0]
        first.forward = lambda X: ndl.matmul(X, first.weight) * 0.5
    if change == "subclass":
        class Scaled(nn.ReLU):
            def forward(self, value):
                return super().forward(value) * 2.0
        model.layers[1] = Scaled()
    with count_launches(device) as launches:
        model(x)
    assert launches["ewise_relu"] >= 1


@pytest.mark.parametrize("weight_shape,bias_shape", [((4, 5), None), ((3, 5), (4,)),
                                                     ((3, 5), (1, 4))])
def test_linear_names_bad_shapes(weight_shape, bias_shape):
    device = ndl.cpu_numpy()
    x = ndl.Tensor(np.ones((2, 3)), device=device)
    weight = ndl.Tensor(np.ones(weight_shape), device=device)
    bias = None if bias_shape is None else ndl.Tensor(np.ones(bias_shape), device=device)
    with pytest.raises(ValueError, match=r"linear needs x \(m, k\).*got shapes \(2, 3\)"):
        ndl.linear(x, weight, bias)


def test_probes_hook_only_while_they_record(monkeypatch):
    device = ndl.cpu_numpy()
    model, x = _mlp(device), _batch(device)
    probe = LayerProbe(model)
    assert not any(module._forward_hooks for module in model.layers)
    labels = ndl.Tensor(np.zeros(9), device=device, requires_grad=False)
    record = probe.snapshot(0, x, labels, nn.SoftmaxLoss())
    assert not any(module._forward_hooks for module in model.layers)
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    apart = LayerProbe(model).snapshot(0, x, labels, nn.SoftmaxLoss())
    assert record == apart
    assert record["layers"][0]["pre_act_norm"] > record["layers"][0]["post_act_norm"] > 0


def test_a_bias_of_shape_n_is_read_as_a_row():
    device = ndl.cpu_numpy()
    layer = nn.Linear(4, 3, device=device)
    layer.bias.data = ndl.Tensor(np.arange(3.0), device=device, dtype="float32")
    x = ndl.Tensor(np.ones((2, 4)), device=device, dtype="float32")
    want = x.numpy() @ layer.weight.numpy() + np.arange(3.0)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-6)
    layer(x).sum().backward()
    np.testing.assert_array_equal(layer.bias.grad.numpy(), [2.0, 2.0, 2.0])


def _dropout_mlp(device):
    ndl.manual_seed(8)
    layers = []
    for _ in range(3):
        layers += [nn.Linear(12, 12, device=device), nn.ReLU(), nn.Dropout(0.3)]
    return nn.Sequential(*layers, nn.Linear(12, 3, device=device))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_linear_relu_and_dropout_are_one_kernel_forward(device, monkeypatch):
    # The layer draws the dropout's seed as the Dropout module would, in the same order, so the
    # masks and every value match the layers run apart.
    x = _batch(device)
    ndl.manual_seed(1)
    fused = _step(_dropout_mlp(device), x)
    monkeypatch.setattr(container, "_takes_the_relu", lambda *args: False)
    ndl.manual_seed(1)
    apart = _step(_dropout_mlp(device), x)
    np.testing.assert_array_equal(fused[0], apart[0])
    for got, want in zip(fused[1], apart[1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert dict(fused[2]) == {"matmul": 4}
    assert apart[2]["ewise_dropout"] == 3
    # Backward: the mask once per layer (a consumer's product could not know whether other
    # consumers applied it too), the gate inside the next product.
    assert fused[3]["ewise_dropout"] == 3 and fused[3]["ewise_relu_grad"] == 0
    assert apart[3]["ewise_dropout"] == 3


def test_an_evaluating_dropout_leaves_the_pair_fused():
    device = ndl.cpu_numpy()
    model = _dropout_mlp(device)
    model.eval()
    with count_launches(device) as launches:
        model(_batch(device))
    assert dict(launches) == {"matmul": 4}
