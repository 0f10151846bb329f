"""Initializations: needle's formulas and signatures, the lectures' normal(c / fan_in), seeding.
Engine layer tests (init)."""

import math

import numpy as np
import pytest

import engine as ndl
from engine import init

FAN_IN, FAN_OUT = 400, 300


def moments(t):
    values = t.numpy().astype(np.float64)
    return values.mean(), values.var(), np.abs(values).max()


@pytest.mark.parametrize("make, variance, bound", [
    (lambda: init.xavier_uniform(FAN_IN, FAN_OUT, gain=2.0),
     4.0 * 6 / (FAN_IN + FAN_OUT) / 3, 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
    (lambda: init.xavier_normal(FAN_IN, FAN_OUT, gain=0.5), 0.25 * 2 / (FAN_IN + FAN_OUT), None),
    (lambda: init.kaiming_uniform(FAN_IN, FAN_OUT), 2.0 / FAN_IN, math.sqrt(6 / FAN_IN)),
    (lambda: init.kaiming_normal(FAN_IN, FAN_OUT), 2.0 / FAN_IN, None),
    (lambda: init.kaiming_normal(FAN_IN, FAN_OUT, nonlinearity="tanh"),
     (5 / 3) ** 2 / FAN_IN, None),
    (lambda: init.normal_fan_in(FAN_IN, FAN_OUT, c=1.7), 1.7 / FAN_IN, None),
    (lambda: init.normal(FAN_IN, FAN_OUT, c=3.0), 3.0 / FAN_IN, None),
])
def test_weight_inits_have_their_formula_variance(make, variance, bound):
    ndl.manual_seed(0)
    weight = make()
    assert weight.shape == (FAN_IN, FAN_OUT) and weight.dtype == "float32"
    mean, var, largest = moments(weight)
    assert abs(mean) < 0.01 * math.sqrt(variance) * 10
    assert abs(var - variance) < 0.03 * variance
    if bound is not None:
        assert largest <= bound and largest > 0.99 * bound


def test_shape_argument_for_conv_weights():
    weight = init.kaiming_uniform(27, 8, shape=(3, 3, 3, 8))
    assert weight.shape == (3, 3, 3, 8)
    assert np.abs(weight.numpy()).max() <= math.sqrt(6 / 27)


def test_constructors():
    np.testing.assert_array_equal(init.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones(2, 3).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(init.constant(2, c=4.5).numpy(), [4.5, 4.5])
    np.testing.assert_array_equal(init.one_hot(4, [2, 0]).numpy(), [[0, 0, 1, 0], [1, 0, 0, 0]])
    like = init.ones_like(init.zeros(3, 2))
    assert like.shape == (3, 2) and not like.requires_grad
    assert init.zeros_like(like).numpy().sum() == 0
    rand = init.rand(1000, low=2.0, high=3.0).numpy()
    assert rand.min() >= 2.0 and rand.max() < 3.0
    randn = init.randn(20000, mean=1.0, std=2.0).numpy()
    assert abs(randn.mean() - 1.0) < 0.05 and abs(randn.std() - 2.0) < 0.05
    assert abs(init.randb(20000, p=0.25).numpy().mean() - 0.25) < 0.01


def test_one_hot_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        init.one_hot(3, [0, 3])


def test_a_seed_fixes_every_draw():
    ndl.manual_seed(11)
    first = [init.kaiming_uniform(5, 4).numpy(), init.randn(3).numpy()]
    ndl.manual_seed(11)
    second = [init.kaiming_uniform(5, 4).numpy(), init.randn(3).numpy()]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    ndl.manual_seed(12)
    assert not np.array_equal(init.kaiming_uniform(5, 4).numpy(), first[0])


def test_unknown_nonlinearity_and_negative_c_are_errors():
    with pytest.raises(ValueError, match="nonlinearity 'swish'"):
        init.kaiming_uniform(3, 3, nonlinearity="swish")
    with pytest.raises(ValueError, match="c must be >= 0"):
        init.normal_fan_in(3, 3, c=-1.0)
