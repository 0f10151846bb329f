"""Triton softmax cross-entropy kernels (kernel layer) through the cuda device, against the numpy
spec: one and several row blocks, rows wider than one 1024-column chunk, invalid labels, special
logits (inf, -inf, NaN, +-1000), empty shapes and the launchers' argument errors.
"""

import numpy as np
import pytest

from engine.backend import numpy_device
from tests.device_buffers import read, to_device
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))

RNG = np.random.default_rng(3)


def _run(device, z, labels, g):
    """(losses, gradient) as host arrays; `device` is the cuda module or the numpy spec."""
    rows, classes = z.shape
    if device is numpy_device:
        losses, grad = np.empty(rows, np.float32), np.empty(rows * classes, np.float32)
        numpy_device.softmax_xent(z.reshape(-1), labels, losses, classes, rows)
        numpy_device.softmax_xent_grad(z.reshape(-1), labels, g, grad, classes, rows)
        return losses, grad.reshape(rows, classes)
    z_handle, label_handle = to_device(device, z), to_device(device, labels)
    losses, grad = device.alloc(max(rows, 1)), device.alloc(max(rows * classes, 1))
    device.softmax_xent(z_handle, label_handle, losses, classes, rows)
    device.softmax_xent_grad(z_handle, label_handle, to_device(device, g), grad, classes, rows)
    return (read(device, losses, rows),
            read(device, grad, rows * classes).reshape(rows, classes))


def _check_against_spec(cuda, z, labels, g):
    want_losses, want_grad = _run(numpy_device, z, labels, g)
    losses, grad = _run(cuda, z, labels, g)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5, equal_nan=True)
    # Sum orders differ, so lse may differ by an ulp (about 1e-6 at |lse| ~ 10): the label's
    # entry g * (p - 1) carries that error undiminished even when it is small itself.
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5, equal_nan=True)
    return losses, grad


# (rows, classes): single elements; one block of rows; several row blocks with padding rows;
# rows longer than one 1024-column chunk, the last chunk partial.
SHAPES = [(1, 1), (1, 7), (37, 5), (70, 64), (9, 1500), (2, 2049)]


@pytest.mark.parametrize("rows, classes", SHAPES)
def test_matches_spec(cuda, rows, classes):
    z = (4.0 * RNG.standard_normal((rows, classes))).astype(np.float32)
    labels = RNG.integers(0, classes, rows).astype(np.float32)
    g = RNG.standard_normal(rows).astype(np.float32)
    _check_against_spec(cuda, z, labels, g)


def test_loss_uses_reduce_logsumexp_value(cuda):
    # With z[i, label] = 0 the loss is lse itself, which must be reduce_logsumexp's bit for bit.
    rows, classes = 6, 1100
    z = (4.0 * RNG.standard_normal((rows, classes))).astype(np.float32)
    z[1, 1050] = np.inf
    z[2, 3] = np.nan
    z[3, :] = -np.inf
    z[4, 1099] = 1000.0
    labels = np.array([0, 1, 2, 1070, 4, 1099], np.float32)
    z[np.arange(rows), labels.astype(int)] = 0.0
    z_handle, lse = to_device(cuda, z), cuda.alloc(rows)
    cuda.reduce_logsumexp(z_handle, lse, classes, rows)
    losses = cuda.alloc(rows)
    cuda.softmax_xent(z_handle, to_device(cuda, labels), losses, classes, rows)
    np.testing.assert_array_equal(read(cuda, losses, rows), read(cuda, lse, rows))


def test_invalid_labels_give_nan_rows(cuda):
    classes = 4
    # Fractions in range truncate to a class like the spec's cast; the rest are invalid.
    labels = np.array([-1.0, 4.0, 1e9, -1e9, np.nan, np.inf, -np.inf, -0.5, 2.5, 3.999, 0.0],
                      np.float32)
    z = RNG.standard_normal((labels.size, classes)).astype(np.float32)
    g = RNG.standard_normal(labels.size).astype(np.float32)
    losses, grad = _check_against_spec(cuda, z, labels, g)
    invalid = ~((labels >= 0) & (labels < classes))
    assert invalid.sum() == 8
    assert np.isnan(losses[invalid]).all() and np.isnan(grad[invalid]).all()
    assert np.isfinite(losses[~invalid]).all() and np.isfinite(grad[~invalid]).all()


def test_invalid_labels_across_chunks(cuda):
    rows, classes = 5, 1030
    z = RNG.standard_normal((rows, classes)).astype(np.float32)
    labels = np.array([1029, 1030, 1024, np.nan, -1], np.float32)
    losses, grad = _check_against_spec(cuda, z, labels, np.ones(rows, np.float32))
    assert np.isnan(losses[[1, 3, 4]]).all() and np.isfinite(losses[[0, 2]]).all()


