"""Convolution-family ops on every enabled device: conv forward against a float64 numpy reference,
gradients (first and second order) by central differences, flip/dilate/undilate/pad, pooling, and
clear errors for bad shapes. Tests of the engine ops layer.
"""

import numpy as np
import pytest

import engine as ndl
from engine.backend import count_launches
from engine.backend import numpy_device as spec
from engine.ops.conv import (
    ConvBackwardInput,
    ConvBackwardWeight,
    ConvParams,
    conv,
    dilate,
    flip,
    int_pair,
    pad,
    undilate,
)
from engine.ops.pooling import AvgPool, AvgPoolGrad, MaxPool, MaxPoolGrad, avg_pool2d, max_pool2d
from tests.devices import DEVICE_PARAMS
from tests.op_check import REFERENCE, check_op


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference_conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """float64 NHWC convolution: one matmul per (group, kernel offset), never a loop over pixels."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, h, wd, c = x.shape
    kh, kw, c_group, k = w.shape
    k_group = k // groups
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, k))
    for g in range(groups):
        ins, outs = slice(g * c_group, (g + 1) * c_group), slice(g * k_group, (g + 1) * k_group)
        for r in range(kh):
            for s in range(kw):
                patch = x[:, r * dh: r * dh + sh * (oh - 1) + 1: sh,
                          s * dw: s * dw + sw * (ow - 1) + 1: sw, ins]
                out[..., outs] += patch @ w[r, s, :, outs]
    return out


def reference_pool(x, kernel, stride, padding, reduce):
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    fill = -np.inf if reduce is np.maximum else 0.0
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=fill)
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = None
    for r in range(kh):
        for s in range(kw):
            window = x[:, r: r + sh * (oh - 1) + 1: sh, s: s + sw * (ow - 1) + 1: sw]
            out = window if out is None else reduce(out, window)
    return out if reduce is np.maximum else out / (kh * kw)


# (input NHWC, weight (kh, kw, c/groups, k), stride, padding, dilation, groups)
FORWARD_CASES = [
    ((2, 5, 5, 3), (3, 3, 3, 4), 1, 1, 1, 1),
    ((2, 4, 6, 3), (1, 1, 3, 5), 1, 0, 1, 1),
    ((1, 5, 7, 4), (1, 1, 4, 2), 2, 0, 1, 1),
    ((2, 6, 5, 2), (2, 2, 2, 3), 1, 0, 1, 1),
    ((1, 7, 6, 2), (4, 4, 2, 3), 2, 1, 1, 1),
    ((1, 9, 5, 3), (3, 3, 3, 2), 2, 1, 1, 1),
    ((1, 8, 8, 2), (3, 3, 2, 2), 3, 0, 1, 1),
    ((2, 9, 8, 2), (3, 3, 2, 3), 1, 2, 2, 1),
    ((1, 10, 7, 3), (3, 2, 3, 2), (2, 3), (1, 0), (2, 3), 1),
    ((2, 5, 5, 4), (3, 3, 2, 6), 1, 1, 1, 2),
    ((1, 6, 6, 3), (3, 3, 1, 3), 1, 1, 1, 3),
    ((2, 8, 7, 6), (3, 3, 2, 6), 2, 2, 2, 3),
    ((1, 3, 3, 2), (5, 5, 2, 1), 1, 1, 1, 1),
    ((3, 12, 10, 8), (3, 3, 8, 16), 1, 1, 1, 1),
]


def _case_id(case):
    x, w, s, p, d, g = case
    return f"x{x}-w{w}-s{s}-p{p}-d{d}-g{g}".replace(" ", "")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=_case_id)
def test_conv_forward_matches_reference(case, device):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = reference_conv(x, w, stride, padding, dilation, groups)
    dtype = "float64" if device == REFERENCE else "float32"
    out = conv(ndl.Tensor(x, device=device, dtype=dtype), ndl.Tensor(w, device=device, dtype=dtype),
               stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert out.shape == expected.shape
    tol = 1e-10 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol)


# Small enough that central differences (two forwards per input element) stay fast.
GRAD_CASES = [
    ((1, 4, 4, 2), (3, 3, 2, 2), 1, 1, 1, 1),
    ((2, 3, 4, 1), (1, 1, 1, 2), 1, 0, 1, 1),
    ((1, 5, 4, 2), (2, 2, 2, 1), 2, 1, 1, 1),
    ((1, 6, 5, 1), (2, 2, 1, 2), 2, 0, 2, 1),
    ((1, 5, 5, 2), (3, 2, 2, 1), (2, 1), (0, 1), (1, 2), 1),
    ((1, 4, 4, 4), (3, 3, 2, 2), 1, 1, 1, 2),
    ((1, 5, 4, 2), (2, 2, 1, 4), 3, 1, 1, 2),
]


def _conv_fn(stride, padding, dilation, groups):
    return (lambda a, b: conv(a, b, stride, padding, dilation, groups),
            lambda x, w: reference_conv(x, w, stride, padding, dilation, groups))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_conv_gradients(case, device):
    x_shape, w_shape, *params = case
    fn, ref = _conv_fn(*params)
    check_op(fn, ref, x_shape, w_shape, device=device, atol=2e-4)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("permuted", "sliced"))
def test_conv_on_strided_views(view, device):
    fn, ref = _conv_fn(2, 1, 1, 1)
    check_op(fn, ref, (1, 4, 5, 2), (2, 3, 2, 2), device=device, view=view, atol=2e-4)


SECOND_ORDER_CASES = [GRAD_CASES[0], GRAD_CASES[4], GRAD_CASES[6]]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", SECOND_ORDER_CASES, ids=_case_id)
def test_conv_adjoint_ops_are_differentiable(case, device):
    # <grad_w, v> and <grad_x, v> as functions of everything they depend on: their own
    # gradients are the second-order terms of conv.
    x_shape, w_shape, *args = case
    params = ConvParams.make(*args)
    y_shape = reference_conv(np.zeros(x_shape), np.zeros(w_shape), *args).shape
    check_op(lambda x, gy, v: (ConvBackwardWeight(params, w_shape)(x, gy) * v).sum(),
             lambda x, gy, v: _reference_grad_weight(x, gy, v, w_shape, args),
             x_shape, y_shape, w_shape, device=device, atol=2e-4)
    check_op(lambda gy, w, v: (ConvBackwardInput(params, x_shape)(gy, w) * v).sum(),
             lambda gy, w, v: (gy * reference_conv(v, w, *args)).sum(),
             y_shape, w_shape, x_shape, device=device, atol=2e-4)


def _reference_grad_weight(x, gy, v, w_shape, args):
    # <d<conv(x, w), gy>/dw, v> = <conv(x, v), gy> because conv is linear in w.
    return (reference_conv(x, v, *args) * gy).sum()


def test_conv_double_backward_through_autograd():
    """h(x) = <dL/dw, v> with L = sum(conv(x, w)^2) / 2, differentiated by a second backward
    and compared with central differences of h."""
    rng = np.random.default_rng(3)
    x0, w0 = rng.standard_normal((1, 4, 5, 2)), rng.standard_normal((2, 3, 2, 3))
    v = rng.standard_normal(w0.shape)

    def h(x_data, want_grad):
        x = ndl.Tensor(x_data, device=REFERENCE, dtype="float64", requires_grad=want_grad)
        w = ndl.Tensor(w0, device=REFERENCE, dtype="float64")
        loss = (conv(x, w, stride=(1, 2), padding=1) ** 2).sum() / 2
        loss.backward()
        value = (w.grad * ndl.Tensor(v, device=REFERENCE, dtype="float64",
                                     requires_grad=False)).sum()
        return x, value

    x, value = h(x0, True)
    x.grad = None
    value.backward()
    numeric = np.zeros_like(x0)
    eps = 1e-6
    for i in range(x0.size):
        bumped = [x0.copy(), x0.copy()]
        bumped[0].reshape(-1)[i] += eps
        bumped[1].reshape(-1)[i] -= eps
        plus, minus = (h(b, False)[1].item() for b in bumped)
        numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-6, atol=1e-7)


def _dilate_reference(x, axes, d):
    shape = tuple(n * (d + 1) if i in axes else n for i, n in enumerate(x.shape))
    out = np.zeros(shape)
    out[tuple(slice(None, None, d + 1) if i in axes else slice(None)
              for i in range(x.ndim))] = x
    return out


SPATIAL_OPS = [
    ("flip_02", lambda a: flip(a, (0, 2)), lambda x: np.flip(x, (0, 2)), (2, 3, 4)),
    ("flip_neg", lambda a: flip(a, (-1,)), lambda x: np.flip(x, -1), (3, 4)),
    ("dilate_1", lambda a: dilate(a, (1,), 2), lambda x: _dilate_reference(x, (1,), 2), (3, 4)),
    ("dilate_01", lambda a: dilate(a, (0, 1), 1), lambda x: _dilate_reference(x, (0, 1), 1),
     (2, 3)),
    ("dilate_0_identity", lambda a: dilate(a, (0,), 0), lambda x: x, (3, 2)),
    ("undilate_1", lambda a: undilate(a, (1,), 1), lambda x: x[:, ::2], (3, 5)),
    ("undilate_02", lambda a: undilate(a, (0, 2), 2), lambda x: x[::3, :, ::3], (4, 2, 7)),
    ("pad", lambda a: pad(a, ((1, 2), (0, 3))), lambda x: np.pad(x, ((1, 2), (0, 3))), (2, 3)),
    ("pad_value", lambda a: pad(a, ((0, 0), (2, 1), (1, 1)), value=-1.5),
     lambda x: np.pad(x, ((0, 0), (2, 1), (1, 1)), constant_values=-1.5), (2, 2, 3)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name,fn,ref,shape", SPATIAL_OPS, ids=[s[0] for s in SPATIAL_OPS])
def test_spatial_op(name, fn, ref, shape, device):
    check_op(fn, ref, shape, device=device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_spatial_op_output_values(device):
    a = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    np.testing.assert_array_equal(dilate(a, (0, 1), 1).numpy(),
                                  [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(dilate(a, (1,), 2).numpy(),
                                  [[1, 0, 0, 2, 0, 0], [3, 0, 0, 4, 0, 0]])
    np.testing.assert_array_equal(undilate(dilate(a, (0, 1), 2), (0, 1), 2).numpy(), a.numpy())
    np.testing.assert_array_equal(flip(a, (0, 1)).numpy(), [[4, 3], [2, 1]])
    np.testing.assert_array_equal(pad(a, ((1, 0), (0, 1))).numpy(),
                                  [[0, 0, 0], [1, 2, 0], [3, 4, 0]])


POOLS = [
    # (input NHWC, kernel, stride, padding)
    ((1, 4, 4, 2), 2, 2, 0),
    ((2, 5, 4, 1), 3, 2, 1),
    ((1, 3, 5, 2), (2, 3), 1, 0),
    ((1, 6, 5, 1), 2, (3, 2), (1, 0)),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", POOLS, ids=[str(p) for p in POOLS])
@pytest.mark.parametrize("kind", ("max", "avg"))
def test_pooling(kind, case, device):
    shape, kernel, stride, padding = case
    pool = max_pool2d if kind == "max" else avg_pool2d
    reduce = np.maximum if kind == "max" else np.add
    check_op(lambda a: pool(a, kernel, stride, padding),
             lambda x: reference_pool(x, kernel, stride, padding, reduce), shape, device=device)


def test_pool_stride_defaults_to_kernel():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    out = max_pool2d(ndl.Tensor(x, device=REFERENCE, dtype="float64"), 2)
    np.testing.assert_array_equal(out.numpy()[0, :, :, 0], [[5, 7], [13, 15]])
    out = avg_pool2d(ndl.Tensor(x, device=REFERENCE, dtype="float64"), 2)
    np.testing.assert_array_equal(out.numpy()[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_avg_pool_is_twice_differentiable():
    check_op(lambda a: (avg_pool2d(a, 3, 2, 1) ** 2).sum(),
             lambda x: (reference_pool(x, 3, 2, 1, np.add) ** 2).sum(), (1, 5, 5, 1))



@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", POOLS, ids=[str(p) for p in POOLS])
def test_max_pool_gradient_op_and_its_own_gradient(case, device):
    # The gradient op is linear in the cotangent; its own gradient gathers each window's winners.
    shape, kernel, stride, padding = case
    x = np.random.default_rng(5).integers(0, 3, shape).astype(np.float64)  # many ties
    forward = MaxPool(int_pair(kernel, "k", 1), int_pair(stride, "s", 1), int_pair(padding, "p", 0))
    out = spec_max_pool(x, forward)

    def gradient_op(gy):
        x_data = ndl.NDArray(x, device=gy.device, dtype=gy.dtype)
        return MaxPoolGrad(forward, x_data, forward.compute(x_data))(gy)

    def reference(gy):
        gx = np.empty(x.size)
        spec.max_pool2d_backward(x.reshape(-1), out.reshape(-1), gy.reshape(-1), gx, *shape,
                                 *forward.kernel, *out.shape[1:3], *forward.stride,
                                 *forward.padding)
        return gx.reshape(shape)

    check_op(gradient_op, reference, out.shape, device=device)


def spec_max_pool(x, forward):
    """The numpy spec's max pooling of float64 NHWC x with MaxPool `forward`'s sizes."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = forward.kernel, forward.stride, forward.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty(n * oh * ow * c)
    spec.max_pool2d_forward(x.reshape(-1), out, n, h, w, c, kh, kw, oh, ow, sh, sw, ph, pw)
    return out.reshape(n, oh, ow, c)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_max_pool_shares_ties_and_spends_one_kernel_each_way(device):
    x = ndl.Tensor(np.array([[[[1.0], [1.0]], [[1.0], [0.0]]]]), device=device)
    with count_launches(device) as launches:
        out = max_pool2d(x, 2)
        out.backward(ndl.Tensor(np.array([[[[6.0]]]]), device=device))
    assert dict(launches) == {"max_pool2d_forward": 1, "max_pool2d_backward": 1}
    np.testing.assert_array_equal(x.grad.numpy()[0, :, :, 0], [[2.0, 2.0], [2.0, 0.0]])

