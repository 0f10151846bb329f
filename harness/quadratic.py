"""Harness layer: the Lecture 6 two-dimensional quadratic f(x) = 1/2 x^T A x + b^T x, minimized by
SGD, momentum (optionally bias-corrected), Nesterov, Adam and Newton's method. Gradients and the
Hessian come from the engine's autodiff (the Hessian as the gradient of the gradient), on the numpy
device in float64 so that Newton's one-step convergence shows to machine precision.

The trial dispatches here for model=quadratic; train_quadratic returns the run-specific part of a
run record (status, metrics, final, probes, trajectory, quadratic) for the trial to complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

import engine as ndl

# An ill-conditioned, rotated bowl (eigenvalues about 0.8 and 10.2): gradient descent zig-zags
# across the valley while Newton's method jumps straight to the minimum.
DEFAULT_HESSIAN = [[10.0, 1.5], [1.5, 1.0]]
DEFAULT_LINEAR = [1.0, -1.0]
DEFAULT_START = [-2.0, 3.0]
DEFAULT_STEPS = 40
DIVERGENCE_LIMIT = 1e12
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "newton")


class QuadraticProblem:
    """f(x) = 1/2 x^T A x + b^T x evaluated and differentiated with engine Tensors."""

    def __init__(self, hessian, linear):
        self.matrix = np.asarray(hessian, dtype=np.float64)
        self.linear = np.asarray(linear, dtype=np.float64)
        if self.matrix.shape != (2, 2) or self.linear.shape != (2,):
            raise ValueError(f"quadratic: A must be 2x2 and b of length 2, got shapes "
                             f"{self.matrix.shape} and {self.linear.shape}")
        if not np.allclose(self.matrix, self.matrix.T):
            raise ValueError(f"quadratic: A must be symmetric, got {self.matrix.tolist()}")
        if np.linalg.eigvalsh(self.matrix).min() <= 0:
            raise ValueError(f"quadratic: A must be positive definite, got {self.matrix.tolist()}")
        self.device = ndl.cpu_numpy()
        self._a = self._constant(self.matrix)
        self._b = self._constant(self.linear[None, :])

    def _constant(self, array):
        return ndl.Tensor(array, device=self.device, dtype="float64", requires_grad=False)

    def loss(self, x):
        return ((x @ self._a) * x).sum() * 0.5 + (x * self._b).sum()

    def value(self, point: np.ndarray) -> float:
        return float(0.5 * point @ self.matrix @ point + self.linear @ point)

    def gradient(self, point: np.ndarray) -> np.ndarray:
        x = ndl.Tensor(point[None, :], device=self.device, dtype="float64")
        self.loss(x).backward()
        return x.grad.numpy()[0]

    def hessian(self, point: np.ndarray) -> np.ndarray:
        """Row i is the gradient of the i-th gradient component: the gradient of the gradient."""
        x = ndl.Tensor(point[None, :], device=self.device, dtype="float64")
        self.loss(x).backward()
        first = x.grad
        rows = []
        for axis in range(2):
            x.grad = None
            (first * self._constant(np.eye(2)[axis][None, :])).sum().backward()
            rows.append(x.grad.numpy()[0])
        return np.array(rows)

    @property
    def minimizer(self) -> np.ndarray:
        return np.linalg.solve(self.matrix, -self.linear)


class _Stepper:
    """One optimizer on the quadratic: the engine's own SGD / momentum / Nesterov / Adam (the same
    code the MNIST runs use) on a 1x2 parameter, or Newton's step x <- x - lr * H^-1 grad."""

    def __init__(self, problem: QuadraticProblem, settings: Mapping[str, Any], start):
        from harness.models import build_optimizer

        self.problem = problem
        self.name = settings.get("name", "sgd")
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer.name: {self.name!r} is not one of {', '.join(OPTIMIZERS)}")
        self.point = ndl.nn.Parameter(np.asarray(start, dtype=np.float64)[None, :],
                                      device=problem.device, dtype="float64")
        if self.name == "newton":
            self.lr = float(settings.get("lr", 1.0))
        else:
            self.optimizer = build_optimizer(dict(settings), [self.point])

    def position(self) -> np.ndarray:
        return self.point.numpy()[0]

    def step(self) -> None:
        if self.name == "newton":
            x = self.position()
            moved = x - self.lr * np.linalg.solve(self.problem.hessian(x), self.problem.gradient(x))
            self.point.data = ndl.Tensor(moved[None, :], device=self.problem.device,
                                         dtype="float64")
            return
        self.optimizer.zero_grad()
        self.problem.loss(self.point).backward()
        self.optimizer.step()


def train_quadratic(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run one optimizer on the quadratic; config uses the harness' keys (model, optimizer, train).

    model: name=quadratic, optional hessian (2x2), linear (2), start (2).
    optimizer: name in OPTIMIZERS with lr, momentum / beta1, beta2, eps, bias_correction.
    train.steps: iterations (default 40).
    """
    model = config.get("model") or {}
    problem = QuadraticProblem(model.get("hessian") or DEFAULT_HESSIAN,
                               model.get("linear") or DEFAULT_LINEAR)
    stepper = _Stepper(problem, config.get("optimizer") or {}, model.get("start") or DEFAULT_START)
    steps = (config.get("train") or {}).get("steps") or DEFAULT_STEPS
    point = stepper.position()
    optimum = problem.value(problem.minimizer)
    trajectory, metrics, diverged_at = [], [], None
    started = time.perf_counter()
    for step in range(int(steps) + 1):
        loss = problem.value(point)
        if not math.isfinite(loss) or abs(loss) > DIVERGENCE_LIMIT or not np.isfinite(point).all():
            diverged_at = step
            break
        trajectory.append(point.tolist())
        metrics.append({"step": step, "epoch": 0, "train_time_s": time.perf_counter() - started,
                        "train_loss": loss, "train_error": None, "test_loss": None,
                        "test_error": None})
        if step < steps:
            stepper.step()
            point = stepper.position()
    last = metrics[-1]["train_loss"]
    return {
        "status": "diverged" if diverged_at is not None else "ok",
        "diverged_at_step": diverged_at,
        "metrics": metrics,
        "final": {"train_loss": last, "train_error": None, "test_loss": None, "test_error": None},
        "probes": [],
        "trajectory": trajectory,
        "quadratic": {"A": problem.matrix.tolist(), "b": problem.linear.tolist(),
                      "minimizer": problem.minimizer.tolist(), "minimum_value": optimum},
    }
