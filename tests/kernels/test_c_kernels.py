"""C kernels of the cpu device (fill, strided access, elementwise, reductions) against the numpy
device, the protocol's specification; the row, loss and normalization kernels are in
test_c_fused_kernels.py. Kernel layer tests; seeded random shapes and strides (ranks 0..8, sizes 1
and primes, negative and 0 strides), 1 and 2 threads, and bad input.
"""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from engine.backend.protocol import BINARY_OPS, UNARY_OPS
from kernels_c import KernelError

SIZES = (1, 2, 3, 5, 7)


def buffer(rng, size):
    handle = cpu.alloc(size)
    cpu.from_numpy(rng.standard_normal(size).astype(np.float32), handle)
    return handle


def random_view(rng, rank, overlapping):
    """(shape, strides, offset, buffer length) of a random strided view. Non-overlapping views
    are slices with steps (some negative) of a permuted larger array; overlapping ones use
    arbitrary strides, including 0."""
    small = SIZES if rank <= 4 else SIZES[:3]
    shape = tuple(int(rng.choice(small)) for _ in range(rank))
    if overlapping:
        strides = tuple(int(rng.integers(-9, 10)) for _ in range(rank))
    else:
        steps = [int(rng.choice([1, 2, -1, -3])) for _ in range(rank)]
        base = [n * abs(s) + int(rng.integers(0, 2)) for n, s in zip(shape, steps, strict=True)]
        order = rng.permutation(rank)
        compact = {}
        stride = 1
        for axis in order[::-1]:
            compact[axis] = stride
            stride *= base[axis]
        strides = tuple(compact[d] * steps[d] for d in range(rank))
    low = sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s < 0)
    high = sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s > 0)
    offset = -low + int(rng.integers(0, 4))
    return shape, strides, offset, offset + high + 1 + int(rng.integers(0, 4))


@pytest.mark.parametrize("rank", range(9))
@pytest.mark.parametrize("overlapping", [False, True])
def test_compact_matches_spec(rank, overlapping, threads):
    rng = np.random.default_rng(rank * 10 + overlapping)
    for _ in range(8):
        shape, strides, offset, length = random_view(rng, rank, overlapping)
        a = buffer(rng, length)
        size = int(np.prod(shape))
        out, expected = cpu.alloc(size), np.empty(size, np.float32)
        cpu.compact(a, out, shape, strides, offset)
        spec.compact(np.asarray(a), expected, shape, strides, offset)
        np.testing.assert_array_equal(out[:size], expected)
        np.testing.assert_array_equal(cpu.to_numpy(a, shape, strides, offset),
                                      spec.to_numpy(np.asarray(a), shape, strides, offset))


@pytest.mark.parametrize("rank", range(9))
def test_setitem_matches_spec(rank, threads):
    rng = np.random.default_rng(100 + rank)
    for _ in range(8):
        shape, strides, offset, length = random_view(rng, rank, overlapping=False)
        size = int(np.prod(shape))
        out, expected = buffer(rng, length), None
        expected = np.array(out)
        source = buffer(rng, size)
        cpu.ewise_setitem(source, out, shape, strides, offset)
        spec.ewise_setitem(np.asarray(source), expected, shape, strides, offset)
        np.testing.assert_array_equal(np.asarray(out), expected)
        cpu.scalar_setitem(size, 2.5, out, shape, strides, offset)
        spec.scalar_setitem(size, np.float32(2.5), expected, shape, strides, offset)
        np.testing.assert_array_equal(np.asarray(out), expected)


def test_large_views_use_threads_correctly(threads):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((301, 257)).astype(np.float32)
    a = cpu.alloc(base.size)
    cpu.from_numpy(base, a)
    transposed = cpu.to_numpy(a, (257, 301), (1, 257), 0)
    np.testing.assert_array_equal(transposed, base.T)
    broadcast = cpu.to_numpy(a, (3, 301, 257), (0, 257, 1), 0)
    np.testing.assert_array_equal(broadcast, np.broadcast_to(base, (3, 301, 257)))
    cpu.scalar_setitem(301 * 129, -1.0, a, (301, 129), (257, 2), 0)
    base[:, ::2] = -1.0
    np.testing.assert_array_equal(np.asarray(a), base.reshape(-1))


@pytest.mark.parametrize("size", [0, 1, 17, 100_003])
def test_fill(size, threads):
    out = cpu.alloc(size + 3)
    cpu.fill(out, 0.0, size + 3)
    cpu.fill(out, 1.5, size)
    np.testing.assert_array_equal(np.asarray(out)[:size], np.full(size, 1.5, np.float32))
    np.testing.assert_array_equal(np.asarray(out)[size:], np.zeros(3, np.float32))


