"""Triton elementwise and reduction kernels (kernel layer) through the cuda device, against the
numpy device: every binary, scalar, unary, fused and repeated-row op of the protocol, sizes 1,
primes and several blocks, special values (NaN, inf, zeros, negative bases), row reductions of any
length, and dropout's mask bit for bit (its hash at 32-bit extremes through a probe kernel).
"""

import numpy as np
import pytest

from engine.backend import numpy_device, protocol
from tests.kernels.triton_support import triton_marks

# Every test here runs Triton kernels, and the hash probe below is one of its own.
triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
ewise = pytest.importorskip("kernels_triton.ewise")

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))


RNG = np.random.default_rng(1)
SIZES = (1, 7, 1031)
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -3.0, 0.5, np.nan, np.inf, -np.inf, 1e-30, 80.0,
                    -80.0, 1e-4, -0.1], np.float32)


def _run(cuda, name, inputs, *scalars):
    """Run protocol function `name` on both devices; return (ours, numpy's)."""
    size = inputs[0].size
    expected = np.empty(size, np.float32)
    handles = []
    for host in inputs:
        handle = cuda.alloc(size)
        cuda.from_numpy(host, handle)
        handles.append(handle)
    out = cuda.alloc(size)
    getattr(numpy_device, name)(*inputs, *scalars, expected, size)
    getattr(cuda, name)(*handles, *scalars, out, size)
    return cuda.to_numpy(out, (size,), (1,), 0), expected


