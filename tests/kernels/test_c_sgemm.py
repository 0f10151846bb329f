"""The sgemm (direct small-matrix path and tiled path) and the protocol's batched matmul against
their naive twins and float64 numpy. Kernel layer tests: primes, 1, tile- and block-crossing
sizes, transposed / odd / negative / broadcast strides, accumulation into a wider C, per-thread
scratch reuse, 1 and 2 threads, and out-of-bounds views.
"""

import ctypes

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from kernels_c import KernelError, load

LIB = load()


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
    if layout == "bcast":  # one row repeated (row stride 0)
        base = rng.uniform(-1, 1, (1, cols))
        return base, 0, 1, 0
    base = rng.uniform(-1, 1, (rows, cols))  # "flip": both axes reversed
    return base, -cols, -1, rows * cols - 1


def view(buffer, rows, cols, rs, cs, offset):
    flat = buffer.reshape(-1)
    index = offset + np.arange(rows)[:, None] * rs + np.arange(cols)[None, :] * cs
    return flat[index]


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


# Shapes of the direct path's edges: n = 100 is a 64-column panel plus a 36-column one ending in a
# masked vector, n = 10 / 16 / 17 / 65 one or two vectors; m crosses the 6-, 8- and 10-row tiles
# and their 8/4/2/1-row edges; k = 1, primes, and k > 256 (split into equal k blocks).
DIRECT_SHAPES = [(100, 100, 100), (100, 10, 100), (100, 100, 10), (7, 16, 1), (13, 17, 3),
                 (15, 65, 11), (29, 48, 257), (6, 64, 2), (3, 100, 530), (19, 1, 7)]


@pytest.mark.parametrize("m,n,k", DIRECT_SHAPES)
@pytest.mark.parametrize("layouts", [("row", "row"), ("col", "row"), ("row", "col"),
                                     ("col", "col"), ("odd", "flip"), ("bcast", "odd"),
                                     ("flip", "bcast")])
def test_direct_path_edges_and_layouts(m, n, k, layouts, threads):
    rng = np.random.default_rng(m * 7919 + n * 31 + k)
    a_view = strided_operand(rng, m, k, layouts[0])
    b_view = strided_operand(rng, k, n, layouts[1])
    a_mat = view(a_view[0].astype(np.float32).astype(np.float64), m, k, *a_view[1:])
    b_mat = view(b_view[0].astype(np.float32).astype(np.float64), k, n, *b_view[1:])
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    tolerance = 1e-5 * np.sqrt(k) + 1e-6
    for accumulate in (0, 1):
        fast = run_sgemm(LIB.nd_sgemm_f32, m, n, k, a_view, b_view, accumulate, threads, c0)
        np.testing.assert_allclose(fast, a_mat @ b_mat + (c0 if accumulate else 0), rtol=1e-5,
                                   atol=tolerance)


@pytest.mark.parametrize("m,k,n", [(100, 100, 100), (100, 784, 100), (100, 100, 10),
                                   (100, 10, 100), (784, 100, 100)])
@pytest.mark.parametrize("layout", ["NN", "TN", "NT", "TT"])
def test_experiment_shapes_with_transposed_views(m, k, n, layout, threads):
    """The MLP's matmuls as the backward pass issues them: A^T @ G and G @ W^T through strides."""
    rng = np.random.default_rng(m + k + n)
    a = rng.uniform(-1, 1, (m, k) if layout[0] == "N" else (k, m)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n) if layout[1] == "N" else (n, k)).astype(np.float32)
    a_rs, a_cs = (k, 1) if layout[0] == "N" else (1, m)
    b_rs, b_cs = (n, 1) if layout[1] == "N" else (1, k)
    c = np.empty((m, n), np.float32)
    assert LIB.nd_sgemm_f32(a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, a_rs, a_cs,
                            b_rs, b_cs, n, 0, threads) == 0
    a_mat = a.astype(np.float64) if layout[0] == "N" else a.T.astype(np.float64)
    b_mat = b.astype(np.float64) if layout[1] == "N" else b.T.astype(np.float64)
    np.testing.assert_allclose(c, a_mat @ b_mat, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("m,n,k", [(13, 100, 37), (100, 10, 100), (5, 33, 300)])
def test_sgemm_into_a_wider_c_leaves_the_margin_alone(m, n, k, threads):
    """C rows ldc > n apart (conv writes column blocks this way): masked edge stores must not
    touch columns n..ldc, and accumulate must add to what is there."""
    rng = np.random.default_rng(m + n + k)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k)).astype(np.float32)  # passed transposed
    ldc = n + 7
    expected = a.astype(np.float64) @ b.T
    for accumulate in (0, 1):
        c = np.full((m, ldc), 3.0, np.float32)
        assert LIB.nd_sgemm_f32(a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k, 1, 1, k,
                                ldc, accumulate, threads) == 0
        np.testing.assert_allclose(c[:, :n], expected + 3.0 * accumulate, rtol=1e-5,
                                   atol=1e-5 * np.sqrt(k))
        np.testing.assert_array_equal(c[:, n:], 3.0)


