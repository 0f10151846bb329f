"""Kernel layer tests: the C average pooling pair (kernels_c/pool_avg.c via cpu_device_pool.py)
against the numpy spec bit for bit (disjoint and overlapping windows, padding counted as zeros,
uncovered rows and columns, NaN and inf, empty sizes, 1 and 2 threads) and its errors."""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from kernels_c import load
from tests.kernels.test_c_kernels import on_cpu
from tests.kernels.test_c_pool import (
    BAD_SIZE_IDS,
    BAD_SIZES,
    CASES,
    EXTRA,
    GOOD,
    IDS,
    SENTINEL,
    pool_sizes,
    sentinel_buffer,
)


def spec_avg(x, gy, sizes):
    n, h, w, c, _, _, oh, ow = sizes[:8]
    out = np.zeros(n * oh * ow * c, np.float32)
    gx = np.zeros(n * h * w * c, np.float32)
    with np.errstate(invalid="ignore"):  # inf - inf in a window is NaN, as meant
        spec.avg_pool2d_forward(x, out, *sizes)
        spec.avg_pool2d_backward(gy, gx, *sizes)
    return out, gx


def cpu_avg(x, gy, sizes):
    """The cpu device's out and gx, each checked to write nothing past its end."""
    n, h, w, c, _, _, oh, ow = sizes[:8]
    pooled, image = n * oh * ow * c, n * h * w * c
    out, gx = sentinel_buffer(pooled), sentinel_buffer(image)
    cpu.avg_pool2d_forward(on_cpu(x), out, *sizes)
    cpu.avg_pool2d_backward(on_cpu(gy), gx, *sizes)
    for handle, size in ((out, pooled), (gx, image)):
        np.testing.assert_array_equal(np.asarray(handle)[size:], [SENTINEL] * EXTRA)
    return np.asarray(out)[:pooled].copy(), np.asarray(gx)[:image].copy()


def operands(sizes, seed):
    n, h, w, c, _, _, oh, ow = sizes[:8]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n * h * w * c).astype(np.float32),
            rng.standard_normal(n * oh * ow * c).astype(np.float32))


def assert_bits_equal(actual, expected):
    """Bit for bit, NaNs aside (assert_array_equal alone takes -0 for +0): x86 keeps the first of
    two NaN operands, so a NaN's sign follows the order the compiler's vector code sums in (the
    GPU machine's build gave +NaN where this one gives -NaN); IEEE 754 leaves it unspecified."""
    np.testing.assert_array_equal(actual, expected)
    numbers = ~np.isnan(expected)
    sign_and_exponent = ~np.uint32(0x7FFFFF)
    np.testing.assert_array_equal(actual[numbers].view(np.uint32) & sign_and_exponent,
                                  expected[numbers].view(np.uint32) & sign_and_exponent)


