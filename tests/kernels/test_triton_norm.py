"""Triton normalization kernels (kernel layer) through the cuda device, against the numpy spec: per
row and per column, groups and members past one tile, strided groups with gaps, special groups
(NaN, inf, constant, large offset), empty shapes and the launchers' argument errors.
"""

import numpy as np
import pytest

from engine.backend import numpy_device
from kernels_triton import norm
from tests.device_buffers import read, to_device
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))

RNG = np.random.default_rng(5)
EPS = 1e-5
SENTINEL = 7.0


def _run(device, x, g, groups, members, group_stride, member_stride, eps=EPS):
    """(out, stats, gradient) as host buffers of x's size (SENTINEL where nothing was written);
    `device` is the cuda module or the numpy spec."""
    size, fill = x.size, np.full(x.size, SENTINEL, np.float32)
    if device is numpy_device:
        out, stats, grad = fill.copy(), np.full(2 * groups, SENTINEL, np.float32), fill.copy()
        numpy_device.norm_forward(x, out, stats, groups, members, group_stride, member_stride,
                                  eps)
        numpy_device.norm_backward(g, out, stats, grad, groups, members, group_stride,
                                   member_stride, eps)
        return out, stats, grad
    out, grad = to_device(device, fill), to_device(device, fill)
    stats = to_device(device, np.full(2 * groups, SENTINEL, np.float32))
    device.norm_forward(to_device(device, x), out, stats, groups, members, group_stride,
                        member_stride, eps)
    device.norm_backward(to_device(device, g), out, stats, grad, groups, members, group_stride,
                         member_stride, eps)
    return read(device, out, size), read(device, stats, 2 * groups), read(device, grad, size)


def _check_against_spec(cuda, x, g, groups, members, group_stride, member_stride, atol=1e-5):
    want = _run(numpy_device, x, g, groups, members, group_stride, member_stride)
    got = _run(cuda, x, g, groups, members, group_stride, member_stride)
    layout = (groups, members, group_stride, member_stride)
    tolerances = (atol, atol, gradient_tolerance(want[1][groups:], g, layout, atol))
    for name, value, expected, tolerance in zip(("out", "stats", "gradient"), got, want,
                                                tolerances, strict=True):
        close = np.isclose(value, expected, rtol=1e-4, atol=0, equal_nan=True)
        close |= np.abs(value - expected) <= tolerance
        assert close.all(), (f"{name}: {np.count_nonzero(~close)} elements differ, first at "
                             f"{np.flatnonzero(~close)[:5]}: {value[~close][:5]} against "
                             f"{expected[~close][:5]}")
    return got


def gradient_tolerance(var, g, layout, atol, eps=EPS):
    """The input gradient's absolute tolerance per element of g's buffer: atol, or more in a group
    whose 1 / sqrt(var + eps) times its largest cotangent is large. The gradient is that scale
    times g - mean(g) - xhat * projection, whose terms cancel; a GPU contracts them into fused
    multiply-adds, whose rounding (a few ulps of the terms) the scale amplifies, where numpy
    rounds each step. A group of one member has var 0 and a scale of 1 / sqrt(eps) = 316."""
    groups, members, group_stride, member_stride = layout
    offsets = (np.arange(groups)[:, None] * group_stride
               + np.arange(members)[None, :] * member_stride)
    tolerance = np.full(g.size, atol, np.float64)
    if offsets.size:
        scale = np.abs(g[offsets]).max(axis=1) / np.sqrt(var.astype(np.float64) + eps)
        tolerance[offsets] = np.maximum(atol, 1e-5 * np.nan_to_num(scale))[:, None]
    return tolerance


def _layout(rows, cols, per_row):
    return (rows, cols, cols, 1) if per_row else (cols, rows, 1, cols)


def _random(rows, cols):
    x = (3.0 * RNG.standard_normal(rows * cols) - 1.5).astype(np.float32)
    return x, RNG.standard_normal(rows * cols).astype(np.float32)


# (rows, cols) of a compact array: single elements; groups past one group tile (row tiles of 64
# and 4, column tiles of 8); members past one chunk (1024 per row, 512 per column of <= 8 groups)
# with a partial last chunk; enough columns for the wide 32-group column tiles.
SHAPES = [(1, 1), (1, 9), (9, 1), (70, 64), (37, 300), (3, 2049), (1300, 5), (600, 40), (3, 4100)]


