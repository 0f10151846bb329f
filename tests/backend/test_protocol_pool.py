"""The device protocol's pooling pairs (max_pool2d_forward/backward, avg_pool2d_forward/backward):
the numpy spec against float64 loops written out pixel by pixel, then every enabled device against
the spec (overlapping windows, padding, ties, NaN and inf, empty batches), and bad sizes. Tests of
the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS

# (n, h, w, c), (kh, kw), (stride_h, stride_w), (pad_h, pad_w)
CASES = [
    ((2, 6, 6, 3), (2, 2), (2, 2), (0, 0)),
    ((2, 7, 5, 3), (3, 3), (2, 2), (1, 1)),
    ((1, 5, 6, 2), (3, 2), (1, 1), (1, 0)),
    ((3, 4, 4, 5), (1, 1), (1, 1), (0, 0)),
    ((1, 7, 7, 2), (2, 2), (2, 2), (0, 0)),  # the last row and column belong to no window
    ((1, 6, 5, 1), (2, 2), (3, 2), (1, 0)),
    ((4, 9, 9, 33), (3, 3), (2, 2), (1, 1)),
    ((0, 4, 4, 2), (2, 2), (2, 2), (0, 0)),
    ((2, 4, 4, 0), (2, 2), (2, 2), (0, 0)),
]


def out_size(shape, kernel, stride, padding):
    return tuple((size + 2 * p - k) // s + 1
                 for size, k, s, p in zip(shape[1:3], kernel, stride, padding))


def run(device, x, gy, kernel, stride, padding, dtype="float32"):
    """(out, gx) of `device` as host arrays."""
    n, h, w, c = x.shape
    oh, ow = out_size(x.shape, kernel, stride, padding)
    sizes = (n, h, w, c, *kernel, oh, ow, *stride, *padding)
    x_handle, out = to_device(device, x, dtype), device.alloc(max(n * oh * ow * c, 1), dtype)
    device.max_pool2d_forward(x_handle, out, *sizes)
    gx = to_device(device, np.full(x.shape, 123.0), dtype)
    device.max_pool2d_backward(x_handle, out, to_device(device, gy, dtype), gx, *sizes)
    return (read(device, out, n * oh * ow * c).reshape(n, oh, ow, c),
            read(device, gx, x.size).reshape(x.shape))


def looped(x, gy, kernel, stride, padding):
    """The definition, one window at a time."""
    n, h, w, c = x.shape
    oh, ow = out_size(x.shape, kernel, stride, padding)
    out, gx = np.zeros((n, oh, ow, c)), np.zeros(x.shape)
    for b, i, j, ch in np.ndindex(n, oh, ow, c):
        cells = [(r, s) for r in range(i * stride[0] - padding[0],
                                       i * stride[0] - padding[0] + kernel[0])
                 for s in range(j * stride[1] - padding[1], j * stride[1] - padding[1] + kernel[1])
                 if 0 <= r < h and 0 <= s < w]
        values = [x[b, r, s, ch] for r, s in cells]
        out[b, i, j, ch] = peak = max(values)
        winners = [cell for cell, value in zip(cells, values) if value == peak]
        for r, s in winners:
            gx[b, r, s, ch] += gy[b, i, j, ch] / len(winners)
    return out, gx


@pytest.mark.parametrize("case", CASES[:6], ids=str)
def test_spec_matches_the_definition(case):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, shape).astype(np.float64)  # many ties
    gy = rng.standard_normal((shape[0], *out_size(shape, kernel, stride, padding), shape[3]))
    out, gx = run(spec, x, gy, kernel, stride, padding, dtype="float64")
    want_out, want_gx = looped(x, gy, kernel, stride, padding)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_device_matches_spec(device, case, ties):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 2, shape) if ties else rng.standard_normal(shape)
    gy = rng.standard_normal((shape[0], *out_size(shape, kernel, stride, padding), shape[3]))
    want = run(spec, x.astype(np.float32), gy, kernel, stride, padding)
    got = run(device, x.astype(np.float32), gy, kernel, stride, padding)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_nan_and_inf_match_spec(device):
    # A NaN maximum spreads NaN over its window's gradient; inf and -inf are ordinary values.
    x = np.arange(2 * 6 * 6 * 2, dtype=np.float32).reshape(2, 6, 6, 2) % 7
    x[0, 0, 0, 0], x[0, 2, 3, 1], x[1, 4, 4, 0], x[1, 0, 5, 1] = np.nan, np.inf, -np.inf, np.nan
    gy = np.linspace(-1.0, 1.0, 2 * 3 * 3 * 2).reshape(2, 3, 3, 2)
    for kernel, stride, padding in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))):
        want = run(spec, x, gy, kernel, stride, padding)
        got = run(device, x, gy, kernel, stride, padding)
        assert np.isnan(want[0]).any() and np.isnan(want[1]).any()
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("sizes, message", [
    ((1, 4, 4, 1, 2, 2, 3, 2, 2, 2, 0, 0), "output size"),
    ((1, 4, 4, 1, 0, 2, 2, 2, 2, 2, 0, 0), "kernel"),
    ((1, 4, 4, 1, 2, 2, 2, 2, 0, 2, 0, 0), "stride"),
    ((1, 4, 4, 1, 2, 2, 3, 3, 2, 2, 2, 2), "padding"),
    ((1, 4, 4, 1, 2, 2, 3, 3, 2, 2, -1, 0), "padding"),
    ((-1, 4, 4, 1, 2, 2, 2, 2, 2, 2, 0, 0), "negative"),
])
def test_bad_sizes_raise(device, sizes, message):
    x, out = to_device(device, np.ones(64)), device.alloc(64, "float32")
    with pytest.raises(ValueError, match=message):
        device.max_pool2d_forward(x, out, *sizes)
    with pytest.raises(ValueError, match=message):
        device.max_pool2d_backward(x, out, out, device.alloc(64, "float32"), *sizes)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_short_buffers_raise(device):
    sizes = (2, 4, 4, 3, 2, 2, 2, 2, 2, 2, 0, 0)  # x 96 elements, out 24
    x, out = to_device(device, np.ones(96)), device.alloc(24, "float32")
    with pytest.raises(ValueError):
        device.max_pool2d_forward(to_device(device, np.ones(95)), out, *sizes)
    with pytest.raises(ValueError):
        device.max_pool2d_forward(x, device.alloc(23, "float32"), *sizes)
    with pytest.raises(ValueError):
        device.max_pool2d_backward(x, out, out, device.alloc(95, "float32"), *sizes)


def run_avg(device, x, gy, kernel, stride, padding, dtype="float32"):
    """(out, gx) of `device`'s average pooling as host arrays."""
    n, h, w, c = x.shape
    oh, ow = out_size(x.shape, kernel, stride, padding)
    sizes = (n, h, w, c, *kernel, oh, ow, *stride, *padding)
    out = device.alloc(max(n * oh * ow * c, 1), dtype)
    device.avg_pool2d_forward(to_device(device, x, dtype), out, *sizes)
    gx = to_device(device, np.full(x.shape, 123.0), dtype)
    device.avg_pool2d_backward(to_device(device, gy, dtype), gx, *sizes)
    return (read(device, out, n * oh * ow * c).reshape(n, oh, ow, c),
            read(device, gx, x.size).reshape(x.shape))


