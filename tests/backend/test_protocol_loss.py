"""The device protocol's softmax cross-entropy pair (softmax_xent, softmax_xent_grad): the numpy
spec against values written out and a float64 formula, then every enabled device against the spec.
Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS


def run(device, z, labels, g=None):
    """(losses, gradient) of `device` for logits z (rows, classes), as host arrays."""
    rows, classes = z.shape
    z_handle, labels_handle = to_device(device, z), to_device(device, labels)
    losses = device.alloc(max(rows, 1), "float32")
    device.softmax_xent(z_handle, labels_handle, losses, classes, rows)
    g = np.ones(rows, np.float32) if g is None else g
    grad = device.alloc(max(rows * classes, 1), "float32")
    device.softmax_xent_grad(z_handle, labels_handle, to_device(device, g), grad, classes, rows)
    return read(device, losses, rows), read(device, grad, rows * classes).reshape(rows, classes)


def float64_reference(z, labels, g):
    z64 = z.astype(np.float64)
    peak = z64.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z64 - peak).sum(axis=1)) + peak[:, 0]
    index = labels.astype(np.int64)
    one_hot = np.eye(z.shape[1])[index]
    losses = lse - z64[np.arange(len(z)), index]
    return losses, g[:, None] * (np.exp(z64 - lse[:, None]) - one_hot)


def test_spec_matches_written_values():
    z = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0], [np.log(3.0), 0.0]], np.float32)
    labels = np.array([0, 0, 0, 1], np.float32)
    g = np.array([1.0, 1.0, 2.0, -1.0], np.float32)
    losses, grad = run(spec, z, labels, g)
    np.testing.assert_allclose(losses, [np.log(2.0), 0.0, 1000.0, np.log(4.0)], rtol=1e-6)
    np.testing.assert_allclose(grad, [[-0.5, 0.5], [0.0, 0.0], [-2.0, 2.0], [-0.75, 0.75]],
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rows, classes", [(1, 1), (5, 10), (64, 1000)])
def test_spec_matches_float64_formula(rows, classes):
    rng = np.random.default_rng(rows + classes)
    z = (3.0 * rng.standard_normal((rows, classes))).astype(np.float32)
    labels = rng.integers(0, classes, rows).astype(np.float32)
    g = rng.standard_normal(rows).astype(np.float32)
    losses, grad = run(spec, z, labels, g)
    want_losses, want_grad = float64_reference(z, labels, g)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


# (rows, classes): one element; the MNIST batch; rows past a Triton chunk of 1024 classes;
# more elements than the C threading grain (32768).
SHAPES = [(1, 1), (1, 7), (100, 10), (3, 2500), (5000, 10)]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("rows, classes", SHAPES)
def test_device_matches_spec(device, rows, classes):
    rng = np.random.default_rng(rows * classes)
    z = (4.0 * rng.standard_normal((rows, classes))).astype(np.float32)
    labels = rng.integers(0, classes, rows).astype(np.float32)
    g = rng.standard_normal(rows).astype(np.float32)
    want_losses, want_grad = run(spec, z, labels, g)
    losses, grad = run(device, z, labels, g)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5)
    # The label's element is exp(z - lse) - 1, which cancels when z is close to lse: one ulp of
    # lse (devices may round it either way) there is 1e-6 times g.
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5)


# Labels outside [0, classes), NaN and infinities make their row NaN; a fraction names the class
# it truncates to (callers reject it first, the devices only must agree and stay in bounds).
BAD_LABELS = [-1.0, 4.0, 1e9, -1e9, np.nan, np.inf, -np.inf, 2.5, 3.999, -0.5]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_invalid_labels_give_nan_rows(device):
    rows, classes = len(BAD_LABELS), 4
    z = np.random.default_rng(4).standard_normal((rows, classes)).astype(np.float32)
    labels = np.array(BAD_LABELS, np.float32)
    losses, grad = run(device, z, labels)
    invalid = [not (0 <= label < classes) for label in BAD_LABELS]
    assert np.isnan(losses[invalid]).all() and np.isnan(grad[invalid]).all()
    assert np.isfinite(losses[~np.array(invalid)]).all()
    want_losses, want_grad = run(spec, z, labels)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6, equal_nan=True)


# Rows of logits with special values, each with label 0, 1 or 2.
SPECIAL_ROWS = [
    ([1000.0, 0.0, -1000.0], 0), ([88.0, 89.0, 0.0], 2),        # exp overflows unshifted
    ([np.inf, 0.0, 0.0], 0), ([np.inf, 0.0, 0.0], 1),          # inf - inf, then inf's softmax
    ([-np.inf, 0.0, 0.0], 0), ([-np.inf, 0.0, 0.0], 1),        # a class that cannot win
    ([-np.inf, -np.inf, -np.inf], 1),                          # no class can win
    ([np.nan, 0.0, 0.0], 1), ([0.0, 0.0, np.nan], 2),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_special_logits_match_spec(device):
    z = np.array([row for row, _ in SPECIAL_ROWS], np.float32)
    labels = np.array([label for _, label in SPECIAL_ROWS], np.float32)
    g = np.linspace(-2.0, 2.0, len(SPECIAL_ROWS)).astype(np.float32)
    want_losses, want_grad = run(spec, z, labels, g)
    lse_row_1 = 89.0 + np.log1p(np.exp(-1.0))
    np.testing.assert_allclose(want_losses, [0.0, lse_row_1, np.nan, np.inf, np.inf, np.log(2.0),
                                             np.nan, np.nan, np.nan], rtol=1e-6, equal_nan=True)
    losses, grad = run(device, z, labels, g)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_no_classes_gives_nan_losses_and_no_rows_writes_nothing(device):
    losses = device.alloc(3, "float32")
    device.softmax_xent(device.alloc(1, "float32"), to_device(device, np.zeros(3)), losses, 0, 3)
    assert np.isnan(read(device, losses, 3)).all()
    sentinel = to_device(device, np.full(4, 5.0))
    device.softmax_xent(to_device(device, np.zeros(4)), device.alloc(1, "float32"), sentinel, 4, 0)
    device.softmax_xent_grad(to_device(device, np.zeros(4)), device.alloc(1, "float32"),
                             device.alloc(1, "float32"), sentinel, 4, 0)
    np.testing.assert_array_equal(read(device, sentinel, 4), [5.0] * 4)