@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
@pytest.mark.parametrize("rows, cols", SHAPES, ids=str)
def test_compact_layouts_match_spec(cuda, rows, cols, per_row):
    x, g = _random(rows, cols)
    _check_against_spec(cuda, x, g, *_layout(rows, cols, per_row))


def test_launcher_tiles_follow_the_contiguous_axis():
    assert norm.block_config(100, 1000, 1000, 1)[2] == 1  # per row: members contiguous
    assert norm.block_config(16, 100_000, 1, 16)[2] == 0  # per column: groups contiguous
    assert norm.block_config(16, 100_000, 1, 16)[0] == 8  # several programs for 16 channels
    assert norm.block_config(5000, 10, 1, 5000)[0] == 32
    assert norm.block_config(1, 1, 1, 1)[2] == 1
    for config in (norm.block_config(*args) for args in
                   [(3, 5000, 5000, 1), (5000, 3, 3, 1), (7, 9000, 1, 7), (9000, 7, 1, 9000)]):
        assert config[0] * config[1] <= 4096


# Groups never overlap: programs writing the same element would race (the numpy spec's last
# group wins, as under the interpreter, which runs programs in order).
@pytest.mark.parametrize("group_stride, member_stride", [(1, 11), (21, 1), (3, 40), (50, 2)])
def test_strided_groups_leave_gaps_untouched(cuda, group_stride, member_stride):
    groups, members = 10, 20
    size = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    x, g = _random(size, 1)
    out, _, grad = _check_against_spec(cuda, x, g, groups, members, group_stride, member_stride)
    touched = np.zeros(size, bool)
    touched[(np.arange(groups)[:, None] * group_stride
             + np.arange(members)[None, :] * member_stride).reshape(-1)] = True
    assert (out[~touched] == SENTINEL).all() and (grad[~touched] == SENTINEL).all()
    assert (out[touched] != SENTINEL).all()


# Groups (rows here, columns when transposed): constant (variance 0); a large offset with small
# noise (a one-pass variance would cancel); a NaN; an infinity; -inf and inf together.
SPECIAL_GROUPS = np.array([
    [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],
    [1e4 + 0.5, 1e4 - 0.5, 1e4 + 0.25, 1e4 - 0.25, 1e4, 1e4],
    [1.0, np.nan, 2.0, 3.0, 4.0, 5.0],
    [1.0, 2.0, 3.0, 4.0, 5.0, np.inf],
    [-np.inf, 0.0, 1.0, 2.0, 3.0, np.inf],
], np.float32)


@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_special_groups_match_spec(cuda, per_row):
    rows, cols = SPECIAL_GROUPS.shape
    x = SPECIAL_GROUPS if per_row else np.ascontiguousarray(SPECIAL_GROUPS.T)
    g = np.linspace(-1.0, 1.0, x.size).astype(np.float32)
    layout = _layout(rows, cols, True) if per_row else _layout(cols, rows, False)
    out, stats, grad = _check_against_spec(cuda, x.reshape(-1), g, *layout, atol=1e-4)
    per_group = (lambda a: a.reshape(rows, cols)) if per_row else (lambda a: a.reshape(cols,
                                                                                       rows).T)
    assert (per_group(out)[0] == 0).all() and stats[rows] == 0.0
    assert np.isclose(stats[rows + 1], 0.625 / 6, rtol=1e-4)  # group 1's exact variance
    assert np.isnan(per_group(out)[2:]).all() and np.isnan(per_group(grad)[2:]).all()
    assert np.isnan(stats[[2, 4]]).all() and stats[3] == np.inf
    assert np.isnan(stats[rows + 2:]).all()


def test_special_values_in_a_later_chunk(cuda):
    for per_row, (rows, cols) in ((True, (3, 1500)), (False, (1500, 3))):
        x, g = _random(rows, cols)
        host = x.reshape(rows, cols) if per_row else x.reshape(rows, cols).T
        host[1, 1400] = np.nan
        host[2, 1100:] = 5.0
        _, stats, grad = _check_against_spec(cuda, x, g, *_layout(rows, cols, per_row))
        assert np.isnan(stats[[1, 4]]).all() and stats[5] > 0.0
        groups = 3
        assert np.isfinite(stats[[0, 2, groups, groups + 2]]).all()
        per_group = grad.reshape(rows, cols) if per_row else grad.reshape(rows, cols).T
        assert np.isnan(per_group[1]).all() and np.isfinite(per_group[[0, 2]]).all()