def looped_avg(x, gy, kernel, stride, padding):
    """The definition, one window at a time: padding adds zeros to the sum, never to x."""
    n, h, w, c = x.shape
    oh, ow = out_size(x.shape, kernel, stride, padding)
    out, gx = np.zeros((n, oh, ow, c)), np.zeros(x.shape)
    area = kernel[0] * kernel[1]
    for b, i, j, ch in np.ndindex(n, oh, ow, c):
        cells = [(r, s) for r in range(i * stride[0] - padding[0],
                                       i * stride[0] - padding[0] + kernel[0])
                 for s in range(j * stride[1] - padding[1], j * stride[1] - padding[1] + kernel[1])
                 if 0 <= r < h and 0 <= s < w]
        out[b, i, j, ch] = sum(x[b, r, s, ch] for r, s in cells) / area
        for r, s in cells:
            gx[b, r, s, ch] += gy[b, i, j, ch] / area
    return out, gx


@pytest.mark.parametrize("case", CASES[:6], ids=str)
def test_avg_spec_matches_the_definition(case):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    gy = rng.standard_normal((shape[0], *out_size(shape, kernel, stride, padding), shape[3]))
    out, gx = run_avg(spec, x, gy, kernel, stride, padding, dtype="float64")
    want_out, want_gx = looped_avg(x, gy, kernel, stride, padding)
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_avg_device_matches_spec(device, case):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(sum(shape) + 7)
    x = rng.standard_normal(shape).astype(np.float32)
    gy = rng.standard_normal((shape[0], *out_size(shape, kernel, stride, padding), shape[3]))
    want = run_avg(spec, x, gy, kernel, stride, padding)
    got = run_avg(device, x, gy, kernel, stride, padding)
    for value, expected in zip(got, want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_avg_bad_sizes_and_short_buffers_raise(device):
    x, out = to_device(device, np.ones(96)), device.alloc(24, "float32")
    with pytest.raises(ValueError, match="output size"):
        device.avg_pool2d_forward(x, out, 2, 4, 4, 3, 2, 2, 3, 2, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="padding"):
        device.avg_pool2d_backward(out, x, 2, 4, 4, 3, 2, 2, 3, 3, 2, 2, 2, 2)
    sizes = (2, 4, 4, 3, 2, 2, 2, 2, 2, 2, 0, 0)  # x 96 elements, out 24
    with pytest.raises(ValueError):
        device.avg_pool2d_forward(to_device(device, np.ones(95)), out, *sizes)
    with pytest.raises(ValueError):
        device.avg_pool2d_backward(out, device.alloc(95, "float32"), *sizes)