def _check(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_protocol_names_all_present(cuda):
    assert protocol.missing_functions(cuda, protocol.ALL_FUNCTIONS) == []
    assert cuda.enabled()


@pytest.mark.parametrize("name", protocol.EWISE_FUNCTIONS)
@pytest.mark.parametrize("size", SIZES)
def test_binary(cuda, name, size):
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    b[::3] = a[::3]  # equal pairs for eq/ge
    _check(*_run(cuda, name, [a, b]))


@pytest.mark.parametrize("name", protocol.EWISE_FUNCTIONS)
def test_binary_special_values(cuda, name):
    a = np.repeat(SPECIAL, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size)
    _check(*_run(cuda, name, [a, b]))


@pytest.mark.parametrize("size", SIZES)
def test_relu_grad(cuda, size):
    g = RNG.standard_normal(size).astype(np.float32)
    x = RNG.standard_normal(size).astype(np.float32)
    _check(*_run(cuda, "ewise_relu_grad", [g, x]))


def test_relu_grad_special_values(cuda):
    # NaN or non-positive x gives 0 whatever g holds (NaN, inf); positive x passes g through.
    g = np.repeat(SPECIAL, SPECIAL.size)
    x = np.tile(SPECIAL, SPECIAL.size)
    _check(*_run(cuda, "ewise_relu_grad", [g, x]))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("value", [-0.01, 1.0, -1.0, 0.0])
def test_add_scaled(cuda, size, value):
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    _check(*_run(cuda, "ewise_add_scaled", [a, b], value))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("alpha, beta", [(0.9, 0.1), (1.0, -0.01), (0.0, 2.0), (-1.5, 0.0)])
def test_axpby(cuda, size, alpha, beta):
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    _check(*_run(cuda, "ewise_axpby", [a, b], alpha, beta))


def _run_row(cuda, name, a, row, alias=False):
    """Run repeated-row function `name` on both devices (out = a when `alias`); return (ours,
    numpy's)."""
    size, period = a.size, row.size
    expected = np.empty(size, np.float32)
    getattr(numpy_device, name)(a, row, expected, size, period)
    a_handle, row_handle = cuda.alloc(size), cuda.alloc(period)
    cuda.from_numpy(a, a_handle)
    cuda.from_numpy(row, row_handle)
    out = a_handle if alias else cuda.alloc(size)
    getattr(cuda, name)(a_handle, row_handle, out, size, period)
    return cuda.to_numpy(out, (size,), (1,), 0), expected


# (rows, period): period 1 (specialized to a constant by Triton), periods that do not divide the
# 1024-element block (so a block starts mid-row), one longer than a block, several blocks.
ROW_SHAPES = [(1, 1), (2000, 1), (3, 7), (40, 100), (9, 1031), (5, 3000), (1024, 3)]


@pytest.mark.parametrize("name", protocol.ROW_FUNCTIONS)
@pytest.mark.parametrize("rows,period", ROW_SHAPES)
@pytest.mark.parametrize("alias", [False, True], ids=["new_out", "out_is_a"])
def test_row_ops(cuda, name, rows, period, alias):
    a = RNG.standard_normal(rows * period).astype(np.float32)
    row = RNG.standard_normal(period).astype(np.float32)
    got, expected = _run_row(cuda, name, a, row, alias)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rows,period", [(3, 7), (2, 1500)])
def test_row_ops_int64_row_path(cuda, monkeypatch, rows, period):
    # The path rows past int32 take (over 8 GiB of data), forced on a small one.
    monkeypatch.setattr(ewise, "INT32_LIMIT", 0)
    a = RNG.standard_normal(rows * period).astype(np.float32)
    row = RNG.standard_normal(period).astype(np.float32)
    got, expected = _run_row(cuda, "ewise_mul_row", a, row)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", protocol.ROW_FUNCTIONS)
def test_row_ops_special_values(cuda, name):
    # Every special value of `a` meets every special value of the row (inf * 0, inf - inf, NaN).
    a = np.repeat(SPECIAL, SPECIAL.size)
    _check(*_run_row(cuda, name, a, SPECIAL.copy()))


@pytest.mark.parametrize("name", protocol.ROW_FUNCTIONS)
def test_row_ops_empty_launches_nothing(cuda, name):
    out = cuda.alloc(3)
    cuda.from_numpy(np.full(3, 7.0, np.float32), out)
    getattr(cuda, name)(cuda.alloc(0), cuda.alloc(0), out, 0, 0)
    np.testing.assert_array_equal(cuda.to_numpy(out, (3,), (1,), 0), [7.0] * 3)


@pytest.mark.parametrize("size,period,a_size,row_size,error,message", [
    (-4, 2, 4, 2, ValueError, "a: negative size -4"),
    (4, 0, 4, 2, ValueError, "period must be >= 1 for a nonempty input, got 0"),
    (4, -2, 4, 2, ValueError, "period must be >= 1 for a nonempty input, got -2"),
    (6, 4, 6, 4, ValueError, "size 6 is not a multiple of the row's period 4"),
    (8, 4, 6, 4, ValueError, "a: buffer holds 6 elements, 8 needed"),
    (8, 4, 8, 3, ValueError, "row: buffer holds 3 elements, 4 needed"),
])
def test_row_ops_bad_arguments_raise(cuda, size, period, a_size, row_size, error, message):
    a, row = cuda.alloc(a_size), cuda.alloc(row_size)
    with pytest.raises(error, match=message):
        cuda.ewise_add_row(a, row, a, size, period)


def test_row_ops_reject_unknown_op_and_host_arrays(cuda):
    a = cuda.alloc(4)
    with pytest.raises(ValueError, match="unknown row op 'div'"):
        ewise.row_op("div", a, a, a, 4, 2)
    with pytest.raises(TypeError, match="row: expected a torch tensor"):
        cuda.ewise_mul_row(a, np.ones(2, np.float32), a, 4, 2)


@pytest.mark.parametrize("name", protocol.SCALAR_FUNCTIONS)
@pytest.mark.parametrize("value", [2.0, -1.5, 0.0, 3.0])
def test_scalar(cuda, name, value):
    a = np.concatenate([RNG.standard_normal(1031).astype(np.float32), SPECIAL])
    if name == "scalar_power":
        a = np.abs(a)
    _check(*_run(cuda, name, [a], value))


@pytest.mark.parametrize("value", [2.0, 3.0, -1.0, -2.0, 0.0, 1.0, 0.5, -0.5, 2.5, 7.0, -3.0])
def test_power_special_values(cuda, value):
    _check(*_run(cuda, "scalar_power", [SPECIAL.copy()], value))


@pytest.mark.parametrize("name", protocol.UNARY_FUNCTIONS)
@pytest.mark.parametrize("size", SIZES)
def test_unary(cuda, name, size):
    a = (RNG.standard_normal(size) * 3).astype(np.float32)
    if name in ("ewise_log", "ewise_sqrt"):
        a = np.abs(a) + 1e-3
    _check(*_run(cuda, name, [a]))


@pytest.mark.parametrize("name", protocol.UNARY_FUNCTIONS)
def test_unary_special_values(cuda, name):
    tiny = np.array([1e-7, -3e-6, 0.12, -0.13, 0.3, 9.5, -10.0], np.float32)
    _check(*_run(cuda, name, [np.concatenate([SPECIAL, tiny])]))


@pytest.mark.parametrize("reduce_size,out_size",
                         [(1, 1), (1, 9), (7, 1), (13, 5), (1024, 3), (2500, 2), (3, 1300)])
@pytest.mark.parametrize("name", protocol.REDUCE_FUNCTIONS)
def test_reductions(cuda, name, reduce_size, out_size):
    a = RNG.standard_normal(reduce_size * out_size).astype(np.float32)
    expected = np.empty(out_size, np.float32)
    getattr(numpy_device, name)(a, expected, reduce_size, out_size)
    handle, out = cuda.alloc(a.size), cuda.alloc(out_size)
    cuda.from_numpy(a, handle)
    getattr(cuda, name)(handle, out, reduce_size, out_size)
    got = cuda.to_numpy(out, (out_size,), (1,), 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4 * np.sqrt(reduce_size))


def test_reductions_nan_inf_and_empty(cuda):
    a = np.array([1.0, np.nan, 3.0, -np.inf, -np.inf, -np.inf, 2.0, np.inf, 5.0], np.float32)
    handle, out = cuda.alloc(9), cuda.alloc(3)
    cuda.from_numpy(a, handle)
    cuda.reduce_max(handle, out, 3, 3)
    np.testing.assert_array_equal(cuda.to_numpy(out, (3,), (1,), 0), [np.nan, -np.inf, np.inf])
    cuda.reduce_sum(handle, out, 3, 3)
    np.testing.assert_array_equal(cuda.to_numpy(out, (3,), (1,), 0), [np.nan, -np.inf, np.inf])
    cuda.reduce_sum(handle, out, 0, 3)
    np.testing.assert_array_equal(cuda.to_numpy(out, (3,), (1,), 0), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="empty axis"):
        cuda.reduce_max(handle, out, 0, 3)
    with pytest.raises(ValueError, match="holds 9 elements, 12 needed"):
        cuda.reduce_sum(handle, out, 4, 3)


def test_bad_sizes_raise(cuda):
    a, out = cuda.alloc(4), cuda.alloc(4)
    with pytest.raises(ValueError, match="holds 4 elements, 5 needed"):
        cuda.ewise_add(a, a, out, 5)
    with pytest.raises(TypeError, match="torch tensor"):
        cuda.ewise_exp(np.zeros(4, np.float32), out, 4)


DROPOUT_SEEDS = (0, 1, 2**31 - 1, 2**31, 2**32 - 1)


def _run_dropout(cuda, a, threshold, scale, seed, alias=False):
    """ewise_dropout on both devices (out = a when `alias`); return (ours, numpy's)."""
    expected = np.empty(a.size, np.float32)
    numpy_device.ewise_dropout(a, expected, a.size, threshold, scale, seed)
    handle = cuda.alloc(a.size)
    cuda.from_numpy(a, handle)
    out = handle if alias else cuda.alloc(a.size)
    cuda.ewise_dropout(handle, out, a.size, threshold, scale, seed)
    return cuda.to_numpy(out, (a.size,), (1,), 0), expected


@pytest.mark.parametrize("seed", DROPOUT_SEEDS)
@pytest.mark.parametrize("size", SIZES + (3000,))
@pytest.mark.parametrize("alias", [False, True], ids=["new_out", "out_is_a"])
def test_dropout_draws_the_spec_mask(cuda, seed, size, alias):
    a = RNG.standard_normal(size).astype(np.float32)
    got, expected = _run_dropout(cuda, a, round(0.4 * 2**24), 1.0 / 0.6, seed, alias)
    np.testing.assert_array_equal(got, expected)
    if size > 100:  # the mask is neither empty nor full, so a wrong hash cannot hide
        assert 0 < (got == 0).sum() < size


@pytest.mark.parametrize("threshold", [0, 1, 2**23, 2**24 - 1, 2**24])
def test_dropout_thresholds_and_special_values(cuda, threshold):
    # A dropped NaN or inf gives exactly 0 (a select, not a product); a kept one is scaled.
    a = np.tile(SPECIAL, 70)
    got, expected = _run_dropout(cuda, a, threshold, 3.0, 2**32 - 7)
    np.testing.assert_array_equal(got, expected)
    if threshold == 0:
        np.testing.assert_array_equal(got, a * np.float32(3.0))
    if threshold == 2**24:
        np.testing.assert_array_equal(got, np.zeros_like(a))


@triton.jit(do_not_specialize=["seed"])
def _hash_probe_kernel(index, out, seed, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    i = tl.load(index + offs, mask=mask, other=0)
    h = ewise._dropout_hash(seed, i)
    tl.store(out + offs, h.to(tl.int32, bitcast=True), mask=mask)


def _hash_probe(cuda, seed, indices):
    """ewise's jit hash of int64 `indices`, the seed passed as the launcher passes it."""
    import torch

    device = cuda.alloc(1).device
    index = torch.tensor(indices, dtype=torch.int64, device=device)
    out = torch.zeros(len(indices), dtype=torch.int32, device=device)
    _hash_probe_kernel[(1,)](index, out, ewise.seed_bits(seed), len(indices), BLOCK=16)
    return out.cpu().numpy().view(np.uint32)


@pytest.mark.parametrize("seed", DROPOUT_SEEDS)
def test_dropout_hash_at_32_bit_extremes(cuda, seed):
    # Indices a real launch reaches only past 2^31 elements (8 GiB), down to the last of 2^32.
    indices = [0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 3 * 2**30, 2**32 - 2, 2**32 - 1]
    want = numpy_device.dropout_hash(seed, np.array(indices, np.uint64))
    np.testing.assert_array_equal(_hash_probe(cuda, seed, indices), want.astype(np.uint32))


def test_dropout_seed_bits():
    assert [ewise.seed_bits(s) for s in DROPOUT_SEEDS] == [0, 1, 2**31 - 1, -(2**31), -1]


def test_dropout_empty_writes_nothing(cuda):
    out = cuda.alloc(3)
    cuda.from_numpy(np.full(3, 7.0, np.float32), out)
    cuda.ewise_dropout(cuda.alloc(0), out, 0, 5, 2.0, 9)
    np.testing.assert_array_equal(cuda.to_numpy(out, (3,), (1,), 0), [7.0] * 3)


@pytest.mark.parametrize("size,threshold,seed,error,message", [
    (-1, 0, 0, ValueError, "a: negative size -1"),
    (2**32 + 1, 0, 0, ValueError, r"size 4294967297 exceeds 2\^32"),
    (4, -1, 0, ValueError, r"threshold -1 outside \[0, 2\^24\]"),
    (4, 2**24 + 1, 0, ValueError, r"threshold 16777217 outside \[0, 2\^24\]"),
    (4, 0, -1, ValueError, r"seed -1 outside \[0, 2\^32\)"),
    (4, 0, 2**32, ValueError, r"seed 4294967296 outside \[0, 2\^32\)"),
    (4, 0.5, 0, TypeError, "'float' object cannot be interpreted as an integer"),
    (5, 0, 0, ValueError, "a: buffer holds 4 elements, 5 needed"),
])
def test_dropout_bad_arguments_raise(cuda, size, threshold, seed, error, message):
    a = cuda.alloc(4)
    with pytest.raises(error, match=message):
        cuda.ewise_dropout(a, a, size, threshold, 2.0, seed)
