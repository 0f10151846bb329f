"""Triton max pooling kernels (kernel layer) through the cuda device, against the numpy spec: plain,
overlapping, padded and uncovered-edge windows, ties, NaN and infinities, empty shapes, several
programs and channel blocks, the forward's out passed as given, and bad sizes and buffers.
"""

import numpy as np
import pytest

from engine.backend import numpy_device
from kernels_triton import pool
from kernels_triton.common import interpreting
from tests.device_buffers import read, to_device
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))

RNG = np.random.default_rng(11)
SENTINEL = 7.0


def _out_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def _sizes(shape, kernel, stride, pad):
    n, h, w_, c = shape
    oh, ow = (_out_size(h, kernel[0], stride[0], pad[0]),
              _out_size(w_, kernel[1], stride[1], pad[1]))
    return (n, h, w_, c, *kernel, oh, ow, *stride, *pad)


def _run(device, x, gy, sizes, out=None):
    """(out, gx) of `device` (the cuda module or the numpy spec) as host arrays; the backward
    takes `out` when given, else the forward's. Unwritten elements keep SENTINEL."""
    n, h, w_, c, _, _, oh, ow = sizes[:8]
    out_size, in_size = n * oh * ow * c, n * h * w_ * c
    if device is numpy_device:
        forward = np.full(out_size, SENTINEL, np.float32)
        numpy_device.max_pool2d_forward(x, forward, *sizes)
        gx = np.full(in_size, SENTINEL, np.float32)
        numpy_device.max_pool2d_backward(x, forward if out is None else out, gy, gx, *sizes)
        return forward, gx
    x_handle = to_device(device, x)
    forward = to_device(device, np.full(out_size, SENTINEL, np.float32))
    device.max_pool2d_forward(x_handle, forward, *sizes)
    gx = to_device(device, np.full(in_size, SENTINEL, np.float32))
    device.max_pool2d_backward(x_handle, forward if out is None else to_device(device, out),
                               to_device(device, gy), gx, *sizes)
    return read(device, forward, out_size), read(device, gx, in_size)


def _check(cuda, x, sizes, gy=None, out=None):
    n, _, _, c, _, _, oh, ow = sizes[:8]
    if gy is None:
        gy = RNG.standard_normal(n * oh * ow * c).astype(np.float32)
    want = _run(numpy_device, x.reshape(-1), gy, sizes, out)
    got = _run(cuda, x.reshape(-1), gy, sizes, out)
    for name, value, expected in zip(("out", "gx"), got, want, strict=True):
        # The gather adds each element's shares in the spec's order: equal to the bit.
        np.testing.assert_array_equal(value, expected, err_msg=name)
    return got


# (n, h, w, c), (kh, kw), (stride_h, stride_w), (pad_h, pad_w): non-overlapping 2x2, overlapping
# 3x3 with padding, 3x2 stride 1 padded in rows only, 1x1, odd sizes whose last row and column no
# window covers, a window the size of the input, and channels and pixels past one program (16
# channels and 32 pixels under the interpreter).
CASES = [
    ((2, 4, 6, 3), (2, 2), (2, 2), (0, 0)),
    ((1, 7, 6, 5), (3, 3), (2, 2), (1, 1)),
    ((2, 5, 4, 2), (3, 2), (1, 1), (1, 0)),
    ((1, 3, 5, 6), (1, 1), (1, 1), (0, 0)),
    ((1, 7, 5, 3), (2, 2), (2, 2), (0, 0)),
    ((2, 8, 7, 4), (3, 2), (3, 3), (0, 1)),
    ((1, 3, 4, 9), (3, 4), (1, 1), (0, 0)),
    ((1, 5, 5, 1), (2, 3), (3, 1), (1, 1)),
    ((2, 5, 7, 20), (3, 3), (2, 2), (1, 1)),
    ((1, 9, 8, 17), (2, 2), (2, 2), (0, 0)),
]


@pytest.mark.parametrize("shape, kernel, stride, pad", CASES)
def test_matches_spec_random(cuda, shape, kernel, stride, pad):
    x = RNG.standard_normal(shape).astype(np.float32)
    _check(cuda, x, _sizes(shape, kernel, stride, pad))


