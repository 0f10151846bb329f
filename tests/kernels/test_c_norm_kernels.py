"""C normalization kernels of the cpu device (over one axis, plain or with a learned scale and
shift, batch norm's running estimates in the forward): agreement with the numpy spec for any
strides and 1 and 2 threads, in place, bad sizes and status codes before any access.
Kernel layer tests.
"""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from kernels_c import KernelError, load
from tests.kernels.test_c_kernels import on_cpu


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
    with pytest.raises(ValueError, match="norm_affine_forward: running needs 8 elements .* has 7"):
        forward(x, p, p, x, stats, 4, 3, 3, 1, 1e-5, 0, cpu.alloc(7), 0.9, 0.1)
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
        assert forward(*[a.address] * 5, 3, 4, 4, 1, 1e-5, per_member, a.address, 1, 0, 0) == 6
        assert backward(*[a.address] * 7, 3, 4, 4, 1, 1e-5, per_member) == 6  # ND_ERR_ARG
    assert forward(a.address, None, *[a.address] * 3, 3, 4, 4, 1, 1e-5, 0, a.address, 1, 0,
                   0) == 4
    assert backward(*[a.address] * 5, None, a.address, 3, 4, 4, 1, 1e-5, 1) == 4  # ND_ERR_NULL
    assert backward(*[a.address] * 3, None, *[a.address] * 3, 3, 4, 4, 1, 1e-5, 1) == 4
    assert forward(*[None] * 5, 0, 4, 4, 1, 1e-5, 1, None, 1, 0, 0) == 0  # no groups: no access
    assert forward(*[a.address] * 5, 3, 4, 4, 1, 1e-5, 0, None, 1, 0, 2) == 6  # relu not 0 or 1
    assert backward(*[None] * 7, 4, 0, 1, 1, 1e-5, 1) == 0  # no members, per member: no sums


KEEP, TAKE = 0.9, 0.1
# (rows, cols) normalized per column (batch norm): one element, tiny, past the threading grain.
RUNNING_SHAPES = [(1, 1), (5, 3), (257, 129), (300, 900)]


def batch_norm(operands, rows, cols, running=None):
    """(out, stats) of the cpu device's norm over the columns of compact (rows, cols) x, with
    `running` (None: none) updated."""
    x, _, weight, bias = (on_cpu(a) for a in operands)
    out, stats = cpu.alloc(rows * cols), cpu.alloc(2 * cols)
    cpu.norm_affine_forward(x, weight, bias, out, stats, cols, rows, 1, cols, 1e-5, 0, running,
                            KEEP, TAKE)
    return np.array(out), np.array(stats)


@pytest.mark.parametrize("shape", RUNNING_SHAPES, ids=str)
def test_running_update_matches_spec_for_1_and_2_threads(shape):
    """running = keep * running + take * stats rounds as the device's ewise_axpby does (bit for
    bit) and the spec's (up to the build's FMA contraction: 1 ulp), for any thread count; out and
    stats are as without it."""
    rows, cols = shape
    operands = affine_operands((cols, rows, 1, cols), 0, rows * cols)
    # Signs as the stats': a cancelling sum would make the FMA's one rounding fewer many ulps of
    # a small result.
    magnitudes = np.random.default_rng(cols).uniform(0.5, 4.0, 2 * cols)
    start = (magnitudes * np.where(batch_norm(operands, rows, cols)[1] < 0, -1, 1)).astype(
        np.float32)
    before, updated = cpu.get_num_threads(), []
    try:
        for threads in (1, 2):
            cpu.set_num_threads(threads)
            plain = batch_norm(operands, rows, cols)
            running = on_cpu(start)
            out, stats = batch_norm(operands, rows, cols, running)
            np.testing.assert_array_equal(out, plain[0])
            np.testing.assert_array_equal(stats, plain[1])
            axpby = cpu.alloc(2 * cols)
            cpu.ewise_axpby(on_cpu(start), on_cpu(stats), KEEP, TAKE, axpby, 2 * cols)
            np.testing.assert_array_equal(np.array(running), np.array(axpby))
            expected = np.empty_like(start)
            spec.ewise_axpby(start, stats, KEEP, TAKE, expected, 2 * cols)
            np.testing.assert_array_max_ulp(np.array(running), expected, maxulp=1)
            updated.append(np.array(running))
    finally:
        cpu.set_num_threads(before)
    np.testing.assert_array_equal(updated[0], updated[1])
    # The spec's own call: its float32 statistics differ from the C ones by rounding only.
    x, _, weight, bias = operands
    spec_running = start.copy()
    spec.norm_affine_forward(x, weight, bias, np.empty_like(x), np.empty_like(start), cols, rows,
                             1, cols, 1e-5, 0, spec_running, KEEP, TAKE)
    np.testing.assert_allclose(updated[0], spec_running, rtol=1e-5, atol=1e-5)