def operands(size, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(size).astype(np.float32) * 3
    b = rng.standard_normal(size).astype(np.float32) * 3
    if size > 4:  # NaN, ties and zeros exercise comparisons, maximum and division
        a[0], b[1], b[2], a[3], b[3] = np.nan, np.nan, 0.0, 1.25, 1.25
    return a, b


def on_cpu(host):
    handle = cpu.alloc(host.size)
    cpu.from_numpy(host, handle)
    return handle


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("size", [0, 1, 5, 33, 70_001])
@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary_ops(op, size, threads):
    a, b = operands(size, 1)
    out, expected = cpu.alloc(size), np.empty(size, np.float32)
    with np.errstate(all="ignore"):
        getattr(cpu, f"ewise_{op}")(on_cpu(a), on_cpu(b), out, size)
        getattr(spec, f"ewise_{op}")(a, b, expected, size)
    assert_close(np.asarray(out)[:size], expected)


@pytest.mark.parametrize("value", [0.0, -1.5, 2.0, 0.5, 3.0])
@pytest.mark.parametrize("op", BINARY_OPS + ("power", "rdiv"))
def test_scalar_ops(op, value, threads):
    size = 70_001
    a, _ = operands(size, 2)
    out, expected = cpu.alloc(size), np.empty(size, np.float32)
    with np.errstate(all="ignore"):
        getattr(cpu, f"scalar_{op}")(on_cpu(a), value, out, size)
        getattr(spec, f"scalar_{op}")(a, value, expected, size)
    assert_close(np.asarray(out)[:size], expected)


@pytest.mark.parametrize("size", [0, 1, 33, 70_001])
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_ops(op, size, threads):
    a, _ = operands(size, 3)
    if size > 10:
        a[4:8] = [100.0, -100.0, 0.0, -0.0]  # overflow of exp, saturation of tanh and sigmoid
    out, expected = cpu.alloc(size), np.empty(size, np.float32)
    with np.errstate(all="ignore"):
        getattr(cpu, f"ewise_{op}")(on_cpu(a), out, size)
        getattr(spec, f"ewise_{op}")(a, expected, size)
    assert_close(np.asarray(out)[:size], expected)


def test_ops_write_in_place():
    a, b = operands(64, 4)
    handle = on_cpu(a)
    cpu.ewise_mul(handle, on_cpu(b), handle, 64)
    assert_close(np.asarray(handle), a * b)


@pytest.mark.parametrize("out_size,reduce_size",
                         [(1, 1), (3, 0), (7, 13), (1, 100_003), (2, 70_001), (1000, 3), (0, 5)])
def test_reductions(out_size, reduce_size, threads):
    rng = np.random.default_rng(out_size + reduce_size)
    a = rng.standard_normal(out_size * reduce_size).astype(np.float32)
    handle = on_cpu(a)
    out, expected = cpu.alloc(out_size), np.empty(out_size, np.float32)
    cpu.reduce_sum(handle, out, reduce_size, out_size)
    spec.reduce_sum(a, expected, reduce_size, out_size)
    np.testing.assert_allclose(np.asarray(out)[:out_size], expected, rtol=1e-5,
                               atol=1e-5 * np.sqrt(max(reduce_size, 1)))
    if reduce_size:
        cpu.reduce_max(handle, out, reduce_size, out_size)
        spec.reduce_max(a, expected, reduce_size, out_size)
        np.testing.assert_array_equal(np.asarray(out)[:out_size], expected)


def test_reduce_max_propagates_nan():
    a = np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0], np.float32)
    out = cpu.alloc(2)
    cpu.reduce_max(on_cpu(a), out, 3, 2)
    assert np.isnan(out[0]) and out[1] == 6.0


def test_threads_setting():
    before = cpu.get_num_threads()
    try:
        cpu.set_num_threads(1)
        assert cpu.get_num_threads() == 1
        cpu.set_num_threads(3)
        assert cpu.get_num_threads() == 3
        with pytest.raises(ValueError, match="at least 1 thread"):
            cpu.set_num_threads(0)
    finally:
        cpu.set_num_threads(before)


def test_bad_input_raises():
    a = cpu.alloc(10)
    with pytest.raises(KernelError, match="rank"):
        cpu.compact(a, cpu.alloc(1), (1,) * 9, (0,) * 9, 0)
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.compact(a, cpu.alloc(20), (4, 5), (5, 1), 0)
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.compact(a, cpu.alloc(3), (3,), (-1,), 1)
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.ewise_setitem(cpu.alloc(10), a, (2, 6), (6, 1), 0)
    with pytest.raises(KernelError, match="sizes"):
        cpu.scalar_setitem(5, 1.0, a, (2, 2), (2, 1), 0)
    with pytest.raises(ValueError, match="exceeds a buffer"):
        cpu.ewise_add(a, cpu.alloc(5), a, 10)
    with pytest.raises(ValueError, match="exceed buffers"):
        cpu.reduce_sum(a, cpu.alloc(1), 11, 1)
    with pytest.raises(TypeError, match="float32"):
        cpu.ewise_neg(np.zeros(10), a, 10)
    with pytest.raises(TypeError, match="float32"):
        cpu.alloc(4, "float64")
    with pytest.raises(TypeError, match="numpy float32 arrays"):
        cpu.fill([0.0] * 4, 1.0, 4)
    with pytest.raises(KernelError, match="negative or inconsistent"):
        cpu.reduce_max(a, cpu.alloc(1), 0, 1)
    with pytest.raises(KernelError, match=r"outside its buffer \(batch=1, m=5, k=5, n=5"):
        cpu.matmul(a, a, cpu.alloc(25), 1, 5, 5, 5, 0, 0, 5, 1, 0, 0, 5, 1)
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.matmul(cpu.alloc(25), cpu.alloc(25), a, 1, 5, 5, 5, 0, 0, 5, 1, 0, 0, 5, 1)


def test_foreign_numpy_handles_are_accepted():
    host = np.arange(6, dtype=np.float32)
    out = np.empty(6, np.float32)
    cpu.scalar_mul(host, 2.0, out, 6)
    np.testing.assert_array_equal(out, host * 2)
