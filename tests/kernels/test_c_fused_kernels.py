"""C kernels of the cpu device that each replace several launches (a repeated row, softmax
cross-entropy, dropout with its mask hashed in place): exact agreement across 1 and 2 threads
and in place, agreement with the numpy spec, and bad sizes (normalization:
test_c_norm_kernels.py).
Kernel layer tests.
"""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from kernels_c import KernelError, load
from tests.kernels.test_c_kernels import on_cpu


def xent_operands(rows, classes, seed):
    rng = np.random.default_rng(seed)
    z = (4 * rng.standard_normal(rows * classes)).astype(np.float32)
    labels = rng.integers(0, classes, rows).astype(np.float32)
    labels[::7] = np.nan  # invalid labels in every thread's share of rows
    return z, labels, rng.standard_normal(rows).astype(np.float32)


def assert_exact_for_1_and_2_threads(run, a, expected):
    """`run(source, out)` (one C kernel over a.size elements of `a`'s copy `source`) equals
    `expected` bit for bit with 1 and 2 threads, into a fresh buffer (nothing past the end
    written) and in place (out aliasing source)."""
    size = a.size
    before = cpu.get_num_threads()
    try:
        for threads in (1, 2):
            cpu.set_num_threads(threads)
            out = cpu.alloc(size + 3)
            cpu.fill(out, 7.0, size + 3)
            run(on_cpu(a), out)
            np.testing.assert_array_equal(np.asarray(out)[:size], expected, err_msg=f"{threads}")
            np.testing.assert_array_equal(np.asarray(out)[size:], [7.0] * 3)
            in_place = on_cpu(a)
            run(in_place, in_place)
            np.testing.assert_array_equal(np.asarray(in_place), expected, err_msg=f"{threads}")
    finally:
        cpu.set_num_threads(before)


# (rows, period): period 1 over the threading grain; short rows repeated into a tile, with the
# tile capped by size (7 x 10) or ending in a partial block (100 x 10, 10_007 x 7); the longest
# tiled row and the shortest untiled one; long rows.
ROW_SHAPES = [(1, 1), (70_001, 1), (7, 10), (100, 10), (10_007, 7), (3, 63), (1100, 64),
              (90, 1000)]


