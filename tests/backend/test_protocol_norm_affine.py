"""The device protocol's normalization with a learned scale and shift (norm_affine_forward,
norm_affine_backward), one per group (batch norm) or per member (layer norm), in both layouts:
the numpy spec against float64 formulas and central differences, then every enabled device
against the spec. Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.backend.test_protocol_norm import EPS, float64_forward, layout, special_groups
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS


def run(device, x, w, b, g, per_row, per_member, eps=EPS, dtype="float32"):
    """(out, mean, var, input gradient, weight gradient, bias gradient) of `device` as host
    arrays: out and the input gradient of x's shape, statistics per group."""
    groups, members, group_stride, member_stride = layout(x.shape, per_row)
    count = members if per_member else groups
    x_handle, w_handle = to_device(device, x, dtype), to_device(device, w, dtype)
    out, stats = device.alloc(max(x.size, 1), dtype), device.alloc(max(2 * groups, 1), dtype)
    device.norm_affine_forward(x_handle, w_handle, to_device(device, b, dtype), out, stats,
                               groups, members, group_stride, member_stride, eps, per_member)
    grad = device.alloc(max(x.size, 1), dtype)
    # Filled with NaN, so that a parameter sum left unwritten shows.
    w_grad = to_device(device, np.full(count, np.nan), dtype)
    b_grad = to_device(device, np.full(count, np.nan), dtype)
    device.norm_affine_backward(to_device(device, g, dtype), x_handle, stats, w_handle, grad,
                                w_grad, b_grad, groups, members, group_stride, member_stride,
                                eps, per_member)
    stats_host = read(device, stats, 2 * groups)
    return (read(device, out, x.size).reshape(x.shape), stats_host[:groups], stats_host[groups:],
            read(device, grad, x.size).reshape(x.shape), read(device, w_grad, count),
            read(device, b_grad, count))


def parameters_like(x, per_row, per_member, rng):
    """(weight, bias) with one value per group or per member of x's layout."""
    groups, members, _, _ = layout(x.shape, per_row)
    count = members if per_member else groups
    return rng.standard_normal(count) + 1.0, rng.standard_normal(count)


def float64_affine(x, w, b, per_row, per_member, eps=EPS):
    """w * xhat + b with w and b spread over the (rows, cols) elements."""
    # The parameters index columns when they follow the per-row layout's members or the
    # per-column layout's groups, rows otherwise.
    by_column = per_member == per_row
    spread = (lambda p: p[None, :]) if by_column else (lambda p: p[:, None])
    return spread(w) * float64_forward(x, per_row, eps) + spread(b)


COMBINATIONS = [(True, 1), (False, 0), (True, 0), (False, 1)]
COMBINATION_IDS = ["layer_norm", "batch_norm", "rows_per_group", "columns_per_member"]


@pytest.mark.parametrize("per_row, per_member", COMBINATIONS, ids=COMBINATION_IDS)
def test_spec_matches_float64_and_central_differences(per_row, per_member):
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((4, 3)) * 2.0 + 1.0, rng.standard_normal((4, 3))
    w, b = parameters_like(x, per_row, per_member, rng)
    out, mean, var, grad, w_grad, b_grad = run(spec, x, w, b, g, per_row, per_member, eps=0.1,
                                               dtype="float64")
    axis = 1 if per_row else 0
    np.testing.assert_allclose(out, float64_affine(x, w, b, per_row, per_member, 0.1),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=axis), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=axis), rtol=1e-12)

    def loss(x_, w_, b_):
        return (float64_affine(x_, w_, b_, per_row, per_member, 0.1) * g).sum()

    for value, analytic in ((x, grad), (w, w_grad), (b, b_grad)):
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + 1e-6
            up = loss(x, w, b)
            value[index] = original - 1e-6
            down = loss(x, w, b)
            value[index] = original
            numeric[index] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# (rows, cols): one element; tiny; a batch of 100 x 100 features; rows longer than a Triton
