"""C kernels of the cpu device (fill, strided access, elementwise, reductions, softmax
cross-entropy, normalization) against the numpy device, the protocol's specification. Kernel layer
tests; seeded random shapes and strides (ranks 0..8, sizes 1 and primes, negative and 0 strides),
1 and 2 threads, and bad input.
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


def xent_operands(rows, classes, seed):
    rng = np.random.default_rng(seed)
    z = (4 * rng.standard_normal(rows * classes)).astype(np.float32)
    labels = rng.integers(0, classes, rows).astype(np.float32)
    labels[::7] = np.nan  # invalid labels in every thread's share of rows
    return z, labels, rng.standard_normal(rows).astype(np.float32)


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


def norm_both(x, g, sizes, eps=1e-5):
    """(out, stats, gradient) of the cpu device's norm pair on host arrays x and g."""
    groups = sizes[0]
    out, stats, grad = cpu.alloc(x.size), cpu.alloc(2 * groups), cpu.alloc(x.size)
    cpu.fill(out, 0.0, x.size)  # elements outside every group stay 0
    cpu.fill(grad, 0.0, x.size)
    cpu.norm_forward(on_cpu(x), out, stats, *sizes, eps)
    cpu.norm_backward(on_cpu(g), out, stats, grad, *sizes, eps)
    return np.array(out), np.array(stats[: 2 * groups]), np.array(grad)


# (groups, members, group_stride, member_stride) over 4000 * 70 elements: per row, per column (two
# stack blocks of columns, one partial), then strides outside both fast paths.
NORM_LAYOUTS = [(4000, 70, 70, 1), (300, 900, 1, 300), (70, 4000, 1, 70), (35, 4000, 2, 70),
                (10, 90, 5, 2), (6, 50, 0, 3), (1, 1000, 9, 3)]


@pytest.mark.parametrize("sizes", NORM_LAYOUTS, ids=str)
def test_norm_matches_spec_for_any_strides_and_threads(sizes):
    """Any strides (overlapping groups included) agree with the spec, and 1 and 2 threads agree
    bit for bit: each group's sums never depend on how groups are shared out."""
    rng = np.random.default_rng(sum(sizes))
    x = (3 * rng.standard_normal(4000 * 70) + 2).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    expected = [np.array(x), np.empty(2 * sizes[0], np.float32), np.array(x)]
    spec.norm_forward(x, expected[0], expected[1], *sizes, 1e-5)
    spec.norm_backward(g, expected[0], expected[1], expected[2], *sizes, 1e-5)
    before = cpu.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cpu.set_num_threads(threads)
            results.append(norm_both(x, g, sizes))
    finally:
        cpu.set_num_threads(before)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)
    # Elements outside every group are neither spec's nor ours to write: compare the groups.
    groups, members, group_stride, member_stride = sizes
    touched = np.unique((np.arange(groups)[:, None] * group_stride
                         + np.arange(members) * member_stride).reshape(-1))
    for name, got, want in (("out", results[0][0], expected[0]),
                            ("gradient", results[0][2], expected[2])):
        np.testing.assert_allclose(got[touched], want[touched], rtol=1e-4, atol=1e-4,
                                   err_msg=name)
    np.testing.assert_allclose(results[0][1], expected[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_norm_in_place_equals_out_of_place(per_row, threads):
    rows, cols = 500, 96
    sizes = (rows, cols, cols, 1) if per_row else (cols, rows, 1, cols)
    rng = np.random.default_rng(per_row)
    x = rng.standard_normal(rows * cols).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    out, stats, grad = norm_both(x, g, sizes)
    in_place, in_place_stats, in_place_grad = on_cpu(x), cpu.alloc(2 * sizes[0]), on_cpu(g)
    cpu.norm_forward(in_place, in_place, in_place_stats, *sizes, 1e-5)
    cpu.norm_backward(in_place_grad, in_place, in_place_stats, in_place_grad, *sizes, 1e-5)
    np.testing.assert_array_equal(np.asarray(in_place), out)
    np.testing.assert_array_equal(np.asarray(in_place_stats), stats)
    np.testing.assert_array_equal(np.asarray(in_place_grad), grad)


def test_norm_bad_sizes_raise():
    x, stats = cpu.alloc(12), cpu.alloc(8)
    with pytest.raises(ValueError, match=r"norm_forward: x needs 15 elements for groups=3, "
                                         r"members=5, strides=\(5, 1\), its buffer has 12"):
        cpu.norm_forward(x, cpu.alloc(15), stats, 3, 5, 5, 1, 1e-5)
    with pytest.raises(ValueError, match="norm_forward: out needs 12 elements"):
        cpu.norm_forward(x, cpu.alloc(11), stats, 4, 3, 1, 4, 1e-5)
    with pytest.raises(ValueError, match="norm_forward: stats needs 10 elements"):
        cpu.norm_forward(x, x, stats, 5, 2, 2, 1, 1e-5)
    with pytest.raises(ValueError, match="norm_backward: xhat needs 12 elements"):
        cpu.norm_backward(x, cpu.alloc(6), stats, x, 4, 3, 3, 1, 1e-5)
    with pytest.raises(ValueError, match="norm_backward: stats needs 10 elements"):
        cpu.norm_backward(x, x, stats, x, 5, 0, 1, 1, 1e-5)
    with pytest.raises(KernelError, match=r"norm_forward: negative .*groups=-1, members=3"):
        cpu.norm_forward(x, x, stats, -1, 3, 3, 1, 1e-5)
    with pytest.raises(KernelError, match=r"norm_backward: negative .*member_stride=-1"):
        cpu.norm_backward(x, x, stats, x, 2, 3, 6, -1, 1e-5)
