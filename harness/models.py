"""Build a run's model and optimizer from its validated config with the engine's nn/init/optim.
Harness layer (the only place that maps config names to engine classes).
"""

import functools

ACTIVATION_CLASSES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}
WEIGHT_INITS = {"kaiming": "kaiming_normal", "kaiming_uniform": "kaiming_uniform",
                "xavier": "xavier_normal", "xavier_uniform": "xavier_uniform"}


def weight_init(init_cfg):
    """engine.init function (fan_in, fan_out, device=, dtype=) for the config's init option."""
    from engine import init

    if init_cfg["name"] == "normal":
        return functools.partial(init.normal_fan_in, c=float(init_cfg["c"]))
    return getattr(init, WEIGHT_INITS[init_cfg["name"]])


def build_model(cfg, in_features, num_classes, device=None):
    """The model of `cfg` (model, init, norm, dropout sections). Biases start at zero so that the
    init experiments measure the weights alone."""
    from engine import init, nn

    model_cfg, norm_cfg, p = cfg["model"], cfg["norm"], float(cfg["dropout"]["p"])

    def linear(fan_in, fan_out):
        return nn.Linear(fan_in, fan_out, bias=model_cfg.get("bias", True), device=device,
                         weight_init=weight_init(cfg["init"]), bias_init=init.zeros)

    def activation():
        return getattr(nn, ACTIVATION_CLASSES[model_cfg["activation"]])()

    def norm(width):
        if norm_cfg["name"] == "layernorm":
            return [nn.LayerNorm1d(width, eps=norm_cfg["eps"], device=device)]
        if norm_cfg["name"] == "batchnorm":
            return [nn.BatchNorm1d(width, eps=norm_cfg["eps"], momentum=norm_cfg["momentum"],
                                   device=device)]
        return []

    def dropout():
        return [nn.Dropout(p)] if p > 0 else []

    name = model_cfg["name"]
    if name == "softmax":
        return nn.Sequential(linear(in_features, num_classes))
    if name == "mlp":
        layers, width = [], model_cfg["width"]
        fan_in = in_features
        for _ in range(model_cfg["depth"] - 1):
            layers.append(linear(fan_in, width))
            if model_cfg["norm_placement"] == "before_activation":
                layers += norm(width) + [activation()]
            else:
                layers += [activation()] + norm(width)
            layers += dropout()
            fan_in = width
        layers.append(linear(fan_in, num_classes))
        return nn.Sequential(*layers)
    if name == "mlp_resnet":
        width, half = model_cfg["width"], model_cfg["width"] // 2
        layers = [linear(in_features, width), activation()]
        for _ in range(model_cfg["depth"]):
            block = nn.Sequential(linear(width, half), *norm(half), activation(), *dropout(),
                                  linear(half, width), *norm(width))
            layers += [nn.Residual(block), activation()]
        layers.append(linear(width, num_classes))
        return nn.Sequential(*layers)
    if name == "convnet":
        from harness.models_conv import build_convnet

        return build_convnet(cfg, in_features, num_classes, device=device)
    raise ValueError(f"model.name: unknown model {name!r}")


def build_optimizer(optimizer_cfg, parameters):
    from engine import optim

    settings = {k: v for k, v in optimizer_cfg.items() if k != "name"}
    name = optimizer_cfg["name"]
    if name in ("sgd", "momentum"):
        return optim.SGD(parameters, **settings)
    if name == "nesterov":
        return optim.SGD(parameters, nesterov=True, **settings)
    if name == "adam":
        return optim.Adam(parameters, **settings)
    if name == "newton":
        raise ValueError("optimizer=newton needs model=quadratic (its Hessian is 2x2 and exact)")
    raise ValueError(f"optimizer.name: unknown optimizer {name!r}")