def test_sgemm_reuses_scratch_across_sizes():
    """The per-thread scratch grows, is reused, and is bypassed for requests over its cap: a
    packed-B call of each size in turn (small, tiled with kept scratch, tiled with a per-call
    buffer, small again) gives the right product every time."""
    rng = np.random.default_rng(11)
    sizes = [(20, 30, 40), (450, 400, 390), (3100, 40, 600), (20, 30, 40), (64, 300, 90),
             (2, 70, 16000)]  # the last: a transposed B too big to pack whole goes to tiling
    for m, n, k in sizes:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, k)).astype(np.float32)  # transposed: the packed path
        c = np.empty((m, n), np.float32)
        assert LIB.nd_sgemm_f32(a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k, 1, 1,
                                k, n, 0, 1) == 0
        np.testing.assert_allclose(c, a.astype(np.float64) @ b.T, rtol=1e-5,
                                   atol=1e-5 * np.sqrt(k))


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


@pytest.mark.parametrize("batch,m,k,n", [(4, 10, 12, 9),      # threads split the batch
                                         (1, 400, 3, 400),    # threads split the gate's pass
                                         (2, 97, 101, 33)])   # the tiled path, item by item
def test_gated_matmul_is_the_product_then_relu_gradient(batch, m, k, n, threads):
    rng = np.random.default_rng(m + k)
    a = to_device(rng.uniform(-1, 1, batch * m * k))
    b = to_device(rng.uniform(-1, 1, batch * k * n))
    size = batch * m * n
    gate_host = rng.standard_normal(size).astype(np.float32)
    gate_host[::7] = 0.0
    gate_host[::11] = np.nan
    gate = to_device(gate_host)
    args = (batch, m, k, n, 0, m * k, k, 1, 0, k * n, n, 1)
    plain = cpu.alloc(size)
    cpu.matmul(a, b, plain, *args)
    gated = to_device(np.full(size + 5, 9.0, np.float32))  # a tail past the product
    cpu.matmul(a, b, gated, *args, gate=gate)
    want = np.where(gate_host <= 0, np.float32(0), np.asarray(plain)[:size])
    np.testing.assert_array_equal(np.asarray(gated)[:size], want)
    np.testing.assert_array_equal(np.asarray(gated)[size:], 9.0)


@pytest.mark.parametrize("short", ["gate", "bias"])
def test_matmul_epilogue_status_for_a_short_buffer(short):
    a, b, out, gate, bias = (cpu.alloc(n) for n in (6, 6, 4, 4, 2))
    # sizes 15-20: the gate's length, relu, the bias's length, dropout, its threshold and seed
    sizes = np.array([6, 6, 4, 1, 2, 3, 2, 0, 0, 3, 1, 0, 0, 2, 1, 4, 1, 2, 0, 0, 0],
                     dtype=np.int64)
    sizes[15 if short == "gate" else 17] -= 1
    pointers = (a.ctypes.data, b.ctypes.data, out.ctypes.data, gate.ctypes.data,
                bias.ctypes.data, ctypes.c_float(1.0), sizes.ctypes.data)
    assert LIB.nd_matmul_sizes_f32(*pointers) == 3  # ND_ERR_BOUNDS
    sizes[15 if short == "gate" else 17] += 1
    assert LIB.nd_matmul_sizes_f32(*pointers) == 0


@pytest.mark.parametrize("batch,m,k,n", [(4, 10, 12, 9), (1, 400, 3, 400)])
def test_matmul_bias_and_relu_are_the_row_add_then_relu(batch, m, k, n, threads):
    rng = np.random.default_rng(m)
    a = to_device(rng.uniform(-1, 1, batch * m * k))
    b = to_device(rng.uniform(-1, 1, batch * k * n))
    bias = to_device(rng.uniform(-1, 1, n))
    size = batch * m * n
    args = (batch, m, k, n, 0, m * k, k, 1, 0, k * n, n, 1)
    plain, fused = cpu.alloc(size), cpu.alloc(size)
    cpu.matmul(a, b, plain, *args)
    cpu.matmul(a, b, fused, *args, bias=bias, relu=True)
    separate = cpu.alloc(size)
    cpu.ewise_add_row(plain, bias, separate, size, n)
    cpu.ewise_relu(separate, separate, size)
    np.testing.assert_array_equal(np.asarray(fused), np.asarray(separate))
