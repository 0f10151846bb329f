"""The device protocol, function by function, on every enabled device against the numpy device.
Tests of the backend layer: handles in, `out` written, strided inputs of every kind.
"""

import itertools

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from engine.backend.protocol import (
    BINARY_OPS,
    CORE_FUNCTIONS,
    REDUCE_FUNCTIONS,
    UNARY_OPS,
    missing_functions,
)
from tests.devices import DEVICE_PARAMS

RNG = np.random.default_rng(0)


def to_device(device, host):
    handle = device.alloc(host.size, "float32")
    device.from_numpy(np.ascontiguousarray(host, dtype=np.float32).reshape(-1), handle)
    return handle


def read(device, handle, size):
    return device.to_numpy(handle, (size,), (1,), 0)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_device_implements_the_whole_protocol(device):
    assert missing_functions(device.module, CORE_FUNCTIONS) == []


STRIDED_CASES = [
    # (buffer size, shape, strides, offset)
    (1, (), (), 0),
    (24, (2, 3, 4), (12, 4, 1), 0),
    (24, (4, 3, 2), (1, 4, 12), 0),
    (30, (2, 2), (0, 3), 5),
    (24, (3, 4), (-4, -1), 23),
    (64, (2,) * 6, (32, 16, 8, 4, 2, 1), 0),
    (256, (2,) * 8, (128, 64, 32, 16, 8, 4, 2, 1), 0),
    (40, (3, 1, 5), (10, 7, 2), 3),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", STRIDED_CASES, ids=str)
def test_compact_and_setitem_match_spec(device, case):
    buffer_size, shape, strides, offset = case
    host = RNG.standard_normal(buffer_size).astype(np.float32)
    size = int(np.prod(shape))
    expected = spec.alloc(size, "float32")
    spec.compact(host.copy(), expected, shape, strides, offset)
    out = device.alloc(size, "float32")
    device.compact(to_device(device, host), out, shape, strides, offset)
    np.testing.assert_array_equal(read(device, out, size), expected)

    values = RNG.standard_normal(size).astype(np.float32)
    if 0 in strides:
        return  # writing through a broadcast view is order-dependent
    want = host.copy()
    spec.ewise_setitem(values.copy(), want, shape, strides, offset)
    target = to_device(device, host)
    device.ewise_setitem(to_device(device, values), target, shape, strides, offset)
    np.testing.assert_array_equal(read(device, target, buffer_size), want)

    want = host.copy()
    spec.scalar_setitem(size, 2.5, want, shape, strides, offset)
    target = to_device(device, host)
    device.scalar_setitem(size, 2.5, target, shape, strides, offset)
    np.testing.assert_array_equal(read(device, target, buffer_size), want)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("size", [1, 7, 1000, 4099])
def test_elementwise_scalar_and_unary_match_spec(device, size):
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    b[::3] = a[::3]  # exercise eq / ge ties
    positive = np.abs(a) + 0.1
    da, db, dp = to_device(device, a), to_device(device, b), to_device(device, positive)
    out = device.alloc(size, "float32")
    for op in BINARY_OPS:
        want = spec.alloc(size, "float32")
        getattr(spec, f"ewise_{op}")(a, b, want, size)
        getattr(device, f"ewise_{op}")(da, db, out, size)
        np.testing.assert_allclose(read(device, out, size), want, rtol=1e-6, err_msg=op)
    for op, value in itertools.product(BINARY_OPS + ("power", "rdiv"), (0.5, -1.5, 2.0)):
        src, dsrc = (positive, dp) if op == "power" else (a, da)
        want = spec.alloc(size, "float32")
        getattr(spec, f"scalar_{op}")(src, value, want, size)
        getattr(device, f"scalar_{op}")(dsrc, value, out, size)
        np.testing.assert_allclose(read(device, out, size), want, rtol=2e-6, atol=1e-6,
                                   err_msg=f"scalar_{op}({value})")
    for op in UNARY_OPS:
        src, dsrc = (positive, dp) if op in ("log", "sqrt") else (a, da)
        want = spec.alloc(size, "float32")
        getattr(spec, f"ewise_{op}")(src, want, size)
        getattr(device, f"ewise_{op}")(dsrc, out, size)
        np.testing.assert_allclose(read(device, out, size), want, rtol=2e-6, atol=1e-6,
                                   err_msg=op)
    device.fill(out, 3.25, size)
    np.testing.assert_array_equal(read(device, out, size), np.full(size, 3.25, np.float32))


def test_fused_spec_semantics():
    # The spec itself, against values written out: x <= 0 blocks g, NaN included; a NaN x
    # passes g on (PyTorch's rule, which keeps a NaN's gradient traceable).
    g = np.array([1.0, 2.0, np.nan, 4.0, np.nan, -6.0], np.float32)
    x = np.array([0.5, -1.0, -2.0, np.nan, 3.0, 0.0], np.float32)
    out = np.empty(6, np.float32)
    spec.ewise_relu_grad(g, x, out, 6)
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, 4.0, np.nan, 0.0])
    spec.ewise_add_scaled(g[:2], x[:2], -2.0, out, 2)
    np.testing.assert_array_equal(out[:2], [0.0, 4.0])
    spec.ewise_axpby(g[:2], x[:2], 0.5, -2.0, out, 2)
    np.testing.assert_array_equal(out[:2], [-0.5, 3.0])


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("size", [1, 37, 70_001])  # 70_001: past the C kernels' threading grain
@pytest.mark.parametrize("alias", [None, "first", "second"])
def test_fused_functions_match_spec(device, size, alias):
    g = RNG.standard_normal(size).astype(np.float32)
    x = RNG.standard_normal(size).astype(np.float32)
    if size > 8:
        g[:8] = [np.nan, np.nan, np.inf, -np.inf, 1.0, -0.0, 5.0, 2.0]
        x[:8] = [-1.0, 2.0, 3.0, 0.0, np.nan, 1.0, np.inf, -np.inf]
    for name, scalars in (("ewise_relu_grad", ()), ("ewise_add_scaled", (-0.37,)),
                          ("ewise_add_scaled", (3.0,)), ("ewise_axpby", (0.9, 0.1)),
                          ("ewise_axpby", (-2.0, 0.5))):
        want = spec.alloc(size, "float32")
        with np.errstate(invalid="ignore"):
            getattr(spec, name)(g, x, *scalars, want, size)
        dg, dx = to_device(device, g), to_device(device, x)
        out = {"first": dg, "second": dx}[alias] if alias else device.alloc(size, "float32")
        getattr(device, name)(dg, dx, *scalars, out, size)
        # add_scaled and axpby may fuse a product into the sum where numpy rounds each step.
        np.testing.assert_allclose(read(device, out, size), want, rtol=1e-6, atol=1e-6,
                                   equal_nan=True, err_msg=f"{name}{scalars}, out={alias}")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("out_size,reduce_size", [(1, 1), (1, 1000), (7, 13), (300, 3), (2, 5001)])