@pytest.mark.parametrize("rows,period", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("op", ("add", "mul"))
def test_row_ops_are_exact_for_1_and_2_threads_and_in_place(op, rows, period):
    """One rounding per element, so 1 and 2 threads, and out aliasing a, all equal the spec bit
    for bit; nothing past size is written."""
    size, name = rows * period, f"ewise_{op}_row"
    rng = np.random.default_rng(size + period)
    a = rng.standard_normal(size).astype(np.float32)
    row = rng.standard_normal(period).astype(np.float32)
    expected = np.empty(size, np.float32)
    getattr(spec, name)(a, row, expected, size, period)
    kernel = getattr(cpu, name)
    assert_exact_for_1_and_2_threads(
        lambda source, out: kernel(source, on_cpu(row), out, size, period), a, expected)


def test_row_ops_bad_sizes_raise():
    a, row = cpu.alloc(12), cpu.alloc(4)
    with pytest.raises(ValueError, match="ewise_add_row: size 12 is not a whole number of rows "
                                         "of period 5"):
        cpu.ewise_add_row(a, cpu.alloc(5), a, 12, 5)
    with pytest.raises(ValueError, match="ewise_mul_row: size 12 .* of period 0"):
        cpu.ewise_mul_row(a, row, a, 12, 0)
    with pytest.raises(ValueError, match="ewise_add_row: negative size -4"):
        cpu.ewise_add_row(a, row, a, -4, 4)
    with pytest.raises(ValueError, match="ewise_mul_row: a needs 16 elements for size=16, "
                                         "period=4, its buffer has 12"):
        cpu.ewise_mul_row(a, row, cpu.alloc(16), 16, 4)
    with pytest.raises(ValueError, match="ewise_add_row: row needs 4 elements .* has 3"):
        cpu.ewise_add_row(a, cpu.alloc(3), a, 12, 4)
    with pytest.raises(ValueError, match="ewise_add_row: out needs 12 elements .* has 11"):
        cpu.ewise_add_row(a, row, cpu.alloc(11), 12, 4)
    cpu.ewise_add_row(a, cpu.alloc(1), a, 0, 0)  # size 0 reads and writes nothing


def test_row_kernels_report_status_before_any_access():
    lib, a, row = load(), cpu.alloc(12), cpu.alloc(4)
    for kernel in (lib.nd_ewise_add_row_f32, lib.nd_ewise_mul_row_f32):
        assert kernel(a.address, row.address, a.address, 12, 5) == 2  # ND_ERR_SIZE
        assert kernel(a.address, row.address, a.address, 12, 0) == 2
        assert kernel(a.address, row.address, a.address, -4, 4) == 2
        assert kernel(None, row.address, a.address, 12, 4) == 4  # ND_ERR_NULL
        assert kernel(None, None, None, 0, 0) == 0


@pytest.mark.parametrize("rows,classes", [(3, 5), (5000, 10)])
def test_softmax_xent_is_exactly_logsumexp_minus_the_label_logit(rows, classes, threads):
    """Bit for bit, whatever the thread count: the loss reuses reduce_logsumexp's row value, and
    the gradient computed in place (out aliasing z) equals the one written elsewhere."""
    z, labels, g = xent_operands(rows, classes, rows)
    losses, lse = cpu.alloc(rows), cpu.alloc(rows)
    cpu.softmax_xent(on_cpu(z), on_cpu(labels), losses, classes, rows)
    cpu.reduce_logsumexp(on_cpu(z), lse, classes, rows)
    valid = ~np.isnan(labels)
    picked = z.reshape(rows, classes)[np.arange(rows)[valid], labels[valid].astype(np.int64)]
    np.testing.assert_array_equal(np.asarray(losses)[valid], np.asarray(lse)[valid] - picked)
    assert np.isnan(np.asarray(losses)[~valid]).all()
    grad, in_place = cpu.alloc(rows * classes), on_cpu(z)
    cpu.softmax_xent_grad(on_cpu(z), on_cpu(labels), on_cpu(g), grad, classes, rows)
    cpu.softmax_xent_grad(in_place, on_cpu(labels), on_cpu(g), in_place, classes, rows)
    np.testing.assert_array_equal(np.asarray(in_place), np.asarray(grad))
    assert np.isnan(np.asarray(grad).reshape(rows, classes)[~valid]).all()


def test_softmax_xent_bad_sizes_raise():
    z, labels, out = cpu.alloc(12), cpu.alloc(3), cpu.alloc(12)
    with pytest.raises(ValueError, match="softmax_xent: z needs 15 elements for rows=3, classes=5"):
        cpu.softmax_xent(z, labels, out, 5, 3)
    with pytest.raises(ValueError, match="softmax_xent: labels needs 4 elements"):
        cpu.softmax_xent(z, labels, out, 3, 4)
    with pytest.raises(ValueError, match="softmax_xent_grad: g needs 3 elements"):
        cpu.softmax_xent_grad(z, labels, cpu.alloc(2), out, 4, 3)
    with pytest.raises(ValueError, match="softmax_xent_grad: out needs 12 elements"):
        cpu.softmax_xent_grad(z, labels, labels, cpu.alloc(11), 4, 3)
    with pytest.raises(KernelError, match=r"softmax_xent: negative .*classes=-4, rows=-3"):
        cpu.softmax_xent(z, labels, out, -4, -3)
    with pytest.raises(KernelError, match=r"softmax_xent_grad: negative .*classes=4, rows=-1"):
        cpu.softmax_xent_grad(z, labels, labels, out, 4, -1)


def test_dropout_is_exact_for_1_and_2_threads_and_in_place():
    """Past the threading grain, 1 and 2 threads and out aliasing a all give the spec's values bit
    for bit (NaN and inf dropped to 0 or scaled), and nothing past size is written."""
    size, threshold, scale, seed = 100_003, round(0.25 * 2**24), 1.0 / 0.75, 0xDEADBEEF
    a = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    a[::1000] = np.nan
    a[1::1000] = np.inf
    expected = np.empty(size, np.float32)
    spec.ewise_dropout(a, expected, size, threshold, scale, seed)
    assert_exact_for_1_and_2_threads(
        lambda source, out: cpu.ewise_dropout(source, out, size, threshold, scale, seed), a,
        expected)
    assert 0.24 < (expected == 0).mean() < 0.26


def test_dropout_bad_arguments_raise():
    a = cpu.alloc(8)
    with pytest.raises(ValueError, match="ewise_dropout: size 9 exceeds a buffer of 8 elements"):
        cpu.ewise_dropout(a, a, 9, 0, 1.0, 0)
    with pytest.raises(ValueError, match="ewise_dropout: negative size -1"):
        cpu.ewise_dropout(a, a, -1, 0, 1.0, 0)
    with pytest.raises(ValueError, match=r"ewise_dropout: threshold 16777217 outside \[0, 2\^24\]"):
        cpu.ewise_dropout(a, a, 8, 2**24 + 1, 1.0, 0)
    with pytest.raises(ValueError, match="ewise_dropout: threshold -1 outside"):
        cpu.ewise_dropout(a, a, 8, -1, 1.0, 0)
    # 2^64 + 5 would reach C as seed 5 (ctypes truncates), so it must be refused in Python.
    for seed in (-1, 2**32, 2**64 + 5):
        with pytest.raises(ValueError, match=rf"ewise_dropout: seed {seed} outside \[0, 2\^32\)"):
            cpu.ewise_dropout(a, a, 8, 0, 1.0, seed)
    with pytest.raises(TypeError, match="ewise_dropout: size, threshold and seed must be integers"):
        cpu.ewise_dropout(a, a, 8, 0.5 * 2**24, 1.0, 0)


def test_dropout_kernel_reports_status_before_any_access():
    lib, a = load(), cpu.alloc(8)
    kernel = lib.nd_ewise_dropout_f32
    assert kernel(a.address, a.address, 2**32 + 1, 0, 1.0, 0) == 2  # ND_ERR_SIZE
    assert kernel(a.address, a.address, -1, 0, 1.0, 0) == 2
    assert kernel(a.address, a.address, 8, 2**24 + 1, 1.0, 0) == 2
    assert kernel(a.address, a.address, 8, -1, 1.0, 0) == 2
    assert kernel(a.address, a.address, 8, 0, 1.0, 2**32) == 2
    assert kernel(a.address, a.address, 8, 0, 1.0, -1) == 2
    assert kernel(None, a.address, 8, 0, 1.0, 0) == 4  # ND_ERR_NULL
    assert kernel(a.address, None, 8, 0, 1.0, 0) == 4
    assert kernel(None, None, 0, 2**24, 1.0, 2**32 - 1) == 0
