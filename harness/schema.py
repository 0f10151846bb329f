"""Typed schemas of a run's config: one dataclass per group option (picked by its `name`), with
allowed ranges and choices as field metadata. Harness layer; config.py validates against these.
"""

from dataclasses import dataclass, field
from typing import Any, Optional


def _f(default, **checks):
    """A dataclass field whose metadata carries the checks: gt, ge, lt, le, choices."""
    return field(default=default, metadata=checks)


ACTIVATIONS = ("relu", "tanh", "sigmoid")


@dataclass
class SoftmaxModel:
    name: str = "softmax"
    bias: bool = True


@dataclass
class MLPModel:
    name: str = "mlp"
    depth: int = _f(3, ge=1)
    width: int = _f(100, ge=1)
    activation: str = _f("relu", choices=ACTIVATIONS)
    bias: bool = True
    norm_placement: str = _f("before_activation", choices=("before_activation", "after_activation"))


@dataclass
class MLPResNetModel:
    name: str = "mlp_resnet"
    depth: int = _f(3, ge=1)
    width: int = _f(100, ge=2)
    activation: str = _f("relu", choices=ACTIVATIONS)
    bias: bool = True


@dataclass
class ConvNetModel:
    name: str = "convnet"
    arch: str = _f("small", choices=("small", "resnet9"))
    in_channels: int = _f(1, ge=1)
    channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = _f(3, ge=1)
    hidden: int = _f(64, ge=1)
    bias: bool = True


@dataclass
class QuadraticModel:
    """Lecture 6's two-dimensional quadratic 1/2 x^T A x + b^T x (no data, no network)."""
    name: str = "quadratic"
    hessian: Optional[list[list[float]]] = None
    linear: Optional[list[float]] = None
    start: Optional[list[float]] = None


@dataclass
class FileData:
    name: str = "mnist"
    dir: Optional[str] = None
    n_train: Optional[int] = _f(8000, ge=1)
    n_test: Optional[int] = _f(2000, ge=1)


@dataclass
class SyntheticData:
    name: str = "synthetic"
    kind: str = _f("blobs", choices=("blobs", "spiral", "teacher"))
    n_features: int = _f(20, ge=1)
    n_classes: int = _f(4, ge=2)
    n_train: int = _f(1000, ge=1)
    n_test: int = _f(500, ge=1)


@dataclass
class NormalInit:
    name: str = "normal"
    c: float = _f(1.0, gt=0)


@dataclass
class NamedInit:
    name: str = "kaiming"


@dataclass
class NoNorm:
    name: str = "none"


@dataclass
class LayerNorm:
    name: str = "layernorm"
    eps: float = _f(1e-5, gt=0)


@dataclass
class BatchNorm:
    name: str = "batchnorm"
    eps: float = _f(1e-5, gt=0)
    momentum: float = _f(0.1, ge=0, le=1)


@dataclass
class SGD:
    name: str = "sgd"
    lr: float = _f(0.1, gt=0)
    weight_decay: float = _f(0.0, ge=0)


@dataclass
class Momentum:
    name: str = "momentum"
    lr: float = _f(0.1, gt=0)
    momentum: float = _f(0.9, ge=0, lt=1)
    bias_correction: bool = False
    weight_decay: float = _f(0.0, ge=0)


@dataclass
class Nesterov:
    name: str = "nesterov"
    lr: float = _f(0.1, gt=0)
    momentum: float = _f(0.9, ge=0, lt=1)
    weight_decay: float = _f(0.0, ge=0)


@dataclass
class Adam:
    name: str = "adam"
    lr: float = _f(0.001, gt=0)
    beta1: float = _f(0.9, ge=0, lt=1)
    beta2: float = _f(0.999, ge=0, lt=1)
    eps: float = _f(1e-8, gt=0)
    weight_decay: float = _f(0.0, ge=0)
    bias_correction: bool = True


@dataclass
class Newton:
    """x <- x - lr * H^-1 grad, H from the engine's gradient of the gradient (quadratic only)."""
    name: str = "newton"
    lr: float = _f(1.0, gt=0)


@dataclass
class Train:
    steps: Optional[int] = _f(None, ge=1)
    epochs: Optional[int] = _f(1, ge=1)
    batch_size: int = _f(100, ge=1)
    log_every: int = _f(10, ge=1)
    eval_every: int = _f(50, ge=1)
    probe_every: int = _f(50, ge=0)


@dataclass
class Device:
    name: str = _f("cpu", choices=("cpu", "cpu_numpy", "cuda"))


@dataclass
class Dropout:
    p: float = _f(0.0, ge=0, lt=1)


@dataclass
class Harness:
    output_dir: Optional[str] = None
    ray_address: Optional[str] = None
    num_cpus: Optional[int] = _f(None, ge=1)
    cpus_per_run: float = _f(1.0, gt=0)
    gpus_per_run: Optional[float] = _f(None, ge=0)
    cuda_fallback: str = _f("error", choices=("error", "cpu"))
    max_retries: int = _f(2, ge=0)
    fail_fast: bool = False
    dashboard: bool = True
    local_only: bool = True
    ship_code: bool = False
    ray_temp_dir: Optional[str] = None
    sweep: list[str] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)  # the report's checks of a preset's story


# section -> {option name -> schema}; a section with one schema is keyed by None.
SECTIONS: dict[str, dict[Any, type]] = {
    "model": {"softmax": SoftmaxModel, "mlp": MLPModel, "mlp_resnet": MLPResNetModel,
              "convnet": ConvNetModel, "quadratic": QuadraticModel},
    "data": {"mnist": FileData, "fashion_mnist": FileData, "synthetic": SyntheticData},
    "init": {"normal": NormalInit, "kaiming": NamedInit, "kaiming_uniform": NamedInit,
             "xavier": NamedInit, "xavier_uniform": NamedInit},
    "norm": {"none": NoNorm, "layernorm": LayerNorm, "batchnorm": BatchNorm},
    "optimizer": {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adam": Adam,
                  "newton": Newton},
    "train": {None: Train},
    "device": {None: Device},
    "dropout": {None: Dropout},
    "harness": {None: Harness},
}
SCALARS = {"seed": int}
