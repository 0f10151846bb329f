"""Triton average pooling kernels (kernel layer) through the cuda device, against the numpy spec:
plain, overlapping, padded and uncovered-edge windows, infinities and NaN, empty shapes, several
programs and channel blocks, and bad sizes and buffers.
"""

import numpy as np
import pytest

from engine.backend import numpy_device
from tests.device_buffers import read, to_device
from tests.kernels.test_triton_pool import CASES, SENTINEL, SIZE_ERRORS, _sizes
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))

RNG = np.random.default_rng(12)


def _run(device, x, gy, sizes):
    """(out, gx) of `device` (the cuda module or the numpy spec) as host arrays; unwritten
    elements keep SENTINEL."""
    n, h, w_, c, _, _, oh, ow = sizes[:8]
    out_size, in_size = n * oh * ow * c, n * h * w_ * c
    if device is numpy_device:
        out = np.full(out_size, SENTINEL, np.float32)
        numpy_device.avg_pool2d_forward(x, out, *sizes)
        gx = np.full(in_size, SENTINEL, np.float32)
        numpy_device.avg_pool2d_backward(gy, gx, *sizes)
        return out, gx
    out = to_device(device, np.full(out_size, SENTINEL, np.float32))
    device.avg_pool2d_forward(to_device(device, x), out, *sizes)
    gx = to_device(device, np.full(in_size, SENTINEL, np.float32))
    device.avg_pool2d_backward(to_device(device, gy), gx, *sizes)
    return read(device, out, out_size), read(device, gx, in_size)


def _check(cuda, x, sizes, gy=None):
    n, _, _, c, _, _, oh, ow = sizes[:8]
    if gy is None:
        gy = RNG.standard_normal(n * oh * ow * c).astype(np.float32)
    want = _run(numpy_device, x.reshape(-1), gy, sizes)
    got = _run(cuda, x.reshape(-1), gy, sizes)
    for name, value, expected in zip(("out", "gx"), got, want, strict=True):
        # Both add in the spec's order and divide with IEEE rounding: equal to the bit.
        np.testing.assert_array_equal(value, expected, err_msg=name)
    return got


@pytest.mark.parametrize("shape, kernel, stride, pad", CASES)
def test_matches_spec_random(cuda, shape, kernel, stride, pad):
    x = RNG.standard_normal(shape).astype(np.float32)
    _check(cuda, x, _sizes(shape, kernel, stride, pad))


def test_padding_counts_as_zeros(cuda):
    # A 3x3 window at stride 2 with padding 1 on a 2x2 input of ones: each corner window holds
    # four ones and five zeros of padding, so 4/9, and each element gets its one window's 1/9.
    sizes = _sizes((1, 2, 2, 1), (3, 3), (2, 2), (1, 1))
    out, gx = _check(cuda, np.ones(4, np.float32), sizes, gy=np.ones(1, np.float32))
    np.testing.assert_array_equal(out, [np.float32(4) / np.float32(9)])
    np.testing.assert_array_equal(gx, [np.float32(1) / np.float32(9)] * 4)


def test_overlapping_windows_add_their_shares(cuda):
    # 2x2 windows at stride 1 over 3x3: the centre lies in all four windows, corners in one.
    sizes = _sizes((1, 3, 3, 1), (2, 2), (1, 1), (0, 0))
    _, gx = _check(cuda, np.zeros(9, np.float32), sizes, gy=np.full(4, 4.0, np.float32))
    np.testing.assert_array_equal(gx.reshape(3, 3), [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("shape, kernel, stride, pad", CASES[1:3])
def test_nan_and_infinities(cuda, shape, kernel, stride, pad):
    x = RNG.standard_normal(shape).astype(np.float32).reshape(-1)
    spots = RNG.choice(x.size, size=4, replace=False)
    x[spots[:2]] = np.nan
    x[spots[2]], x[spots[3]] = np.inf, -np.inf
    sizes = _sizes(shape, kernel, stride, pad)
    n, _, _, c, _, _, oh, ow = sizes[:8]
    gy = RNG.standard_normal(n * oh * ow * c).astype(np.float32)
    gy[:2] = np.nan, np.inf
    out, gx = _check(cuda, x, sizes, gy)
    assert np.isnan(out).any() and np.isnan(gx).any()


@pytest.mark.parametrize("shape", [(0, 4, 4, 3), (2, 4, 4, 0)])
def test_empty_shapes(cuda, shape):
    _check(cuda, np.zeros(shape, np.float32), _sizes(shape, (2, 2), (2, 2), (0, 0)))


def test_empty_input_all_padding(cuda):
    # h = w = 0 with kernel 2 * padding: one window of padding only, average 0, no gradient.
    sizes = _sizes((1, 0, 0, 3), (2, 2), (1, 1), (1, 1))
    out, _ = _check(cuda, np.zeros(0, np.float32), sizes)
    np.testing.assert_array_equal(out, [0.0] * 3)


def test_every_gx_element_written(cuda):
    # Stride past the kernel leaves rows and columns no window covers: they get 0, not SENTINEL.
    sizes = _sizes((1, 5, 5, 2), (1, 1), (2, 2), (0, 0))
    out, gx = _check(cuda, RNG.standard_normal((1, 5, 5, 2)).astype(np.float32), sizes)
    assert not np.any(gx == SENTINEL) and np.count_nonzero(gx) == out.size


@pytest.mark.parametrize("sizes, message", SIZE_ERRORS)
def test_bad_sizes(cuda, sizes, message):
    x, out = to_device(cuda, np.zeros(64, np.float32)), to_device(cuda, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match=message):
        cuda.avg_pool2d_forward(x, out, *sizes)
    with pytest.raises(ValueError, match=message):
        cuda.avg_pool2d_backward(out, x, *sizes)
    if isinstance(sizes[4], int):  # the spec raises the same error
        with pytest.raises(ValueError, match=message):
            numpy_device.avg_pool2d_backward(np.zeros(64, np.float32), np.zeros(64, np.float32),
                                             *sizes)


@pytest.mark.parametrize("operand", ["x", "out", "gy", "gx"])
def test_short_buffers(cuda, operand):
    sizes = _sizes((2, 4, 4, 3), (2, 2), (2, 2), (0, 0))
    lengths = {"x": 96, "out": 24, "gy": 24, "gx": 96}
    buffers = {name: to_device(cuda, np.zeros(length - (name == operand), np.float32))
               for name, length in lengths.items()}
    call = (cuda.avg_pool2d_forward, "x", "out") if operand in ("x", "out") else (
        cuda.avg_pool2d_backward, "gy", "gx")
    with pytest.raises(ValueError, match=f"avg_pool2d_\\w+ {operand}: buffer holds"):
        call[0](buffers[call[1]], buffers[call[2]], *sizes)