def assert_matches_spec(x, gy, sizes):
    for actual, expected in zip(cpu_avg(x, gy, sizes), spec_avg(x, gy, sizes), strict=True):
        assert_bits_equal(actual, expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_spec_bit_for_bit(case, threads):
    sizes = pool_sizes(*case)
    assert_matches_spec(*operands(sizes, seed=sum(case[:4])), sizes)


def test_padding_counts_as_zeros():
    """A 3x3 window at a corner of a padded image covers 4 elements and still divides by 9; the
    backward sends 1/9 of gy to each covered element."""
    x = np.arange(1, 10, dtype=np.float32)  # (1, 3, 3, 1)
    sizes = pool_sizes(1, 3, 3, 1, (3, 3), (2, 2), (1, 1))
    out, gx = cpu_avg(x, np.array([9, 18, 27, 36], np.float32), sizes)
    np.testing.assert_array_equal(out, np.float32([12, 16, 24, 28]) / np.float32(9))
    # Corners get one window each, edge middles two, the centre all four.
    np.testing.assert_array_equal(gx, [1, 3, 2, 4, 10, 6, 3, 7, 4])


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[5]], ids=lambda c: str(c))
def test_nan_inf_and_signed_zeros(case, threads):
    """NaN and inf propagate through sums like the spec's; windows of -0 sum to +0 (the sum starts
    at +0), and -0 cotangents reach gx as +0."""
    sizes = pool_sizes(*case)
    x, gy = operands(sizes, seed=5)
    rng = np.random.default_rng(6)
    for value in (np.nan, np.inf, -np.inf):
        x[rng.choice(x.size, max(1, x.size // 15), replace=False)] = value
    x[: 2 * case[2] * case[3]] = -0.0  # the first two rows of image 0
    gy[::5] = -0.0
    gy[3::17] = np.nan
    gy[4::19] = np.inf
    out, gx = spec_avg(x, gy, sizes)
    assert np.isnan(out).any() and np.isinf(out).any() and np.isnan(gx).any()
    assert_matches_spec(x, gy, sizes)


@pytest.mark.parametrize("case", [(0, 4, 4, 3, (2, 2), (2, 2), (0, 0)),
                                  (2, 4, 4, 0, (3, 3), (1, 1), (1, 1)),
                                  (0, 5, 5, 0, (2, 2), (1, 1), (1, 1))], ids=str)
def test_empty_sizes_write_nothing(case):
    sizes = pool_sizes(*case)
    out, gx = sentinel_buffer(0), sentinel_buffer(0)
    cpu.avg_pool2d_forward(cpu.alloc(0), out, *sizes)
    cpu.avg_pool2d_backward(cpu.alloc(0), gx, *sizes)
    np.testing.assert_array_equal(np.asarray(out), [SENTINEL] * EXTRA)
    np.testing.assert_array_equal(np.asarray(gx), [SENTINEL] * EXTRA)


def test_an_empty_image_pools_to_zero():
    """h = 0 with padding half the kernel: windows covering only padding average to 0."""
    sizes = pool_sizes(2, 0, 3, 2, (2, 2), (1, 1), (1, 1))
    out, gx = cpu_avg(np.zeros(0, np.float32), np.ones(16, np.float32), sizes)
    assert out.size == 16 and gx.size == 0
    np.testing.assert_array_equal(out, spec_avg(np.zeros(0, np.float32), np.ones(16, np.float32),
                                                sizes)[0])
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("case", [(4, 32, 32, 16, (2, 2), (2, 2), (0, 0)),
                                  (4, 32, 32, 16, (3, 3), (2, 2), (1, 1)),
                                  (1, 64, 33, 8, (3, 3), (1, 1), (1, 1))], ids=str)
def test_one_and_two_threads_agree_bit_for_bit_past_the_grain(case):
    sizes = pool_sizes(*case)
    x, gy = operands(sizes, seed=3)
    before = cpu.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            cpu.set_num_threads(count)
            results.append(cpu_avg(x, gy, sizes))
    finally:
        cpu.set_num_threads(before)
    for one, two, expected in zip(*results, spec_avg(x, gy, sizes), strict=True):
        np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))
        assert_bits_equal(one, expected)


@pytest.mark.parametrize("changes, message", BAD_SIZES, ids=BAD_SIZE_IDS)
@pytest.mark.parametrize("name", ["avg_pool2d_forward", "avg_pool2d_backward"])
def test_bad_sizes_raise_the_spec_message(name, changes, message):
    sizes = list(GOOD)
    for index, value in changes.items():
        sizes[index] = value
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        getattr(cpu, name)(cpu.alloc(96), cpu.alloc(96), *sizes)
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        getattr(spec, name)(np.zeros(96, np.float32), np.zeros(96, np.float32), *sizes)


@pytest.mark.parametrize("name, small, label, needed", [
    ("avg_pool2d_forward", 0, "x", 96), ("avg_pool2d_forward", 1, "out", 24),
    ("avg_pool2d_backward", 0, "gy", 24), ("avg_pool2d_backward", 1, "gx", 96),
])
def test_small_buffers_are_named(name, small, label, needed):
    buffers = [cpu.alloc(96), cpu.alloc(24)] if name.endswith("forward") else [cpu.alloc(24),
                                                                               cpu.alloc(96)]
    buffers[small] = cpu.alloc(10)
    with pytest.raises(ValueError, match=rf"{name}: {label} needs {needed} elements.*its buffer "
                                         rf"has 10"):
        getattr(cpu, name)(*buffers, *GOOD)


def test_non_integer_sizes_are_a_type_error():
    with pytest.raises(TypeError, match="avg_pool2d_backward: sizes must be integers"):
        cpu.avg_pool2d_backward(cpu.alloc(24), cpu.alloc(96), *GOOD[:-1], 0.5)


def test_kernel_refuses_bad_sizes_and_null_buffers_before_writing():
    lib = load()
    out = sentinel_buffer(24)
    bad = list(GOOD)
    bad[6] = 3
    x = on_cpu(np.ones(96, np.float32))
    assert lib.nd_avg_pool2d_forward_f32(x.address, out.address, *bad) == 2  # ND_ERR_SIZE
    assert lib.nd_avg_pool2d_backward_f32(x.address, out.address, *bad) == 2
    assert lib.nd_avg_pool2d_forward_f32(None, out.address, *GOOD) == 4  # ND_ERR_NULL
    assert lib.nd_avg_pool2d_backward_f32(None, out.address, *GOOD) == 4
    np.testing.assert_array_equal(np.asarray(out), [SENTINEL] * 27)