def test_reductions_match_spec(device, out_size, reduce_size):
    a = RNG.standard_normal(out_size * reduce_size).astype(np.float32)
    da = to_device(device, a)
    out = device.alloc(out_size, "float32")
    for name in REDUCE_FUNCTIONS:
        want = spec.alloc(out_size, "float32")
        getattr(spec, name)(a, want, reduce_size, out_size)
        getattr(device, name)(da, out, reduce_size, out_size)
        np.testing.assert_allclose(read(device, out, out_size), want, rtol=1e-5, atol=1e-4,
                                   err_msg=name)


# Rows of two: the expected logsumexp of each, written out (a row's shift must not overflow, and
# infinities and NaN come out as the mathematics says).
LSE_ROWS = [([0.0, 0.0], np.log(2.0)), ([1000.0, 1000.0], 1000.0 + np.log(2.0)),
            ([-1000.0, -1000.0], -1000.0 + np.log(2.0)), ([-np.inf, -np.inf], -np.inf),
            ([-np.inf, 3.0], 3.0), ([np.inf, 1.0], np.inf), ([np.inf, -np.inf], np.inf),
            ([np.nan, 1.0], np.nan), ([1.0, np.nan], np.nan), ([-np.inf, np.nan], np.nan),
            ([88.0, 89.0], 89.0 + np.log1p(np.exp(-1.0)))]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_logsumexp_special_values(device):
    rows = np.array([row for row, _ in LSE_ROWS], np.float32).reshape(-1)
    want = np.array([value for _, value in LSE_ROWS], np.float32)
    out_size = len(LSE_ROWS)
    for label, impl in (("spec", spec), (device.name, device)):
        out = impl.alloc(out_size, "float32")
        impl.reduce_logsumexp(to_device(impl, rows), out, 2, out_size)
        np.testing.assert_allclose(read(impl, out, out_size), want, rtol=1e-6, equal_nan=True,
                                   err_msg=label)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_logsumexp_special_values_in_long_rows(device):
    # Rows longer than a Triton chunk (1024) and than the C threading grain, with the special
    # value in a later chunk, and more rows than a Triton program's block.
    out_size, reduce_size = 5, 3000
    rows = RNG.standard_normal((out_size, reduce_size)).astype(np.float32)
    rows[0, 2500] = np.nan
    rows[1, 1500] = np.inf
    rows[2] = -np.inf
    rows[3, 2999], rows[3, 7] = np.nan, np.inf
    rows[4] *= 30.0  # exp overflows unshifted
    want = spec.alloc(out_size, "float32")
    spec.reduce_logsumexp(rows.reshape(-1), want, reduce_size, out_size)
    np.testing.assert_array_equal(want[:4], [np.nan, np.inf, -np.inf, np.nan])
    out = device.alloc(out_size, "float32")
    device.reduce_logsumexp(to_device(device, rows), out, reduce_size, out_size)
    np.testing.assert_allclose(read(device, out, out_size), want, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_logsumexp_of_an_empty_row_is_minus_inf(device):
    out = device.alloc(3, "float32")
    device.reduce_logsumexp(device.alloc(1, "float32"), out, 0, 3)
    np.testing.assert_array_equal(read(device, out, 3), [-np.inf] * 3)


MATMUL_CASES = [
    # batch, m, k, n, a strides (batch, row, col), b strides (batch, row, col)
    (1, 1, 1, 1, (1, 1, 1), (1, 1, 1)),
    (1, 7, 13, 5, (0, 13, 1), (0, 5, 1)),
    (1, 7, 13, 5, (0, 1, 7), (0, 1, 13)),          # both operands transposed views
    (3, 17, 31, 19, (17 * 31, 31, 1), (0, 19, 1)),  # batch broadcast on b
    (2, 64, 65, 67, (64 * 65, 65, 1), (65 * 67, 67, 1)),
    (1, 100, 784, 10, (0, 784, 1), (0, 10, 1)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", MATMUL_CASES, ids=str)
def test_matmul_matches_spec(device, case):
    batch, m, k, n, (abs_, ars, acs), (bbs, brs, bcs) = case
    a_size = (batch - 1) * abs_ + (m - 1) * ars + (k - 1) * acs + 1
    b_size = (batch - 1) * bbs + (k - 1) * brs + (n - 1) * bcs + 1
    a = RNG.standard_normal(a_size + 3).astype(np.float32)
    b = RNG.standard_normal(b_size + 2).astype(np.float32)
    want = spec.alloc(batch * m * n, "float32")
    spec.matmul(a, b, want, batch, m, k, n, 3, abs_, ars, acs, 2, bbs, brs, bcs)
    out = device.alloc(batch * m * n, "float32")
    device.matmul(to_device(device, a), to_device(device, b), out, batch, m, k, n,
                  3, abs_, ars, acs, 2, bbs, brs, bcs)
    np.testing.assert_allclose(read(device, out, batch * m * n), want, rtol=1e-4, atol=1e-4)
