"""Config tests: every option of every group and every preset composes, validates and builds its
model and optimizer; bad values are refused naming the key."""

import os

import pytest

import conf
from harness.config import GROUPS, ConfigError, compose_one
from harness.models import build_model, build_optimizer

CONF_DIR = list(conf.__path__)[0]


def options(group):
    return sorted(n[:-5] for n in os.listdir(os.path.join(CONF_DIR, group)) if n.endswith(".yaml"))


def build(cfg):
    import engine

    model = build_model(cfg, in_features=784, num_classes=10, device=engine.cpu_numpy())
    return model, build_optimizer(cfg["optimizer"], model.parameters())


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "experiment"
                                           for o in options(g)])
def test_every_group_option_composes_and_builds(group, option):
    cfg, choices = compose_one([f"{group}={option}", "device=cpu_numpy"]
                               if group != "device" else [f"{group}={option}"])
    assert choices[group] == option
    if (group, option) in (("model", "quadratic"), ("optimizer", "newton")):
        from harness.quadratic import train_quadratic

        cfg = dict(cfg, model={"name": "quadratic"}, optimizer=dict(cfg["optimizer"]),
                   train={"steps": 2})
        assert train_quadratic(cfg)["status"] == "ok"
    elif group in ("model", "init", "norm", "optimizer"):
        model, optimizer = build(cfg)
        assert model.parameters() and optimizer.params


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_preset_composes_and_builds(preset):
    from harness.sweep import expand

    plan = expand([f"experiment={preset}", "device=cpu_numpy"])
    assert plan.runs
    for spec in {id(s): s for s in (plan.runs[0], plan.runs[-1])}.values():
        build(spec.config)


@pytest.mark.parametrize("override,key", [
    ("optimizer.lr=-0.1", "optimizer.lr"),
    ("dropout.p=1.0", "dropout.p"),
    ("init.c=0", "init.c"),
    ("optimizer.lr=fast", "optimizer.lr"),
    ("model.activation=gelu", "model.activation"),
    ("init=kaimin", "init/kaimin"),
    ("model.widht=3", "model.widht"),
    ("+model.widht=3", "model.widht"),
    ("train.batch_size=0", "train.batch_size"),
    ("harness.cuda_fallback=maybe", "harness.cuda_fallback"),
])
def test_bad_values_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose_one([override])


def test_mnist_dir_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MNIST_DIR", "/some/where")
    assert compose_one(["data=mnist"])[0]["data"]["dir"] == "/some/where"
    monkeypatch.delenv("MNIST_DIR")
    assert compose_one(["data=mnist"])[0]["data"]["dir"] is None


def test_mlp_layout_follows_depth_norm_and_dropout():
    cfg, _ = compose_one(["model=mlp", "model.depth=3", "norm=batchnorm", "dropout.p=0.5",
                          "model.bias=false", "device=cpu_numpy"])
    model, _ = build(cfg)
    layers = [m for m in model.modules() if m is not model]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert all(m.bias is None for m in layers if type(m).__name__ == "Linear")