def _tensor(shape):
    return ndl.Tensor(np.zeros(shape), device=REFERENCE, dtype="float64")


BAD_CONVS = [
    ((1, 5, 5, 3), (3, 3, 2, 4), {}, r"channel mismatch.*\(1, 5, 5, 3\).*\(3, 3, 2, 4\)"),
    ((1, 3, 3, 2), (5, 5, 2, 2), {}, r"larger than the padded input 3x3 .*\(1, 3, 3, 2\)"),
    ((1, 4, 4, 2), (3, 3, 2, 2), {"dilation": 2},
     r"kernel extent 5x5 .* dilation \(2, 2\)\) is larger than the padded input 4x4"),
    ((1, 5, 5, 3), (3, 3, 1, 4), {"groups": 2}, r"groups=2 must divide the input channels 3"),
    ((1, 5, 5, 4), (3, 3, 2, 3), {"groups": 2}, r"output channels 3 \(weight shape \(3, 3, 2, 3"),
    ((5, 5, 3), (3, 3, 3, 4), {}, r"input must be NHWC of rank 4, got shape \(5, 5, 3\)"),
    ((1, 5, 5, 3), (3, 3, 3), {}, r"weight must be .* rank 4, got shape \(3, 3, 3\)"),
    ((1, 5, 5, 3), (3, 3, 3, 4), {"stride": 0}, r"stride must be >= 1"),
    ((1, 5, 5, 3), (3, 3, 3, 4), {"padding": -1}, r"padding must be >= 0"),
    ((1, 5, 5, 3), (3, 3, 3, 4), {"groups": 0}, r"groups must be an integer >= 1"),
    ((1, 5, 5, 3), (3, 3, 3, 4), {"stride": 1.5}, r"stride must be an int or a pair"),
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs,message", BAD_CONVS,
                         ids=[b[3][:30] for b in BAD_CONVS])