@pytest.mark.parametrize("shape, kernel, stride, pad", CASES[:3] + CASES[-2:])
def test_ties_share_the_gradient(cuda, shape, kernel, stride, pad):
    # Integer values from a small range: most windows hold several equal maxima.
    x = RNG.integers(-1, 2, size=shape).astype(np.float32)
    out, gx = _check(cuda, x, _sizes(shape, kernel, stride, pad))
    if stride == kernel:  # one window per element: more winners than windows means ties
        assert np.count_nonzero(gx) > out.size


def test_all_equal_window_splits_evenly(cuda):
    sizes = _sizes((1, 2, 2, 1), (2, 2), (2, 2), (0, 0))
    out, gx = _check(cuda, np.ones(4, np.float32), sizes, gy=np.array([2.0], np.float32))
    np.testing.assert_array_equal(gx, [0.5, 0.5, 0.5, 0.5])


@pytest.mark.parametrize("shape, kernel, stride, pad", CASES[:3] + CASES[-2:-1])
def test_nan_and_infinities(cuda, shape, kernel, stride, pad):
    x = RNG.standard_normal(shape).astype(np.float32).reshape(-1)
    spots = RNG.choice(x.size, size=6, replace=False)
    x[spots[:2]] = np.nan
    x[spots[2:4]] = np.inf
    x[spots[4:]] = -np.inf
    out, gx = _check(cuda, x, _sizes(shape, kernel, stride, pad))
    assert np.isnan(out).any() and np.isnan(gx).any()


def test_nan_window_poisons_every_element_it_covers(cuda):
    # The right 2x2 window holds NaN after a larger value and before smaller ones: its maximum
    # is NaN whatever the order, and NaN reaches all four of its elements, none of the left's.
    x = np.array([[1.0, 5.0, 9.0, np.nan], [3.0, 2.0, 4.0, 8.0]], np.float32)
    sizes = _sizes((1, 2, 4, 1), (2, 2), (2, 2), (0, 0))
    out, gx = _check(cuda, x, sizes, gy=np.array([1.0, 1.0], np.float32))
    assert out[0] == 5.0 and np.isnan(out[1])
    np.testing.assert_array_equal(gx.reshape(2, 4), [[0, 1, np.nan, np.nan],
                                                     [0, 0, np.nan, np.nan]])


def test_all_negative_infinity_window(cuda):
    # -inf equals the -inf padding but only elements of x may win: the padded window's one element.
    x = np.full((1, 3, 3, 2), -np.inf, np.float32)
    _check(cuda, x, _sizes((1, 3, 3, 2), (3, 3), (2, 2), (1, 1)))


def test_out_taken_as_given(cuda):
    # A backward whose out does not hold the windows' maxima: elements equal to it win, and a
    # window where none does sends NaN, as the spec says.
    shape, kernel, stride, pad = CASES[1]
    sizes = _sizes(shape, kernel, stride, pad)
    x = RNG.integers(0, 3, size=shape).astype(np.float32)
    n, _, _, c, _, _, oh, ow = sizes[:8]
    out = RNG.integers(0, 4, size=n * oh * ow * c).astype(np.float32)
    _check(cuda, x, sizes, out=out)


@pytest.mark.parametrize("shape", [(0, 4, 4, 3), (2, 4, 4, 0)])
def test_empty_shapes(cuda, shape):
    _check(cuda, np.zeros(shape, np.float32), _sizes(shape, (2, 2), (2, 2), (0, 0)))


def test_empty_input_all_padding(cuda):
    # h = w = 0 with kernel 2 * padding: one window of padding only, maximum -inf, no gradient.
    sizes = _sizes((1, 0, 0, 3), (2, 2), (1, 1), (1, 1))
    out, gx = _check(cuda, np.zeros(0, np.float32), sizes)
    np.testing.assert_array_equal(out, [-np.inf] * 3)


def test_every_gx_element_written(cuda):
    # Stride past the kernel leaves rows and columns no window covers: they get 0, not SENTINEL.
    sizes = _sizes((1, 5, 5, 2), (1, 1), (2, 2), (0, 0))
    out, gx = _check(cuda, RNG.standard_normal((1, 5, 5, 2)).astype(np.float32), sizes)
    assert not np.any(gx == SENTINEL) and np.count_nonzero(gx) == out.size