def test_no_members_gives_nan_statistics_and_writes_nothing(cuda):
    out, stats = to_device(cuda, np.full(4, SENTINEL)), to_device(cuda, np.full(6, SENTINEL))
    cuda.norm_forward(cuda.alloc(1), out, stats, 3, 0, 1, 3, EPS)
    assert np.isnan(read(cuda, stats, 6)).all()
    cuda.norm_backward(cuda.alloc(1), cuda.alloc(1), stats, out, 3, 0, 1, 3, EPS)
    np.testing.assert_array_equal(read(cuda, out, 4), [SENTINEL] * 4)


def test_no_groups_writes_nothing(cuda):
    out, stats = to_device(cuda, np.full(4, SENTINEL)), to_device(cuda, np.full(2, SENTINEL))
    cuda.norm_forward(to_device(cuda, np.ones(4)), out, stats, 0, 4, 4, 1, EPS)
    cuda.norm_backward(to_device(cuda, np.ones(4)), out, stats, out, 0, 4, 4, 1, EPS)
    np.testing.assert_array_equal(read(cuda, out, 4), [SENTINEL] * 4)
    np.testing.assert_array_equal(read(cuda, stats, 2), [SENTINEL] * 2)


def test_eps_sets_the_scale(cuda):
    x = np.array([1.0, 3.0], np.float32)
    out, stats = cuda.alloc(2), cuda.alloc(2)
    cuda.norm_forward(to_device(cuda, x), out, stats, 1, 2, 2, 1, 3.0)
    np.testing.assert_allclose(read(cuda, out, 2), [-0.5, 0.5], rtol=1e-6)


def test_bad_arguments_raise(cuda):
    x, out, stats = cuda.alloc(12), cuda.alloc(12), cuda.alloc(6)
    with pytest.raises(ValueError, match="norm_forward: negative sizes groups=-1, members=4"):
        cuda.norm_forward(x, out, stats, -1, 4, 4, 1, EPS)
    with pytest.raises(ValueError, match="norm_backward: negative sizes groups=3, members=-4"):
        cuda.norm_backward(x, x, stats, out, 3, -4, 4, 1, EPS)
    with pytest.raises(ValueError, match=r"norm_forward x: view shape \(3, 5\) strides \(5, 1\)"):
        cuda.norm_forward(x, out, stats, 3, 5, 5, 1, EPS)
    with pytest.raises(ValueError, match=r"norm_forward out: .* reaches elements \[0, 11\]"):
        cuda.norm_forward(x, cuda.alloc(11), stats, 3, 4, 4, 1, EPS)
    with pytest.raises(ValueError, match="norm_forward stats: buffer holds 5 elements, 6 needed"):
        cuda.norm_forward(x, out, cuda.alloc(5), 3, 4, 4, 1, EPS)
    with pytest.raises(ValueError, match="norm_backward g: view shape"):
        cuda.norm_backward(cuda.alloc(11), x, stats, out, 3, 4, 4, 1, EPS)
    with pytest.raises(ValueError, match="norm_backward xhat: view shape"):
        cuda.norm_backward(x, cuda.alloc(11), stats, out, 3, 4, 1, 3, EPS)
    with pytest.raises(ValueError, match="norm_backward stats: buffer holds 4 elements, 6"):
        cuda.norm_backward(x, x, cuda.alloc(4), out, 3, 4, 4, 1, EPS)
    with pytest.raises(TypeError, match="norm_forward stats: expected a torch tensor"):
        cuda.norm_forward(x, out, np.zeros(6, np.float32), 3, 4, 4, 1, EPS)


# Learned scale and shift (norm_affine_*): per group (batch norm) and per member (layer norm).
def _run_affine(device, x, g, weight, bias, layout, per_member):
    """(out, stats, gradient, weight_grad, bias_grad) as host buffers (SENTINEL where nothing
    was written; one element at least, as to_device allocates)."""
    groups = layout[0]
    sizes = (x.size, 2 * groups, x.size, weight.size, weight.size)
    if device is numpy_device:
        out, stats, grad, weight_grad, bias_grad = (np.full(max(n, 1), SENTINEL, np.float32)
                                                    for n in sizes)
        x, g, weight, bias = (np.resize(a, max(a.size, 1)) for a in (x, g, weight, bias))
    else:
        out, stats, grad, weight_grad, bias_grad = (to_device(device, np.full(n, SENTINEL))
                                                    for n in sizes)
        x, g, weight, bias = (to_device(device, a) for a in (x, g, weight, bias))
    device.norm_affine_forward(x, weight, bias, out, stats, *layout, EPS, per_member)
    device.norm_affine_backward(g, x, stats, weight, grad, weight_grad, bias_grad, *layout, EPS,
                                per_member)
    buffers = (out, stats, grad, weight_grad, bias_grad)
    if device is numpy_device:
        return [buffer[:n] for buffer, n in zip(buffers, sizes, strict=True)]
    return [read(device, buffer, n) for buffer, n in zip(buffers, sizes, strict=True)]