# chunk of 1024; columns longer than one; more elements than the C threading grain (32768);
# one row; one column.
SHAPES = [(1, 1), (3, 7), (100, 100), (5, 3000), (3000, 5), (600, 100), (1, 9), (9, 1)]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row, per_member", COMBINATIONS, ids=COMBINATION_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_device_matches_spec(device, shape, per_row, per_member):
    rng = np.random.default_rng(shape[0] * shape[1] + per_member)
    x = (2.0 * rng.standard_normal(shape) + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    w, b = parameters_like(x, per_row, per_member, rng)
    want = run(spec, x, w, b, g, per_row, per_member)
    got = run(device, x, w, b, g, per_row, per_member)
    # The parameter gradients are sums of up to 3000 terms: relative to their scale.
    scale = np.sqrt(x.size)
    names = ("out", "mean", "var", "input gradient", "weight gradient", "bias gradient")
    for name, value, expected in zip(names, got, want, strict=True):
        atol = 1e-5 * scale if name.endswith(("weight gradient", "bias gradient")) else 1e-5
        if name == "input gradient":
            atol = input_gradient_tolerance(want[2], w, g, per_row, per_member)
        np.testing.assert_array_less(np.abs(value - expected),
                                     1e-4 * np.abs(expected) + atol + 1e-30, err_msg=name)


def input_gradient_tolerance(var, w, g, per_row, per_member):
    """Per element of the input gradient: 1e-5, or more in a group whose 1 / sqrt(var + eps) times
    its largest weighted cotangent is large. The gradient is that scale times w * g - mean(w * g)
    - xhat * projection, whose terms cancel; a GPU contracts them into fused multiply-adds, whose
    rounding (a few ulps of the terms) the scale amplifies, where numpy rounds each step. A group
    of one member has var 0 and a scale of 1 / sqrt(eps) = 316."""
    by_column = per_member == per_row
    weighted = np.abs(g) * np.abs(w[None, :] if by_column else w[:, None])
    inverse = 1.0 / np.sqrt(var.astype(np.float64) + EPS)
    if per_row:
        return np.maximum(1e-5, 1e-5 * (inverse * weighted.max(axis=1))[:, None])
    return np.maximum(1e-5, 1e-5 * (inverse * weighted.max(axis=0))[None, :])


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row", [True, False], ids=["rows", "columns"])
def test_special_groups_match_spec(device, per_row):
    # As for the plain pair; the NaN and infinity spread to their group's outputs, and to the
    # parameter sums that include them.
    x, g = special_groups(per_row)
    for per_member in (0, 1):
        w, b = parameters_like(x, per_row, per_member, np.random.default_rng(per_member))
        want = run(spec, x, w, b, g, per_row, per_member)
        got = run(device, x, w, b, g, per_row, per_member)
        for name, value, expected in zip(("out", "mean", "var", "input gradient",
                                          "weight gradient", "bias gradient"), got, want):
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4, equal_nan=True,
                                       err_msg=f"{name}, per_member={per_member}")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_no_members_and_no_groups(device):
    # No members: NaN statistics, out untouched, zero sums for per-group parameters. No groups:
    # zero sums for per-member parameters.
    stats, out = device.alloc(6, "float32"), to_device(device, np.full(2, 7.0))
    weights = to_device(device, np.ones(3))
    device.norm_affine_forward(device.alloc(1, "float32"), weights, weights, out, stats, 3, 0, 1,
                               3, EPS, 0)
    assert np.isnan(read(device, stats, 6)).all()
    w_grad, b_grad = to_device(device, np.full(3, 5.0)), to_device(device, np.full(3, 5.0))
    device.norm_affine_backward(device.alloc(1, "float32"), device.alloc(1, "float32"), stats,
                                weights, out, w_grad, b_grad, 3, 0, 1, 3, EPS, 0)
    np.testing.assert_array_equal(read(device, out, 2), [7.0, 7.0])
    np.testing.assert_array_equal(read(device, w_grad, 3), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(read(device, b_grad, 3), [0.0, 0.0, 0.0])
    w_grad, b_grad = to_device(device, np.full(3, 5.0)), to_device(device, np.full(3, 5.0))
    device.norm_affine_backward(device.alloc(1, "float32"), device.alloc(1, "float32"), stats,
                                weights, out, w_grad, b_grad, 0, 3, 3, 1, EPS, 1)
    np.testing.assert_array_equal(read(device, w_grad, 3), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(read(device, b_grad, 3), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_member, short", [(0, "weight"), (0, "bias"), (1, "weight"),
                                               (1, "bias")])
def test_short_parameters_raise(device, per_member, short):
    # A (3, 4) array per row: 3 groups of 4 members; per-member parameters need 4 elements.
    count = 4 if per_member else 3
    x, out, stats = to_device(device, np.ones(12)), device.alloc(12, "float32"), device.alloc(
        6, "float32")
    params = {name: to_device(device, np.ones(count)) for name in ("weight", "bias")}
    params[short] = to_device(device, np.ones(count - 1))
    with pytest.raises(ValueError, match=short):
        device.norm_affine_forward(x, params["weight"], params["bias"], out, stats, 3, 4, 4, 1,
                                   EPS, per_member)
    grads = {name: to_device(device, np.ones(count)) for name in ("weight", "bias")}
    grads[short] = to_device(device, np.ones(count - 1))
    with pytest.raises(ValueError, match=f"{short}_grad"):
        device.norm_affine_backward(x, x, stats, to_device(device, np.ones(count)), out,
                                    grads["weight"], grads["bias"], 3, 4, 4, 1, EPS, per_member)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_per_member_must_be_a_flag(device):
    x, out, stats = to_device(device, np.ones(12)), device.alloc(12, "float32"), device.alloc(
        6, "float32")
    params = to_device(device, np.ones(4))
    with pytest.raises(ValueError, match="per_member"):
        device.norm_affine_forward(x, params, params, out, stats, 3, 4, 4, 1, EPS, 2)


KEEP, TAKE = 0.9, 0.1


def forward_with_running(device, x, w, b, per_row, per_member, start, dtype="float32"):
    """(out, stats, running) of one forward call as host arrays; start None: no running."""
    groups, members, group_stride, member_stride = layout(x.shape, per_row)
    out, stats = device.alloc(max(x.size, 1), dtype), device.alloc(max(2 * groups, 1), dtype)
    running = None if start is None else to_device(device, start, dtype)
    device.norm_affine_forward(to_device(device, x, dtype), to_device(device, w, dtype),
                               to_device(device, b, dtype), out, stats, groups, members,
                               group_stride, member_stride, EPS, per_member, running, KEEP, TAKE)
    return (read(device, out, x.size), read(device, stats, 2 * groups),
            None if start is None else read(device, running, 2 * groups))


@pytest.mark.parametrize("per_row, per_member", COMBINATIONS[:2], ids=COMBINATION_IDS[:2])
def test_spec_running_matches_float64(per_row, per_member):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)) * 2.0 + 1.0
    w, b = parameters_like(x, per_row, per_member, rng)
    groups = layout(x.shape, per_row)[0]
    start = rng.standard_normal(2 * groups)
    _, _, running = forward_with_running(spec, x, w, b, per_row, per_member, start, "float64")
    axis = 1 if per_row else 0
    expected = KEEP * start + TAKE * np.concatenate([x.mean(axis=axis), x.var(axis=axis)])
    np.testing.assert_allclose(running, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row, per_member", COMBINATIONS[:2], ids=COMBINATION_IDS[:2])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (600, 100), (5, 3000)], ids=str)
def test_device_running_matches_spec(device, shape, per_row, per_member):
    """out and stats as without running; running within float32 rounding of the spec's (its
    statistics round differently) and, from the device's own stats, as ewise_axpby rounds it."""
    rng = np.random.default_rng(shape[0] + shape[1])
    x = (2.0 * rng.standard_normal(shape) + 0.5).astype(np.float32)
    w, b = parameters_like(x, per_row, per_member, rng)
    start = rng.standard_normal(2 * layout(shape, per_row)[0]).astype(np.float32)
    out, stats, running = forward_with_running(device, x, w, b, per_row, per_member, start)
    plain_out, plain_stats, _ = forward_with_running(device, x, w, b, per_row, per_member, None)
    np.testing.assert_array_equal(out, plain_out)
    np.testing.assert_array_equal(stats, plain_stats)
    want = forward_with_running(spec, x, w, b, per_row, per_member, start)[2]
    np.testing.assert_allclose(running, want, rtol=1e-4, atol=1e-5)
    # Two roundings of float32 products and sums, or one fewer with an FMA, each at most an ulp
    # of the larger term.
    keep, take = np.float32(KEEP), np.float32(TAKE)
    terms = np.abs(keep * start) + np.abs(take * stats)
    assert (np.abs(running - (keep * start + take * stats)) <= 2.0**-22 * terms).all()


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_running_without_members_is_nan_and_without_groups_untouched(device):
    weights, start = to_device(device, np.ones(3)), np.arange(6.0)
    for groups, members, expected in ((3, 0, np.full(6, np.nan)), (0, 3, start)):
        running = to_device(device, start)
        device.norm_affine_forward(device.alloc(1, "float32"), weights, weights,
                                   device.alloc(1, "float32"), device.alloc(6, "float32"),
                                   groups, members, 1, 3, EPS, 0, running, KEEP, TAKE)
        np.testing.assert_array_equal(read(device, running, 6), expected)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_short_running_raises(device):
    x, stats, params = to_device(device, np.ones(12)), device.alloc(6, "float32"), to_device(
        device, np.ones(3))
    with pytest.raises(ValueError, match="running"):
        device.norm_affine_forward(x, params, params, device.alloc(12, "float32"), stats, 3, 4, 4,
                                   1, EPS, 0, device.alloc(5, "float32"), KEEP, TAKE)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("per_row, per_member", COMBINATIONS, ids=COMBINATION_IDS)
@pytest.mark.parametrize("shape", [(9, 5), (70, 3)], ids=str)
def test_relu_forward_and_gated_backward_are_the_separate_kernels(device, per_row, per_member,
                                                                  shape):
    # relu: the forward's output through ewise_relu; gate: the backward of ewise_relu_grad's
    # output, exactly, on the same device.
    rng = np.random.default_rng(9)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    w, b = parameters_like(x, per_row, per_member, rng)
    groups, members, group_stride, member_stride = layout(x.shape, per_row)
    sizes = (groups, members, group_stride, member_stride, EPS, per_member)
    count = members if per_member else groups
    x_handle, w_handle, b_handle = (to_device(device, v, "float32") for v in (x, w, b))
    plain, fused = device.alloc(x.size, "float32"), device.alloc(x.size, "float32")
    stats = device.alloc(2 * groups, "float32")
    device.norm_affine_forward(x_handle, w_handle, b_handle, plain, stats, *sizes)
    device.norm_affine_forward(x_handle, w_handle, b_handle, fused, stats, *sizes, relu=True)
    device.ewise_relu(plain, plain, x.size)
    np.testing.assert_array_equal(read(device, fused, x.size), read(device, plain, x.size))
    g_handle = to_device(device, g, "float32")
    gated_g = device.alloc(x.size, "float32")
    device.ewise_relu_grad(g_handle, fused, gated_g, x.size)
    results = []
    for cotangent, gate in ((gated_g, None), (g_handle, fused)):
        out = device.alloc(x.size, "float32")
        w_grad, b_grad = device.alloc(count, "float32"), device.alloc(count, "float32")
        device.norm_affine_backward(cotangent, x_handle, stats, w_handle, out, w_grad, b_grad,
                                    *sizes, gate=gate)
        results.append([read(device, out, x.size), read(device, w_grad, count),
                        read(device, b_grad, count)])
    for got, want in zip(results[1], results[0], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(read(device, g_handle, x.size),
                                  g.astype(np.float32).reshape(-1))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_gate_shorter_than_the_cotangent_is_refused(device):
    x = np.ones((4, 3))
    groups, members, group_stride, member_stride = layout(x.shape, True)
    handle = to_device(device, x, "float32")
    ones, stats = to_device(device, np.ones(3), "float32"), device.alloc(8, "float32")
    with pytest.raises(ValueError, match="norm_affine_backward"):
        device.norm_affine_backward(handle, handle, stats, ones, device.alloc(12, "float32"),
                                    device.alloc(3, "float32"), device.alloc(3, "float32"),
                                    groups, members, group_stride, member_stride, EPS, 1,
                                    gate=to_device(device, np.ones(11), "float32"))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_gate_with_an_empty_or_negative_layout_reads_nothing(device):
    # No groups: nothing to read however far the strides point; negative sizes: refused.
    one = to_device(device, np.ones(1), "float32")
    buffers = [one] * 4 + [device.alloc(1, "float32") for _ in range(3)]
    device.norm_affine_backward(*buffers, 0, 2, 0, 10**6, EPS, 0, gate=one)
    with pytest.raises(Exception, match="norm.*negative"):  # each device names it its way
        device.norm_affine_backward(*buffers, -3, 2, -10**6, 1, EPS, 0, gate=one)