SIZE_ERRORS = [
    ((-1, 4, 4, 1, 2, 2, 2, 2, 2, 2, 0, 0), "negative size"),
    ((1, 4, 4, 1, 0, 2, 2, 2, 2, 2, 0, 0), "must be >= 1"),
    ((1, 4, 4, 1, 2, 2, 2, 2, 0, 2, 0, 0), "must be >= 1"),
    ((1, 4, 4, 1, 2, 2, 3, 3, 2, 2, -1, 0), "must be >= 1"),
    ((1, 4, 4, 1, 2, 2, 3, 2, 2, 2, 2, 0), "at most half the kernel"),
    ((1, 4, 4, 1, 2, 2, 3, 2, 2, 2, 0, 0), "does not match input"),
    ((1, 1, 4, 1, 2, 2, 0, 2, 2, 2, 0, 0), "does not match input"),
    ((1, 4, 4, 1, 2.0, 2, 2, 2, 2, 2, 0, 0), "kh must be an int"),
]


@pytest.mark.parametrize("sizes, message", SIZE_ERRORS)
def test_bad_sizes(cuda, sizes, message):
    x, out = to_device(cuda, np.zeros(64, np.float32)), to_device(cuda, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match=message):
        cuda.max_pool2d_forward(x, out, *sizes)
    with pytest.raises(ValueError, match=message):
        cuda.max_pool2d_backward(x, out, out, x, *sizes)
    if isinstance(sizes[4], int):  # the spec raises the same error
        with pytest.raises(ValueError, match=message):
            numpy_device.max_pool2d_forward(np.zeros(64, np.float32), np.zeros(64, np.float32),
                                            *sizes)


@pytest.mark.parametrize("sizes, message", [
    ((2**15, 256, 256, 1, 1, 1, 256, 256, 1, 1, 0, 0), r"n\*h\*w = 2147483648 is more than"),
    ((2**15, 255, 255, 1, 2, 2, 256, 256, 1, 1, 1, 1), r"n\*oh\*ow = 2147483648 is more than"),
    ((1, 2**30, 1, 1, 2**31 + 3, 1, 1024, 1, 2**20, 1, 2**30 + 1, 0),
     r"h \+ 2\*pad_h = 3221225474 is more than"),
])
def test_pixel_counts_past_int32_raise(cuda, sizes, message):
    """The kernels index pixels and padded rows in int32: past the limit, an error rather than
    wrapped indices (max and average pooling share the check)."""
    x = to_device(cuda, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="max_pool2d_forward: " + message):
        cuda.max_pool2d_forward(x, x, *sizes)
    with pytest.raises(ValueError, match="avg_pool2d_backward: " + message):
        cuda.avg_pool2d_backward(x, x, *sizes)


def test_no_channels_take_any_pixel_count(cuda):
    """Nothing to pool launches nothing, whatever the pixel count (as the spec)."""
    empty = to_device(cuda, np.zeros(0, np.float32))
    sizes = (2**16, 256, 256, 0, 1, 1, 256, 256, 1, 1, 0, 0)
    cuda.max_pool2d_forward(empty, empty, *sizes)
    cuda.avg_pool2d_forward(empty, empty, *sizes)
    numpy_device.max_pool2d_forward(np.zeros(0, np.float32), np.zeros(0, np.float32), *sizes)


@pytest.mark.parametrize("operand", ["x", "out", "gy", "gx"])
def test_short_buffers(cuda, operand):
    sizes = _sizes((2, 4, 4, 3), (2, 2), (2, 2), (0, 0))
    lengths = {"x": 96, "out": 24, "gy": 24, "gx": 96}
    buffers = {name: to_device(cuda, np.zeros(length - (name == operand), np.float32))
               for name, length in lengths.items()}
    with pytest.raises(ValueError, match=f"{operand}: buffer holds"):
        cuda.max_pool2d_backward(buffers["x"], buffers["out"], buffers["gy"], buffers["gx"],
                                 *sizes)
    if operand in ("x", "out"):
        with pytest.raises(ValueError, match=f"{operand}: buffer holds"):
            cuda.max_pool2d_forward(buffers["x"], buffers["out"], *sizes)


def test_blocks_under_the_interpreter_span_programs():
    # The shapes above rely on these tiles to cover several programs and channel blocks.
    if not interpreting():
        pytest.skip("GPU tiles are sized for throughput")
    assert pool.pool_blocks(20) == (32, 16) and pool.pool_blocks(3) == (32, 4)
