"""Harness layer: the Lecture 6 quadratic: engine gradients and Hessian, the update rules, and
Newton's one-step convergence."""

import numpy as np
import pytest

from harness.quadratic import QuadraticProblem, train_quadratic
from harness.report import build_report
from tests.harness.report_fixtures import write_sweep

A = [[10.0, 1.5], [1.5, 1.0]]
B = [1.0, -1.0]


def run(name, **settings):
    return train_quadratic({"model": {"name": "quadratic"}, "optimizer": {"name": name, **settings},
                            "train": {"steps": 30}})


def gaps(record):
    optimum = record["quadratic"]["minimum_value"]
    return [m["train_loss"] - optimum for m in record["metrics"]]


def test_engine_gradient_and_hessian_match_the_formula():
    problem = QuadraticProblem(A, B)
    point = np.array([0.3, -2.0])
    np.testing.assert_allclose(problem.gradient(point), np.array(A) @ point + B, rtol=1e-12)
    np.testing.assert_allclose(problem.hessian(point), A, rtol=1e-12)


def test_newton_converges_in_one_step_at_step_size_one():
    record = run("newton", lr=1.0)
    assert record["status"] == "ok"
    assert gaps(record)[0] > 1.0
    assert abs(gaps(record)[1]) < 1e-12
    np.testing.assert_allclose(record["trajectory"][1], record["quadratic"]["minimizer"],
                               atol=1e-12)


@pytest.mark.parametrize("name, settings", [
    ("sgd", {"lr": 0.1}), ("momentum", {"lr": 0.1, "momentum": 0.9}),
    ("momentum", {"lr": 0.1, "momentum": 0.9, "bias_correction": True}),
    ("nesterov", {"lr": 0.1, "momentum": 0.9}), ("adam", {"lr": 0.1}),
])
def test_first_order_methods_descend_but_not_in_one_step(name, settings):
    record = run(name, **settings)
    assert record["status"] == "ok"
    assert gaps(record)[1] > 1e-3
    assert gaps(record)[-1] < 0.1 * gaps(record)[0]
    assert len(record["trajectory"]) == len(record["metrics"]) == 31


def test_bias_corrected_momentum_first_step_is_a_full_gradient_step():
    plain_sgd = run("sgd", lr=0.05)["trajectory"][1]
    corrected = run("momentum", lr=0.05, momentum=0.9, bias_correction=True)["trajectory"][1]
    uncorrected = run("momentum", lr=0.05, momentum=0.9)["trajectory"][1]
    np.testing.assert_allclose(corrected, plain_sgd, rtol=1e-12)
    start = np.array(run("sgd")["trajectory"][0])
    assert np.linalg.norm(uncorrected - start) == pytest.approx(
        0.1 * np.linalg.norm(np.array(plain_sgd) - start))


def test_too_large_a_step_diverges_with_its_step():
    record = run("sgd", lr=0.5)
    assert record["status"] == "diverged"
    assert 0 < record["diverged_at_step"] <= 30
    assert len(record["metrics"]) == record["diverged_at_step"]


@pytest.mark.parametrize("model, message", [
    ({"hessian": [[1.0, 0.0], [0.0, -1.0]]}, "positive definite"),
    ({"hessian": [[1.0, 2.0], [0.0, 1.0]]}, "symmetric"),
    ({"hessian": [[1.0]]}, "2x2"),
])
def test_bad_problems_are_named(model, message):
    with pytest.raises(ValueError, match=message):
        train_quadratic({"model": {"name": "quadratic", **model}, "optimizer": {"name": "sgd"}})


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer.name: 'lbfgs'"):
        run("lbfgs")


def test_records_make_a_report_with_the_contour_plot(tmp_path):
    runs = []
    for name in ("sgd", "newton"):
        lr = 1.0 if name == "newton" else 0.1
        record = {"run_id": name, "name": f"optimizer={name}", "overrides": {"optimizer": name},
                  "config": {"model": {"name": "quadratic"},
                             "optimizer": {"name": name, "lr": lr}},
                  **run(name, lr=lr)}
        runs.append(record)
    index = build_report(write_sweep(tmp_path / "sweep", runs, {
        "overrides": ["experiment=optimizers", "optimizer=sgd,newton"]}))
    assert (index.parent / "quadratic.png").is_file()
    markdown = (index.parent / "report.md").read_text()
    rows = markdown.splitlines()
    assert next(row for row in rows if "Newton" in row).startswith("| PASS |")
    assert next(row for row in rows if "gradient descent" in row).startswith("| PASS |")
