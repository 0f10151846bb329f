"""C kernels of the cpu device that each replace several launches (a repeated row, softmax
cross-entropy, normalization over one axis plain or affine, dropout with its mask hashed in
place): exact agreement across 1 and 2 threads and in place, agreement with the numpy spec for
any strides, and bad sizes.
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


def affine_operands(sizes, per_member, seed):
    """x, g, weight and bias over the elements `sizes` reach (at least one each)."""
    groups, members, group_stride, member_stride = sizes
    reach = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    count = members if per_member else groups
    rng = np.random.default_rng(seed)
    x, g = (rng.standard_normal((2, max(reach, 1))) * [[3.0], [1.0]] + [[2.0], [0.0]])
    weight, bias = rng.standard_normal((2, max(count, 1))) + [[1.0], [0.0]]
    return [a.astype(np.float32) for a in (x, g, weight, bias)]


def norm_affine_both(device, operands, sizes, per_member, host=np.array):
    """(out, stats, input gradient, weight_grad, bias_grad) of `device`'s affine norm pair; the
    gradient buffers start at 7 so that unwritten parameter sums show."""
    x, g, weight, bias = (host(a) for a in operands)
    count = weight.size
    out, grad = host(np.zeros_like(operands[0])), host(np.zeros_like(operands[0]))
    stats = host(np.zeros(max(2 * sizes[0], 1), operands[0].dtype))
    weight_grad, bias_grad = (host(np.full(count, 7, np.float32)) for _ in range(2))
    device.norm_affine_forward(x, weight, bias, out, stats, *sizes, 1e-5, per_member)
    device.norm_affine_backward(g, x, stats, weight, grad, weight_grad, bias_grad, *sizes, 1e-5,
                                per_member)
    return [np.array(a, np.float64) for a in (out, stats[: 2 * sizes[0]], grad, weight_grad,
                                              bias_grad)]


def check_affine_against_spec(sizes, per_member, seed):
    """1 and 2 threads agree bit for bit, and both agree with the float64 spec within float32
    rounding (scaled by each result's magnitude: few members cancel heavily)."""
    operands = affine_operands(sizes, per_member, seed)
    expected = norm_affine_both(spec, [a.astype(np.float64) for a in operands], sizes,
                                per_member)
    before = cpu.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cpu.set_num_threads(threads)
            results.append(norm_affine_both(cpu, operands, sizes, per_member, host=on_cpu))
    finally:
        cpu.set_num_threads(before)
    # The input gradient is a difference of terms h / sqrt(var + eps), h = weight * g: its
    # rounding scales with them (a group of one member gives 0 from terms up to 316 |h|).
    groups, members, group_stride, member_stride = sizes
    g, weight = (a.astype(np.float64) for a in operands[1:3])
    grad = np.lib.stride_tricks.as_strided(g, (groups, members),
                                           (8 * group_stride, 8 * member_stride))
    parameter = weight[:members][None, :] if per_member else weight[:groups][:, None]
    terms = np.abs(grad * parameter) / np.sqrt(expected[1][groups:, None] + 1e-5)
    names = ("out", "stats", "gradient", "weight_grad", "bias_grad")
    for name, one, two, want in zip(names, *results, expected, strict=True):
        np.testing.assert_array_equal(one, two, err_msg=name)
        scale = max(np.abs(np.nan_to_num(want)).max(initial=0.0), 1.0)
        if name == "gradient":
            scale = max(scale, terms.max(initial=0.0))
        np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True,
                                   err_msg=name)


# (rows, cols): one element, one group or one member, nothing, odd sizes, past the thread grain.
AFFINE_SHAPES = [(1, 1), (1, 6), (6, 1), (0, 5), (5, 0), (3, 1000), (1000, 3), (257, 129)]


@pytest.mark.parametrize("per_member", [0, 1])
@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
@pytest.mark.parametrize("shape", AFFINE_SHAPES, ids=str)
def test_norm_affine_matches_spec(shape, per_row, per_member):
    rows, cols = shape
    sizes = (rows, cols, cols, 1) if per_row else (cols, rows, 1, cols)
    check_affine_against_spec(sizes, per_member, rows * cols + per_member)


@pytest.mark.parametrize("per_member", [0, 1])
@pytest.mark.parametrize("sizes", NORM_LAYOUTS[2:], ids=str)
def test_norm_affine_matches_spec_for_any_strides(sizes, per_member):
    """Blocks of columns, and strides outside both fast paths (overlapping groups included)."""
    check_affine_against_spec(sizes, per_member, sum(sizes))