def test_running_is_nan_without_members_and_untouched_without_groups():
    p, stats, start = cpu.alloc(3), cpu.alloc(6), np.arange(6, dtype=np.float32)
    running, untouched = on_cpu(start), on_cpu(start)
    cpu.norm_affine_forward(cpu.alloc(1), p, p, cpu.alloc(1), stats, 3, 0, 1, 3, 1e-5, 0, running,
                            KEEP, TAKE)
    assert np.isnan(np.asarray(running)).all()
    cpu.norm_affine_forward(cpu.alloc(1), p, p, cpu.alloc(1), stats, 0, 3, 1, 1, 1e-5, 1,
                            untouched, KEEP, TAKE)
    np.testing.assert_array_equal(np.asarray(untouched), start)


def test_running_pointer_through_ctypes_may_be_null():
    """Columns [1, 3] and [2, 5]: stats (2, 3.5, 1, 2.25), all exact, as is the update."""
    forward = load().nd_norm_affine_forward_f32
    x, p = on_cpu(np.array([1, 2, 3, 5], np.float32)), on_cpu(np.ones(2, np.float32))
    out, stats, running = cpu.alloc(4), cpu.alloc(4), on_cpu(np.zeros(4, np.float32))
    pointers = (x.address, p.address, p.address, out.address, stats.address)
    assert forward(*pointers, 2, 2, 1, 2, 0.0, 0, None, 0.5, 0.5, 0) == 0
    np.testing.assert_array_equal(np.asarray(stats), [2.0, 3.5, 1.0, 2.25])
    assert forward(*pointers, 2, 2, 1, 2, 0.0, 0, running.address, 0.5, 0.5, 0) == 0
    np.testing.assert_array_equal(np.asarray(running), [1.0, 1.75, 0.5, 1.125])


@pytest.mark.parametrize("per_row", [True, False], ids=["layer_norm", "batch_norm"])
@pytest.mark.parametrize("shape", [(300, 400), (7, 5)], ids=str)
@pytest.mark.parametrize("pad", [0, 3], ids=["dense", "padded_rows"])
def test_relu_after_the_norm_is_the_elementwise_relu_at_any_thread_count(shape, per_row, pad,
                                                                          threads):
    # Dense data is one run that threads share in pieces; padded rows go line by line.
    rows, cols = shape
    line = cols + pad
    rng = np.random.default_rng(rows)
    x = on_cpu(rng.standard_normal(rows * line).astype(np.float32))
    sizes = (rows, cols, line, 1) if per_row else (cols, rows, 1, line)
    # One weight and bias per column either way: layer norm's members, batch norm's groups.
    weight, bias = on_cpu(np.ones(cols, np.float32)), on_cpu(np.zeros(cols, np.float32))
    plain = on_cpu(np.full(x.size, 7.0, np.float32))
    fused = on_cpu(np.full(x.size, 7.0, np.float32))
    stats = cpu.alloc(2 * sizes[0])
    per_member = 1 if per_row else 0
    cpu.norm_affine_forward(x, weight, bias, plain, stats, *sizes, 1e-5, per_member)
    cpu.norm_affine_forward(x, weight, bias, fused, stats, *sizes, 1e-5, per_member, relu=True)
    want = np.asarray(plain).reshape(rows, line).copy()
    want[:, :cols] = np.maximum(want[:, :cols], 0)  # the padding stays as it was
    np.testing.assert_array_equal(np.asarray(fused).reshape(rows, line), want)
