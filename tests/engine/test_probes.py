"""Per-layer probes: values against numpy recomputations, opt-in of new layer types, and no side
effects on training. Engine layer tests (probes)."""

import json

import numpy as np
import pytest

import engine as ndl
from engine import nn, optim
from engine.probes import LayerProbe, register_probed_type


def batch(n=16, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = ndl.Tensor(rng.standard_normal((n, features)), dtype="float32", requires_grad=False)
    y = ndl.Tensor(rng.integers(0, classes, n), dtype="float32", requires_grad=False)
    return x, y


def make_model():
    ndl.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                         nn.Linear(8, 3))


def test_snapshot_values_match_numpy():
    model = make_model()
    probe = LayerProbe(model)
    x, y = batch()
    record = probe.snapshot(0, x, y, nn.SoftmaxLoss())
    json.dumps(record)
    assert [layer["name"] for layer in record["layers"]] == ["layers.0", "layers.2", "layers.4"]
    assert [layer["activation"] for layer in record["layers"]] == ["ReLU", "Tanh", None]
    weights = [model.layers[i].weight.numpy().astype(np.float64) for i in (0, 2, 4)]
    biases = [model.layers[i].bias.numpy().astype(np.float64) for i in (0, 2, 4)]
    h = x.numpy().astype(np.float64)
    pres, posts = [], []
    activations = (lambda v: np.maximum(v, 0), np.tanh, lambda v: v)
    for w, b, act in zip(weights, biases, activations, strict=True):
        pre = h @ w + b
        h = act(pre)
        pres.append(np.linalg.norm(pre))
        posts.append(np.linalg.norm(h))
    for layer, pre, post, w in zip(record["layers"], pres, posts, weights, strict=True):
        assert layer["pre_act_norm"] == pytest.approx(pre, rel=1e-4)
        assert layer["post_act_norm"] == pytest.approx(post, rel=1e-4)
        assert layer["fan_in"] == w.shape[0]
        assert layer["fan_in_var"] == pytest.approx(w.shape[0] * w.var(), rel=1e-6)
        assert layer["weight_rel_change"] == 0.0
        assert layer["weight_grad_norm"] > 0
    # the weight gradient norm equals the gradient of an ordinary backward
    model.zero_grad()
    nn.SoftmaxLoss()(model(x), y).backward()
    expected = np.linalg.norm(model.layers[4].weight.grad.numpy())
    assert record["layers"][2]["weight_grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert record["loss"] > 0


def test_relative_change_tracks_training():
    model = make_model()
    probe = LayerProbe(model)
    x, y = batch()
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    initial = [model.layers[i].weight.numpy().copy() for i in (0, 2, 4)]
    for _ in range(3):
        optimizer.zero_grad()
        nn.SoftmaxLoss()(model(x), y).backward()
        optimizer.step()
    record = probe.snapshot(3, x, y, nn.SoftmaxLoss())
    for layer, w0, i in zip(record["layers"], initial, (0, 2, 4), strict=True):
        w = model.layers[i].weight.numpy()
        expected = np.linalg.norm(w - w0) / np.linalg.norm(w0)
        assert layer["weight_rel_change"] == pytest.approx(expected, rel=1e-4) and expected > 0
    assert record["step"] == 3


def test_snapshot_has_no_side_effects_on_training():
    def train(with_probe):
        ndl.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                              nn.Linear(8, 3))
        probe = LayerProbe(model) if with_probe else None
        optimizer = optim.SGD(model.parameters(), lr=0.1)
        x, y = batch()
        for step in range(4):
            optimizer.zero_grad()
            nn.SoftmaxLoss()(model(x), y).backward()
            if probe is not None:
                probe.snapshot(step, x, y, nn.SoftmaxLoss())
            optimizer.step()
        return model.state_dict()

    plain, probed = train(False), train(True)
    for name in plain:
        np.testing.assert_array_equal(plain[name], probed[name], err_msg=name)


def test_snapshot_restores_buffers_in_place_and_keeps_their_objects():
    # The probe's extra forward moves batch norm's estimates in place: held references must see
    # them restored, the module must keep the same objects, and a non-Tensor buffer survives.
    ndl.manual_seed(0)
    norm = nn.BatchNorm1d(8)
    model = nn.Sequential(nn.Linear(6, 8), norm, nn.ReLU(), nn.Linear(8, 3))
    norm.register_buffer("note", ndl.Tensor(np.zeros(3)))
    norm.note = np.arange(3)  # no longer a Tensor
    x, y = batch()
    nn.SoftmaxLoss()(model(x), y).backward()
    mean, var = norm.running_mean, norm.running_var
    before = mean.numpy().copy(), var.numpy().copy()
    LayerProbe(model).snapshot(1, *batch(seed=5), nn.SoftmaxLoss())
    assert norm.running_mean is mean and norm.running_var is var
    np.testing.assert_array_equal(mean.numpy(), before[0])
    np.testing.assert_array_equal(var.numpy(), before[1])
    np.testing.assert_array_equal(norm.note, np.arange(3))


def test_probe_skips_recording_outside_snapshots_and_detaches():
    model = make_model()
    probe = LayerProbe(model)
    x, _ = batch()
    model(x)
    assert probe._squares == {}
    probe.close()
    assert all(not module._forward_hooks for module in model.modules())


def test_new_layer_types_opt_in_by_attribute_or_registry():
    class Scale(nn.Module):
        probe_weight = "gain"

        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(ndl.init.ones(4, 4))

        def forward(self, x):
            return x @ self.gain

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.kernel = nn.Parameter(ndl.init.ones(3, 3, 2, 4))

        def forward(self, x):
            return x

    register_probed_type(Plain, weight_attr="kernel")
    model = nn.Sequential(Scale(), nn.ReLU(), Plain())
    stats = LayerProbe(model).weight_stats()
    assert [s["name"] for s in stats] == ["layers.0", "layers.2"]
    assert [s["fan_in"] for s in stats] == [4, 18]


def test_model_without_probed_layers_is_an_error():
    with pytest.raises(ValueError, match="no probed layers"):
        LayerProbe(nn.Sequential(nn.ReLU()))
