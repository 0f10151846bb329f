"""Module mechanics: parameter discovery and names, buffers, state_dict, modes, hooks, errors.
Engine layer tests (nn)."""

import numpy as np
import pytest

import engine as ndl
from engine import nn


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.branches = [nn.Linear(4, 2), nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))]
        self.table = {"norm": nn.BatchNorm1d(2)}

    def forward(self, x):
        h = self.first(x)
        return self.table["norm"](self.branches[0](h) + self.branches[1](h))


def test_named_parameters_follow_definition_order_with_dotted_names():
    names = [name for name, _ in TwoBranch().named_parameters()]
    assert names == ["first.weight", "first.bias", "branches.0.weight", "branches.0.bias",
                     "branches.1.layers.1.weight", "table.norm.weight", "table.norm.bias"]


def test_buffers_are_kept_apart_from_parameters_but_saved():
    model = TwoBranch()
    assert [name for name, _ in model.named_buffers()] == ["table.norm.running_mean",
                                                          "table.norm.running_var"]
    assert all(not name.endswith("running_mean") for name, _ in model.named_parameters())
    assert "table.norm.running_var" in model.state_dict()


def test_shared_parameter_is_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(model.parameters()) == 2


def test_state_dict_round_trip_restores_outputs():
    ndl.manual_seed(0)
    source = TwoBranch()
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((5, 3)), dtype="float32")
    source(x)  # moves the BatchNorm running statistics away from their initial values
    state = source.state_dict()
    ndl.manual_seed(1)
    target = TwoBranch()
    target.load_state_dict(state)
    source.eval()
    target.eval()
    np.testing.assert_allclose(target(x).numpy(), source(x).numpy(), rtol=1e-6)
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_load_state_dict_names_missing_unexpected_and_misshaped_keys():
    model = TwoBranch()
    state = model.state_dict()
    missing = dict(state)
    del missing["first.bias"]
    with pytest.raises(KeyError, match="first.bias"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match="extra"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    bad = {**state, "first.weight": np.zeros((4, 3))}
    with pytest.raises(ValueError, match=r"first.weight.*\(4, 3\).*\(3, 4\)"):
        model.load_state_dict(bad)
    model.load_state_dict(missing, strict=False)  # non-strict ignores the missing key


def test_train_eval_return_self_and_recurse():
    model = TwoBranch()
    assert model.eval() is model
    assert all(not module.training for module in model.modules())
    assert model.train() is model
    assert all(module.training for module in model.modules())


def test_reset_parameters_redraws_every_layer():
    ndl.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    before = model.state_dict()
    model.reset_parameters()
    after = model.state_dict()
    assert all(not np.array_equal(before[name], after[name]) for name in before)


def test_forward_hook_sees_output_and_can_be_removed():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    seen = []
    handle = model.layers[1].register_forward_hook(
        lambda module, inputs, output: seen.append(output.numpy()))
    x = ndl.Tensor(np.ones((2, 3)), dtype="float32")
    out = model(x)
    np.testing.assert_array_equal(seen[0], out.numpy())
    handle.remove()
    model(x)
    assert len(seen) == 1


def test_module_without_super_init_still_works():
    class Bare(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

        def forward(self, x):
            return self.layer(x)

    model = Bare()
    assert model.eval() is model and not model.layer.training
    assert len(model.parameters()) == 2


def test_parameter_is_a_tensor_with_grad():
    param = nn.Parameter(ndl.Tensor(np.ones((2, 2)), dtype="float32"))
    assert isinstance(param, ndl.Tensor) and param.requires_grad


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)