# Rows of logits with special values, each paired with labels 0 and 2.
SPECIAL_ROWS = [
    [1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0], [88.0, 89.0, 0.0],
    [np.inf, 0.0, 1.0], [np.inf, np.inf, 0.0], [-np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf],
    [np.nan, 0.0, 0.0], [0.0, 0.0, np.nan], [np.inf, -np.inf, np.nan], [-np.inf, -np.inf, 5.0],
]


@pytest.mark.parametrize("label", [0.0, 2.0])
def test_special_logits_match_spec(cuda, label):
    z = np.array(SPECIAL_ROWS, np.float32)
    labels = np.full(len(SPECIAL_ROWS), label, np.float32)
    g = np.linspace(-2.0, 2.0, len(SPECIAL_ROWS)).astype(np.float32)
    losses, _ = _check_against_spec(cuda, z, labels, g)
    assert np.isnan(losses[[6, 7, 8, 9]]).all()  # -inf - -inf and NaN rows
    assert np.isnan(losses[4]) == (label == 0.0)  # inf - inf, or inf - 0


def test_special_logits_in_a_later_chunk(cuda):
    rows, classes = 4, 1500
    z = RNG.standard_normal((rows, classes)).astype(np.float32)
    z[0, 1400] = 1000.0
    z[1, 1200] = np.inf
    z[2, 1300] = np.nan
    z[3, 1100:] = -np.inf
    labels = np.array([1400, 5, 1300, 1200], np.float32)
    losses, grad = _check_against_spec(cuda, z, labels, RNG.standard_normal(rows).astype(
        np.float32))
    np.testing.assert_allclose(losses[[0, 1, 3]], [0.0, np.inf, np.inf], atol=1e-6)
    assert np.isnan(losses[2]) and np.isnan(grad[2]).all()


def test_no_classes_gives_nan_losses_and_no_rows_writes_nothing(cuda):
    losses = to_device(cuda, np.full(3, 5.0))
    cuda.softmax_xent(cuda.alloc(1), to_device(cuda, np.zeros(3)), losses, 0, 3)
    assert np.isnan(read(cuda, losses, 3)).all()
    sentinel = to_device(cuda, np.full(4, 5.0))
    cuda.softmax_xent_grad(cuda.alloc(1), to_device(cuda, np.zeros(3)), cuda.alloc(3), sentinel,
                           0, 3)
    cuda.softmax_xent(to_device(cuda, np.zeros(4)), cuda.alloc(1), sentinel, 4, 0)
    cuda.softmax_xent_grad(to_device(cuda, np.zeros(4)), cuda.alloc(1), cuda.alloc(1), sentinel,
                           4, 0)
    np.testing.assert_array_equal(read(cuda, sentinel, 4), [5.0] * 4)


def test_bad_arguments_raise(cuda):
    z, labels, g, out = cuda.alloc(12), cuda.alloc(3), cuda.alloc(3), cuda.alloc(12)
    with pytest.raises(ValueError, match="softmax_xent: negative sizes classes=-1, rows=3"):
        cuda.softmax_xent(z, labels, out, -1, 3)
    with pytest.raises(ValueError, match="softmax_xent_grad: negative sizes classes=4, rows=-2"):
        cuda.softmax_xent_grad(z, labels, g, out, 4, -2)
    with pytest.raises(ValueError, match="softmax_xent logits: buffer holds 12 elements, 15"):
        cuda.softmax_xent(z, labels, out, 5, 3)
    with pytest.raises(ValueError, match="softmax_xent labels: buffer holds 3 elements, 4"):
        cuda.softmax_xent(z, labels, out, 3, 4)
    with pytest.raises(ValueError, match="softmax_xent out: buffer holds 2 elements, 3"):
        cuda.softmax_xent(z, labels, cuda.alloc(2), 4, 3)
    with pytest.raises(ValueError, match="softmax_xent_grad g: buffer holds 2 elements, 3"):
        cuda.softmax_xent_grad(z, labels, cuda.alloc(2), out, 4, 3)
    with pytest.raises(ValueError, match="softmax_xent_grad out: buffer holds 11 elements, 12"):
        cuda.softmax_xent_grad(z, labels, g, cuda.alloc(11), 4, 3)
    with pytest.raises(TypeError, match="softmax_xent labels: expected a torch tensor"):
        cuda.softmax_xent(z, np.zeros(3, np.float32), out, 4, 3)
