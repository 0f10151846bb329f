"""The device protocol's normalization pair (norm_forward, norm_backward) in both layouts (per
row: layer norm; per column: batch norm): the numpy spec against float64 formulas and central
differences, then every enabled device against the spec. Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS

EPS = 1e-5


def layout(shape, per_row):
    """(groups, members, group_stride, member_stride) normalizing a compact (rows, cols) array
    per row or per column."""
    rows, cols = shape
    return (rows, cols, cols, 1) if per_row else (cols, rows, 1, cols)


def run(device, x, g, per_row, eps=EPS, dtype="float32"):
    """(out, mean, var, gradient) of `device` as host arrays of x's shape (stats per group)."""
    groups, members, group_stride, member_stride = layout(x.shape, per_row)
    x_handle = to_device(device, x, dtype)
    out, stats = device.alloc(max(x.size, 1), dtype), device.alloc(2 * groups, dtype)
    device.norm_forward(x_handle, out, stats, groups, members, group_stride, member_stride, eps)
    grad = device.alloc(max(x.size, 1), dtype)
    device.norm_backward(to_device(device, g, dtype), out, stats, grad, groups, members,
                         group_stride, member_stride, eps)
    stats_host = read(device, stats, 2 * groups)
    return (read(device, out, x.size).reshape(x.shape), stats_host[:groups], stats_host[groups:],
            read(device, grad, x.size).reshape(x.shape))


def float64_forward(x, per_row, eps=EPS):
    axis = 1 if per_row else 0
    mean = x.mean(axis=axis, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_spec_forward_matches_float64(per_row):
    x = np.random.default_rng(0).standard_normal((7, 5)) * 3.0 + 1.0
    out, mean, var, _ = run(spec, x, np.zeros_like(x), per_row, dtype="float64")
    axis = 1 if per_row else 0
    np.testing.assert_allclose(out, float64_forward(x, per_row), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=axis), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=axis), rtol=1e-12)


@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_spec_backward_matches_central_differences(per_row):
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, _, _, grad = run(spec, x, g, per_row, eps=0.1, dtype="float64")
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        values = []
        for delta in (1e-6, -1e-6):
            moved = x.copy()
            moved[index] += delta
            values.append((float64_forward(moved, per_row, eps=0.1) * g).sum())
        numeric[index] = (values[0] - values[1]) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# (rows, cols): one element; tiny; a batch of 100 x 100 features; rows longer than a Triton
# chunk of 1024; columns longer than one; more elements than the C threading grain (32768).
SHAPES = [(1, 1), (3, 7), (100, 100), (5, 3000), (3000, 5), (600, 100)]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_device_matches_spec(device, shape, per_row):
    rng = np.random.default_rng(shape[0] * shape[1])
    x = (2.0 * rng.standard_normal(shape) + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    want = run(spec, x, g, per_row)
    got = run(device, x, g, per_row)
    for name, value, expected in zip(("out", "mean", "var", "gradient"), got, want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def special_groups(per_row):
    """(x, g): each group (a row, transposed for the column layout) constant (variance 0, so the
    output is 0 and the gradient only the cotangent's deviation / sqrt(eps)); a large offset
    with small noise (a one-pass variance would cancel); a NaN; an infinity."""
    groups = np.array([
        [3.0, 3.0, 3.0, 3.0, 3.0],
        [1e4 + 0.5, 1e4 - 0.5, 1e4 + 0.25, 1e4 - 0.25, 1e4],
        [1.0, np.nan, 2.0, 3.0, 4.0],
        [1.0, np.inf, 2.0, 3.0, 4.0],
    ], np.float32)
    x = groups if per_row else np.ascontiguousarray(groups.T)
    return x, np.linspace(-1.0, 1.0, x.size).reshape(x.shape).astype(np.float32)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_special_groups_match_spec(device, per_row):
    x, g = special_groups(per_row)
    want = run(spec, x, g, per_row)
    got = run(device, x, g, per_row)
    to_rows = (lambda a: a) if per_row else (lambda a: a.T)
    assert (to_rows(want[0])[0] == 0).all() and np.isclose(want[2][1], 0.125)
    assert np.isnan(to_rows(want[0])[2:]).all() and np.isnan(to_rows(want[3])[2:]).all()
    for name, value, expected in zip(("out", "mean", "var", "gradient"), got, want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4, equal_nan=True,
                                   err_msg=name)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_empty_groups_give_nan_statistics(device):
    stats = device.alloc(6, "float32")
    out = to_device(device, np.full(2, 7.0))
    device.norm_forward(device.alloc(1, "float32"), out, stats, 3, 0, 1, 3, EPS)
    assert np.isnan(read(device, stats, 6)).all()
    device.norm_backward(device.alloc(1, "float32"), device.alloc(1, "float32"), stats, out, 3, 0,
                         1, 3, EPS)
    np.testing.assert_array_equal(read(device, out, 2), [7.0, 7.0])


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layout", [(1, 12, 1, 2), (1, 4000, 1, 64), (3, 3, 6, 1)], ids=str)
def test_layouts_past_the_buffer_raise(device, layout):
    # 12 elements: each layout's last element lies past them. No device may read or write there.
    x, out, stats = (to_device(device, np.ones(12)), device.alloc(12, "float32"),
                     device.alloc(8, "float32"))
    with pytest.raises(ValueError):
        device.norm_forward(x, out, stats, *layout, EPS)
    with pytest.raises(ValueError):
        device.norm_backward(x, x, stats, out, *layout, EPS)