def test_norm_affine_sums_over_no_elements_are_zero():
    weight_grad, bias_grad, x, stats = cpu.alloc(4), cpu.alloc(4), cpu.alloc(1), cpu.alloc(8)
    for groups, members, per_member in ((0, 4, 1), (4, 0, 0)):
        cpu.fill(weight_grad, 7.0, 4)
        cpu.fill(bias_grad, 7.0, 4)
        cpu.norm_affine_backward(x, x, stats, cpu.alloc(4), cpu.alloc(1), weight_grad, bias_grad,
                                 groups, members, 1, 1, 1e-5, per_member)
        np.testing.assert_array_equal(np.asarray(weight_grad), 0.0)
        np.testing.assert_array_equal(np.asarray(bias_grad), 0.0)


def test_norm_affine_bad_arguments_raise():
    x, stats, p = cpu.alloc(12), cpu.alloc(8), cpu.alloc(4)
    forward, backward = cpu.norm_affine_forward, cpu.norm_affine_backward
    with pytest.raises(ValueError, match=r"norm_affine_forward: x needs 15 elements for groups=3, "
                                         r"members=5, strides=\(5, 1\), per_member=0, its buffer "
                                         r"has 12"):
        forward(x, p, p, cpu.alloc(15), stats, 3, 5, 5, 1, 1e-5, 0)
    with pytest.raises(ValueError, match="norm_affine_forward: stats needs 10 elements"):
        forward(x, p, p, x, stats, 5, 2, 2, 1, 1e-5, 1)
    with pytest.raises(ValueError, match="norm_affine_forward: weight needs 6 elements .*"
                                         "per_member=1, its buffer has 3"):
        forward(x, cpu.alloc(3), p, x, stats, 2, 6, 6, 1, 1e-5, 1)
    with pytest.raises(ValueError, match="norm_affine_forward: bias needs 4 elements .* has 3"):
        forward(x, p, cpu.alloc(3), x, stats, 4, 3, 3, 1, 1e-5, 0)
    with pytest.raises(ValueError, match="norm_affine_forward: per_member must be 0 or 1, got 2"):
        forward(x, p, p, x, stats, 4, 3, 3, 1, 1e-5, 2)
    out = cpu.alloc(12)
    with pytest.raises(ValueError, match="norm_affine_backward: g needs 12 elements"):
        backward(cpu.alloc(6), x, stats, p, out, p, p, 4, 3, 3, 1, 1e-5, 0)
    with pytest.raises(ValueError, match="norm_affine_backward: weight needs 6 elements"):
        backward(x, x, stats, p, out, p, p, 2, 6, 6, 1, 1e-5, 1)
    with pytest.raises(ValueError, match="norm_affine_backward: weight_grad needs 4 elements"):
        backward(x, x, stats, p, out, cpu.alloc(3), p, 4, 3, 3, 1, 1e-5, 0)
    with pytest.raises(ValueError, match="norm_affine_backward: bias_grad needs 3 elements"):
        backward(x, x, stats, p, out, p, cpu.alloc(2), 4, 3, 3, 1, 1e-5, 1)
    with pytest.raises(ValueError, match="norm_affine_backward: per_member must be 0 or 1, got -1"):
        backward(x, x, stats, p, out, p, p, 4, 3, 3, 1, 1e-5, -1)
    with pytest.raises(KernelError, match=r"norm_affine_backward: negative .*member_stride=-1"):
        backward(x, x, stats, p, out, p, p, 2, 3, 6, -1, 1e-5, 0)


def test_norm_affine_kernels_report_status_before_any_access():
    lib, a = load(), cpu.alloc(12)
    forward, backward = lib.nd_norm_affine_forward_f32, lib.nd_norm_affine_backward_f32
    for per_member in (2, -1):
        assert forward(*[a.address] * 5, 3, 4, 4, 1, 1e-5, per_member) == 6  # ND_ERR_ARG
        assert backward(*[a.address] * 7, 3, 4, 4, 1, 1e-5, per_member) == 6
    assert forward(a.address, None, a.address, a.address, a.address, 3, 4, 4, 1, 1e-5, 0) == 4
    assert backward(*[a.address] * 5, None, a.address, 3, 4, 4, 1, 1e-5, 1) == 4  # ND_ERR_NULL
    assert backward(*[a.address] * 3, None, *[a.address] * 3, 3, 4, 4, 1, 1e-5, 1) == 4
    assert forward(*[None] * 5, 0, 4, 4, 1, 1e-5, 1) == 0  # no groups: nothing to touch
    assert backward(*[None] * 7, 4, 0, 1, 1, 1e-5, 1) == 0  # no members, per member: no sums


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