def _check_affine(cuda, x, g, layout, per_member, atol=1e-4):
    count = layout[1] if per_member else layout[0]
    weight = RNG.uniform(0.5, 2.0, count).astype(np.float32)
    bias = RNG.standard_normal(count).astype(np.float32)
    want = _run_affine(numpy_device, x, g, weight, bias, layout, per_member)
    got = _run_affine(cuda, x, g, weight, bias, layout, per_member)
    names = ("out", "stats", "gradient", "weight_grad", "bias_grad")
    for name, value, expected in zip(names, got, want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=atol, equal_nan=True,
                                   err_msg=name)
    return got


# (rows, cols, layout) of a compact array: single elements; two group programs (64 rows per
# row tile, 8 columns per column tile); members past one chunk (1024 per row, 512 per column: the
# transposed shape would need a program per 8 of its 1100 columns, slow in the interpreter); for
# the per-member parameter gradients (32 members a program, 128 groups a chunk) several programs
# and group chunks.
AFFINE_CASES = [(rows, cols, layout) for rows, cols in
                [(1, 1), (1, 9), (9, 1), (70, 64), (600, 9), (130, 40), (40, 130)]
                for layout in ("rows", "columns")] + [(3, 1100, "rows"), (1100, 3, "columns")]


@pytest.mark.parametrize("per_member", [0, 1], ids=["per_group", "per_member"])
@pytest.mark.parametrize("rows, cols, layout", AFFINE_CASES, ids=str)
def test_affine_compact_layouts_match_spec(cuda, rows, cols, layout, per_member):
    x, g = _random(rows, cols)
    _check_affine(cuda, x, g, _layout(rows, cols, layout == "rows"), per_member)


@pytest.mark.parametrize("per_member", [0, 1], ids=["per_group", "per_member"])
@pytest.mark.parametrize("group_stride, member_stride", [(1, 11), (50, 2)])
def test_affine_strided_groups_leave_gaps_untouched(cuda, group_stride, member_stride,
                                                    per_member):
    groups, members = 10, 20
    size = (groups - 1) * group_stride + (members - 1) * member_stride + 1
    x, g = _random(size, 1)
    out, _, grad, _, _ = _check_affine(cuda, x, g, (groups, members, group_stride,
                                                    member_stride), per_member)
    touched = np.zeros(size, bool)
    touched[(np.arange(groups)[:, None] * group_stride
             + np.arange(members)[None, :] * member_stride).reshape(-1)] = True
    assert (out[~touched] == SENTINEL).all() and (grad[~touched] == SENTINEL).all()
    assert (out[touched] != SENTINEL).all() and (grad[touched] != SENTINEL).all()


@pytest.mark.parametrize("per_member", [0, 1], ids=["per_group", "per_member"])
def test_affine_nan_group_spreads_as_in_spec(cuda, per_member):
    rows, cols = 6, 40
    x, g = _random(rows, cols)
    x[2 * cols + 7] = np.nan
    _, _, grad, weight_grad, bias_grad = _check_affine(cuda, x, g, _layout(rows, cols, True),
                                                       per_member)
    assert np.isnan(grad.reshape(rows, cols)[2]).all()
    assert np.isfinite(grad.reshape(rows, cols)[[0, 1, 3, 4, 5]]).all()
    assert np.isnan(weight_grad).any() and np.isfinite(bias_grad).all()


@pytest.mark.parametrize("per_member", [0, 1], ids=["per_group", "per_member"])
@pytest.mark.parametrize("rows, cols", [(0, 5), (5, 0)], ids=str)
def test_affine_empty_shapes_match_spec(cuda, rows, cols, per_member):
    x, g = _random(rows, cols)
    got = _check_affine(cuda, x, g, _layout(rows, cols, True), per_member)
    count = cols if per_member else rows
    # Parameters over no elements get zero gradients (groups == 0 per member, members == 0 per
    # group); nothing else is written.
    np.testing.assert_array_equal(got[3], np.zeros(count))
    np.testing.assert_array_equal(got[4], np.zeros(count))
    assert (got[0] == SENTINEL).all() and (got[2] == SENTINEL).all()


