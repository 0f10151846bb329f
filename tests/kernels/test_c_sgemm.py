"""The tiled sgemm and the protocol's batched matmul against their naive twins and float64 numpy.
Kernel layer tests: primes, 1, block-crossing sizes, transposed / odd / negative / broadcast
strides, accumulation, 1 and 2 threads, and out-of-bounds views.
"""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from kernels_c import KernelError, load

LIB = load()


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = cpu.get_num_threads()
    cpu.set_num_threads(request.param)
    yield request.param
    cpu.set_num_threads(before)


def strided_operand(rng, rows, cols, layout):
    """(buffer, row stride, col stride, offset) of a rows x cols view laid out as `layout`."""
    if layout == "row":
        base = rng.uniform(-1, 1, (rows, cols))
        return base, cols, 1, 0
    if layout == "col":  # a transposed view
        base = rng.uniform(-1, 1, (cols, rows))
        return base, 1, rows, 0
    if layout == "odd":  # row stride wider than the row, every other column
        base = rng.uniform(-1, 1, (rows, 2 * cols + 3))
        return base, 2 * cols + 3, 2, 1
    base = rng.uniform(-1, 1, (rows, cols))  # "flip": both axes reversed
    return base, -cols, -1, rows * cols - 1


def view(buffer, rows, cols, rs, cs, offset):
    flat = buffer.reshape(-1)
    return np.array([[flat[offset + i * rs + j * cs] for j in range(cols)] for i in range(rows)])


def run_sgemm(kernel, m, n, k, a_view, b_view, accumulate, nthreads, c_init):
    a_buf, a_rs, a_cs, a_off = a_view
    b_buf, b_rs, b_cs, b_off = b_view
    a32 = np.ascontiguousarray(a_buf, np.float32).reshape(-1)
    b32 = np.ascontiguousarray(b_buf, np.float32).reshape(-1)
    c = c_init.copy()
    status = kernel(a32.ctypes.data + 4 * a_off, b32.ctypes.data + 4 * b_off, c.ctypes.data,
                    m, n, k, a_rs, a_cs, b_rs, b_cs, n, accumulate, nthreads)
    assert status == 0
    return c


SHAPES = [(1, 1, 1), (1, 7, 1), (13, 1, 17), (2, 3, 5), (14, 32, 8), (15, 33, 29),
          (29, 31, 97), (101, 37, 13), (28, 64, 390), (3, 530, 5)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("layouts", [("row", "row"), ("col", "col"), ("odd", "flip"),
                                     ("flip", "odd")])
def test_sgemm_matches_naive_and_numpy(m, n, k, layouts, threads):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a_view = strided_operand(rng, m, k, layouts[0])
    b_view = strided_operand(rng, k, n, layouts[1])
    a_mat = view(a_view[0].astype(np.float32).astype(np.float64), m, k, *a_view[1:])
    b_mat = view(b_view[0].astype(np.float32).astype(np.float64), k, n, *b_view[1:])
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    for accumulate in (0, 1):
        expected = a_mat @ b_mat + (c0 if accumulate else 0)
        fast = run_sgemm(LIB.nd_sgemm_f32, m, n, k, a_view, b_view, accumulate,
                         threads, c0)
        naive = run_sgemm(LIB.nd_sgemm_naive_f32, m, n, k, a_view, b_view,
                          accumulate, threads, c0)
        tolerance = 1e-5 * np.sqrt(k) + 1e-6
        np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=tolerance)
        np.testing.assert_allclose(naive, expected, rtol=1e-5, atol=tolerance)
        np.testing.assert_allclose(fast, naive, rtol=1e-5, atol=tolerance)


def test_sgemm_across_cache_blocks(threads):
    """Sizes crossing MC (3080 rows), KC (384) and NC (512 columns) at once."""
    rng = np.random.default_rng(5)
    m, n, k = 3085, 530, 390
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    assert LIB.nd_sgemm_f32(a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k, 1, n, 1, n,
                            0, threads) == 0
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)


def test_sgemm_with_empty_inner_dimension():
    c = np.full((3, 4), 7.0, np.float32)
    a = np.zeros(1, np.float32)
    assert LIB.nd_sgemm_f32(a.ctypes.data, a.ctypes.data, c.ctypes.data, 3, 4, 0, 0, 1, 4, 1, 4,
                            1, 1) == 0
    np.testing.assert_array_equal(c, 7.0)
    assert LIB.nd_sgemm_f32(a.ctypes.data, a.ctypes.data, c.ctypes.data, 3, 4, 0, 0, 1, 4, 1, 4,
                            0, 1) == 0
    np.testing.assert_array_equal(c, 0.0)


def to_device(host):
    handle = cpu.alloc(host.size)
    cpu.from_numpy(np.ascontiguousarray(host, np.float32), handle)
    return handle


@pytest.mark.parametrize("batch,m,k,n", [(1, 1, 1, 1), (3, 5, 7, 11), (8, 10, 10, 10),
                                         (2, 97, 101, 33), (5, 1, 64, 1)])
def test_batched_matmul_with_transposed_and_broadcast_operands(batch, m, k, n, threads):
    rng = np.random.default_rng(batch + m + k + n)
    a = rng.uniform(-1, 1, (batch, k, m)).astype(np.float32)  # passed transposed
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)  # broadcast over the batch
    out = cpu.alloc(batch * m * n)
    naive = np.empty(batch * m * n, np.float32)
    args = (batch, m, k, n, 0, k * m, 1, m, 0, 0, n, 1)
    cpu.matmul(to_device(a), to_device(b), out, *args)
    assert LIB.nd_matmul_naive_f32(a.ctypes.data, b.ctypes.data, naive.ctypes.data, a.size,
                                   b.size, naive.size, *args) == 0
    expected = np.swapaxes(a, 1, 2).astype(np.float64) @ b
    np.testing.assert_allclose(np.asarray(out).reshape(batch, m, n), expected, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(naive.reshape(batch, m, n), expected, rtol=1e-5, atol=1e-5)


def test_matmul_rejects_views_outside_buffers():
    a, b, out = cpu.alloc(6), cpu.alloc(6), cpu.alloc(4)
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.matmul(a, b, out, 1, 2, 3, 2, 0, 0, 3, 1, 0, 0, 3, 1)  # b rows 3 apart: needs 7
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.matmul(a, b, out, 2, 2, 3, 2, 0, 6, 3, 1, 0, 0, 2, 1)  # second batch of a
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.matmul(a, b, cpu.alloc(3), 1, 2, 3, 2, 0, 0, 3, 1, 0, 0, 2, 1)  # out too small
    with pytest.raises(KernelError, match="outside its buffer"):
        cpu.matmul(a, b, out, 1, 2, 3, 2, 0, 0, -3, 1, 0, 0, 2, 1)  # negative row stride at 0