def test_conv_rejects_bad_input(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv(_tensor(x_shape), _tensor(w_shape), **kwargs)


def test_other_ops_reject_bad_input():
    with pytest.raises(ValueError, match=r"dilation must be an integer >= 0"):
        dilate(_tensor((2, 2)), (0,), -1)
    with pytest.raises(ValueError, match=r"axis 2 out of range for a tensor of rank 2"):
        undilate(_tensor((2, 2)), (2,), 1)
    with pytest.raises(ValueError, match=r"pad: need one non-negative .* shape \(2, 2\)"):
        pad(_tensor((2, 2)), ((1, 1),))
    with pytest.raises(ValueError, match=r"max_pool2d: input must be NHWC .* \(4, 4, 1\)"):
        max_pool2d(_tensor((4, 4, 1)), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(5, 5\) is larger than the padded"):
        avg_pool2d(_tensor((1, 4, 4, 1)), 5, padding=0)
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half the kernel"):
        max_pool2d(_tensor((1, 4, 4, 1)), 3, padding=2)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_max_pool_second_derivative_ignores_padding_at_minus_infinity(device):
    # Every element -inf: padding (outside x) must not count as a tie. Each 3x3 window with
    # padding 1 covers the whole 2x2 input, so each gathers the mean of the cotangent.
    forward = MaxPool((3, 3), (1, 1), (1, 1))
    x = ndl.NDArray(np.full((1, 2, 2, 1), -np.inf), device=device)
    out = forward.compute(x)
    gy = ndl.Tensor(np.zeros((1, 2, 2, 1)), device=device, requires_grad=True)
    gx = MaxPoolGrad(forward, x, out)(gy)
    gx.backward(ndl.Tensor(np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 2, 1), device=device))
    np.testing.assert_allclose(gy.grad.numpy().reshape(-1), [3.0] * 4)


@pytest.mark.parametrize("kernel, stride, padding, message", [
    ((2, 2), (0, 2), (0, 0), "stride"),
    ((5, 5), (1, 1), (0, 0), "no larger than the padded input"),
    ((2, 2), (2, 2), (2, 0), "padding"),
])
def test_backend_max_pool_rejects_bad_geometry(kernel, stride, padding, message):
    from engine.backend.pooling import max_pool2d as pool_array

    x = ndl.NDArray(np.zeros((1, 4, 4, 1)), device=REFERENCE)
    with pytest.raises(ValueError, match=message):
        pool_array(x, kernel, stride, padding)


def test_backend_max_pool_grad_rejects_an_output_of_another_shape():
    from engine.backend.pooling import max_pool2d_grad

    x = ndl.NDArray(np.zeros((1, 4, 4, 2)), device=REFERENCE)
    wrong = ndl.NDArray(np.zeros((1, 3, 3, 2)), device=REFERENCE)
    with pytest.raises(ValueError, match=r"output \(1, 3, 3, 2\) does not match"):
        max_pool2d_grad(x, wrong, wrong, (2, 2), (2, 2), (0, 0))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", POOLS, ids=[str(p) for p in POOLS])
def test_avg_pool_gradient_op_and_its_own_gradient(case, device):
    # Linear in the cotangent, and the adjoint of the forward, which is its gradient.
    shape, kernel, stride, padding = case
    forward = AvgPool(int_pair(kernel, "k", 1), int_pair(stride, "s", 1), int_pair(padding, "p", 0))
    pooled = reference_pool(np.zeros(shape), kernel, stride, padding, np.add).shape

    def reference(gy):
        gx = np.empty(int(np.prod(shape)))
        spec.avg_pool2d_backward(gy.reshape(-1), gx, *shape, *forward.kernel, *pooled[1:3],
                                 *forward.stride, *forward.padding)
        return gx.reshape(shape)

    check_op(lambda gy: AvgPoolGrad(forward, shape)(gy), reference, pooled, device=device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_avg_pool_spends_one_kernel_each_way(device):
    x = ndl.Tensor(np.arange(16.0).reshape(1, 4, 4, 1), device=device)
    with count_launches(device) as launches:
        out = avg_pool2d(x, 2)
        out.backward(ndl.Tensor(np.full((1, 2, 2, 1), 4.0), device=device))
    assert dict(launches) == {"avg_pool2d_forward": 1, "avg_pool2d_backward": 1}
    np.testing.assert_array_equal(out.numpy()[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((1, 4, 4, 1)))