def test_affine_forward_and_backward_by_hand(cuda):
    x, g = np.array([1.0, 3.0, 2.0, 6.0], np.float32), np.array([1.0, 0.0, 0.0, 2.0], np.float32)
    # Two groups of two along the rows; a per-group scale of 2 and 4, shifts 1 and -1, eps 0.
    out, stats, grad = cuda.alloc(4), cuda.alloc(4), cuda.alloc(4)
    weight, bias = to_device(cuda, [2.0, 4.0]), to_device(cuda, [1.0, -1.0])
    weight_grad, bias_grad = cuda.alloc(2), cuda.alloc(2)
    cuda.norm_affine_forward(to_device(cuda, x), weight, bias, out, stats, 2, 2, 2, 1, 0.0, 0)
    np.testing.assert_allclose(read(cuda, out, 4), [-1.0, 3.0, -5.0, 3.0], rtol=1e-6)
    cuda.norm_affine_backward(to_device(cuda, g), to_device(cuda, x), stats, weight, grad,
                              weight_grad, bias_grad, 2, 2, 2, 1, 0.0, 0)
    np.testing.assert_allclose(read(cuda, weight_grad, 2), [-1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(read(cuda, bias_grad, 2), [1.0, 2.0], rtol=1e-6)
    # xhat = +-1 makes the input gradient vanish: g's mean and projection cancel it exactly.
    np.testing.assert_allclose(read(cuda, grad, 4), [0.0] * 4, atol=1e-6)


def test_affine_bad_arguments_raise(cuda):
    x, out, stats = cuda.alloc(12), cuda.alloc(12), cuda.alloc(6)
    three, four = cuda.alloc(3), cuda.alloc(4)
    with pytest.raises(ValueError, match="norm_affine_forward: per_member must be 0 or 1, got 2"):
        cuda.norm_affine_forward(x, three, three, out, stats, 3, 4, 4, 1, EPS, 2)
    with pytest.raises(ValueError, match="norm_affine_backward: per_member must be 0 or 1"):
        cuda.norm_affine_backward(x, x, stats, four, out, four, four, 3, 4, 4, 1, EPS, -1)
    with pytest.raises(ValueError, match="norm_affine_forward bias: buffer holds 3 elements, 4"):
        cuda.norm_affine_forward(x, four, three, out, stats, 3, 4, 4, 1, EPS, 1)
    with pytest.raises(ValueError, match="norm_affine_forward weight: buffer holds 2 elements"):
        cuda.norm_affine_forward(x, cuda.alloc(2), three, out, stats, 3, 4, 4, 1, EPS, 0)
    with pytest.raises(ValueError, match="norm_affine_backward weight_grad: buffer holds 3"):
        cuda.norm_affine_backward(x, x, stats, four, out, three, four, 3, 4, 4, 1, EPS, 1)
    with pytest.raises(ValueError, match="norm_affine_backward bias_grad: buffer holds 2"):
        cuda.norm_affine_backward(x, x, stats, three, out, three, cuda.alloc(2), 3, 4, 4, 1,
                                  EPS, 0)
    with pytest.raises(ValueError, match="norm_affine_backward x: view shape"):
        cuda.norm_affine_backward(x, cuda.alloc(11), stats, three, out, three, three, 3, 4, 4,
                                  1, EPS, 0)
    with pytest.raises(ValueError, match="norm_affine_backward stats: buffer holds 5"):
        cuda.norm_affine_backward(x, x, cuda.alloc(5), three, out, three, three, 3, 4, 4, 1,
                                  EPS, 0)
    with pytest.raises(ValueError, match="norm_affine_forward: negative sizes groups=-3"):
        cuda.norm_affine_forward(x, three, three, out, stats, -3, 4, 4, 1, EPS, 0)


# Batch norm's running statistics, updated in the forward's launch: running = keep * running +
# take * stats, as ewise_axpby rounds it (one FMA on a GPU, hence the float32 tolerance).
KEEP, TAKE = 0.9, 0.1


def _forward_with_running(device, x, weight, bias, layout, per_member, running):
    """(out, stats, running) as host buffers after norm_affine_forward; running None: called
    without it, and the third buffer is left as SENTINEL."""
    groups = layout[0]
    sizes = (x.size, 2 * groups, 2 * groups)
    buffers = [np.full(max(n, 1), SENTINEL, np.float32) for n in sizes]
    inputs = [np.resize(a, max(a.size, 1)) for a in (x, weight, bias)]
    if running is not None:
        buffers[2] = running.copy()
    if device is not numpy_device:
        buffers, inputs = ([to_device(device, a) for a in arrays] for arrays in (buffers, inputs))
    extra = () if running is None else (buffers[2], KEEP, TAKE)
    device.norm_affine_forward(*inputs, *buffers[:2], *layout, EPS, per_member, *extra)
    if device is numpy_device:
        return [buffer[:n] for buffer, n in zip(buffers, sizes, strict=True)]
    return [read(device, buffer, n) for buffer, n in zip(buffers, sizes, strict=True)]


def _check_running(cuda, rows, cols, per_row, per_member=0):
    layout = _layout(rows, cols, per_row)
    groups, members = layout[0], layout[1]
    x, _ = _random(rows, cols)
    count = members if per_member else groups
    weight = RNG.uniform(0.5, 2.0, count).astype(np.float32)
    bias = RNG.standard_normal(count).astype(np.float32)
    running = RNG.uniform(-2.0, 2.0, 2 * groups).astype(np.float32)
    want = _forward_with_running(numpy_device, x, weight, bias, layout, per_member, running)
    out, stats, got_running = _forward_with_running(cuda, x, weight, bias, layout, per_member,
                                                    running)
    plain_out, plain_stats, _ = _forward_with_running(cuda, x, weight, bias, layout, per_member,
                                                      None)
    np.testing.assert_array_equal(out, plain_out)
    np.testing.assert_array_equal(stats, plain_stats)
    np.testing.assert_allclose(stats, want[1], rtol=1e-4, atol=1e-5, equal_nan=True)
    # The atol allows for stats a GPU sums in another order (the interpreter matches exactly).
    np.testing.assert_allclose(got_running, want[2], rtol=1e-6, atol=1e-6, equal_nan=True)
    # The spec's update of the device's own stats differs by the FMA's rounding only: the GPU
    # keeps one product unrounded, an ulp of that term at most, which shows where the sum cancels.
    expected = running.copy()
    numpy_device.ewise_axpby(expected, stats, KEEP, TAKE, expected, expected.size)
    terms = np.abs(KEEP * running) + np.abs(TAKE * stats)
    np.testing.assert_array_equal(np.isnan(got_running), np.isnan(expected))
    numbers = ~np.isnan(expected)
    np.testing.assert_array_less(np.abs(got_running - expected)[numbers],
                                 (1e-6 * np.abs(expected) + 2.4e-7 * terms)[numbers] + 1e-30)
    return layout, got_running


@pytest.mark.parametrize("per_member", [0, 1], ids=["per_group", "per_member"])
@pytest.mark.parametrize("rows, cols, per_row", [(40, 20, False), (70, 64, True), (1, 1, True)],
                         ids=["columns", "rows", "single"])
def test_running_statistics_match_spec(cuda, rows, cols, per_row, per_member):
    layout, running = _check_running(cuda, rows, cols, per_row, per_member)
    # Past one element, several programs each update their own groups'.
    assert (layout[0] > norm.block_config(*layout)[0]) == (rows > 1)
    assert np.isfinite(running).all()


def test_running_statistics_of_no_members_turn_nan_as_in_spec(cuda):
    _, running = _check_running(cuda, 0, 5, False)
    assert np.isnan(running).all()


def test_running_buffer_too_short_raises(cuda):
    x, out, stats, three = cuda.alloc(12), cuda.alloc(12), cuda.alloc(6), cuda.alloc(3)
    with pytest.raises(ValueError, match="norm_affine_forward running: buffer holds 5 elements, "
                                         "6 needed"):
        cuda.norm_affine_forward(x, three, three, out, stats, 3, 4, 4, 1, EPS, 0,
                                 cuda.alloc(5), KEEP, TAKE)
    with pytest.raises(TypeError, match="norm_affine_forward running: expected a torch tensor"):
        cuda.norm_affine_forward(x, three, three, out, stats, 3, 4, 4, 1, EPS, 0,
                                 np.zeros(6, np.float32), KEEP, TAKE)
