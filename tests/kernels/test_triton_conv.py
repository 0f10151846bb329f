"""Triton implicit-GEMM convolution kernels (kernel layer) through the cuda device: forward, input
gradient and weight gradient over a grid of shapes, strides, paddings, dilations and groups, against
a float64 numpy reference defined here (checked itself by the adjoint identity), and bad sizes.
"""

import numpy as np
import pytest

from tests.kernels.triton_support import as_read_by_tensor_cores, round_to_tf32, triton_marks

pytestmark = triton_marks()


RNG = np.random.default_rng(3)

# n, h, w, c, k, (kh, kw), (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w), groups
CASES = [
    (1, 5, 5, 3, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 7, 6, 4, 6, (3, 3), (2, 2), (1, 1), (1, 1), 2),
    (2, 6, 7, 4, 4, (2, 2), (1, 1), (0, 0), (1, 1), 1),
    (1, 8, 8, 2, 3, (3, 3), (1, 1), (2, 2), (2, 2), 1),
    (2, 5, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 3),
    (1, 9, 7, 3, 5, (3, 2), (3, 2), (1, 0), (2, 1), 1),
    (2, 5, 5, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 4),
    (2, 4, 4, 17, 18, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 7, 9, 2, 3, (3, 3), (2, 1), (0, 1), (1, 2), 1),
    (1, 3, 3, 1, 1, (3, 3), (1, 1), (0, 0), (1, 1), 1),
]


def _output_size(size, kernel, stride, pad, dil):
    return (size + 2 * pad - dil * (kernel - 1) - 1) // stride + 1


def _taps(shape, kernel, stride, pad, dil):
    """For each kernel tap (r, s): slices of the padded input that the tap reads."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dil
    oh = _output_size(shape[1], kh, sh, pad[0], dh)
    ow = _output_size(shape[2], kw, sw, pad[1], dw)
    for r in range(kh):
        for s in range(kw):
            yield r, s, (slice(None), slice(r * dh, r * dh + sh * (oh - 1) + 1, sh),
                         slice(s * dw, s * dw + sw * (ow - 1) + 1, sw))


def reference_conv(x, w, stride, pad, dil, groups):
    """Forward, float64: x (N, H, W, C), w (KH, KW, C/groups, K) -> (N, OH, OW, K)."""
    n, _, _, c = x.shape
    kh, kw, cg, k = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad[0],) * 2, (pad[1],) * 2, (0, 0)))
    out = None
    for r, s, window in _taps(x.shape, (kh, kw), stride, pad, dil):
        patch = xp[window].reshape(*xp[window].shape[:3], groups, cg)
        tap = w[r, s].astype(np.float64).reshape(cg, groups, k // groups)
        term = np.einsum("nhwgc,cgk->nhwgk", patch, tap)
        out = term if out is None else out + term
    return out.reshape(*out.shape[:3], k)


def reference_grads(x, w, gy, stride, pad, dil, groups):
    """(gx, gw) of sum(conv(x, w) * gy), float64."""
    kh, kw, cg, k = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad[0],) * 2, (pad[1],) * 2, (0, 0)))
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape)
    g = gy.astype(np.float64).reshape(*gy.shape[:3], groups, k // groups)
    for r, s, window in _taps(x.shape, (kh, kw), stride, pad, dil):
        patch = xp[window].reshape(*xp[window].shape[:3], groups, cg)
        tap = w[r, s].astype(np.float64).reshape(cg, groups, k // groups)
        gxp[window] += np.einsum("nhwgk,cgk->nhwgc", g, tap).reshape(gxp[window].shape)
        gw[r, s] = np.einsum("nhwgc,nhwgk->cgk", patch, g).reshape(cg, k)
    gx = gxp[:, pad[0]:pad[0] + x.shape[1], pad[1]:pad[1] + x.shape[2]]
    return gx, gw


def _problem(case):
    n, h, w_, c, k, kernel, stride, pad, dil, groups = case
    oh = _output_size(h, kernel[0], stride[0], pad[0], dil[0])
    ow = _output_size(w_, kernel[1], stride[1], pad[1], dil[1])
    x = RNG.standard_normal((n, h, w_, c)).astype(np.float32)
    w = RNG.standard_normal((*kernel, c // groups, k)).astype(np.float32)
    gy = RNG.standard_normal((n, oh, ow, k)).astype(np.float32)
    sizes = (n, h, w_, c, k, *kernel, oh, ow, *stride, *pad, *dil, groups)
    return x, w, gy, sizes


def _upload(cuda, host):
    handle = cuda.alloc(host.size)
    cuda.from_numpy(host, handle)
    return handle


def _download(cuda, handle, shape):
    return cuda.to_numpy(handle, shape, tuple(int(np.prod(shape[i + 1:])) for i in
                                              range(len(shape))), 0)


def test_reference_is_adjoint():
    x, w, gy, _ = _problem(CASES[1])
    args = ((2, 2), (1, 1), (1, 1), 2)
    gx, gw = reference_grads(x, w, gy, *args)
    forward = np.sum(reference_conv(x, w, *args) * gy)
    assert np.isclose(forward, np.sum(gx * x)) and np.isclose(forward, np.sum(gw * w))


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv_passes(cuda, case):
    x, w, gy, sizes = _problem(case)
    n, h, w_, c, k, kh, kw, oh, ow, *_ = sizes
    _, _, _, _, _, _, stride, pad, dil, groups = case
    expected = reference_conv(x, w, stride, pad, dil, groups)
    gx_expected, gw_expected = reference_grads(x, w, gy, stride, pad, dil, groups)
    hx, hw, hgy = _upload(cuda, x), _upload(cuda, w), _upload(cuda, gy)

    out = cuda.alloc(n * oh * ow * k)
    cuda.conv2d_forward(hx, hw, out, *sizes)
    np.testing.assert_allclose(_download(cuda, out, (n, oh, ow, k)), expected, rtol=1e-4,
                               atol=1e-4)
    gx = cuda.alloc(x.size)
    cuda.fill(gx, np.nan, x.size)  # every element must be overwritten
    cuda.conv2d_backward_input(hgy, hw, gx, *sizes)
    np.testing.assert_allclose(_download(cuda, gx, x.shape), gx_expected, rtol=1e-4, atol=1e-4)
    gw = cuda.alloc(w.size)
    cuda.fill(gw, np.nan, w.size)
    cuda.conv2d_backward_weight(hx, hgy, gw, *sizes)
    np.testing.assert_allclose(_download(cuda, gw, w.shape), gw_expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("splits,x_major,gy_major", [(2, False, False), (3, True, False),
                                                     (7, False, True), (3, True, True),
                                                     (37, False, False)])
def test_weight_grad_split_reduction(cuda, splits, x_major, gy_major):
    """Split reductions, with x and gy each NHWC or channel-major (c or k, n, h, w); the slices
    are summed in chunks (4 slices under the interpreter, 32 on a GPU), so 7 and 37 slices end in
    a partial chunk."""
    from kernels_triton import conv

    case = CASES[1]
    x, w, gy, sizes = _problem(case)
    _, _, _, _, _, _, stride, pad, dil, groups = case
    _, gw_expected = reference_grads(x, w, gy, stride, pad, dil, groups)
    gw, workspace = cuda.alloc(w.size), cuda.alloc(splits * w.size)
    hx = _upload(cuda, np.moveaxis(x, 3, 0).copy() if x_major else x)
    hgy = _upload(cuda, np.moveaxis(gy, 3, 0).copy() if gy_major else gy)
    conv.conv2d_backward_weight(hx, hgy, gw, *sizes, splits=splits, workspace=workspace,
                                x_channel_major=x_major, gy_channel_major=gy_major)
    np.testing.assert_allclose(_download(cuda, gw, w.shape), gw_expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="workspace"):
        conv.conv2d_backward_weight(_upload(cuda, x), _upload(cuda, gy), gw, *sizes, splits=2)


@pytest.fixture
def relayouts(monkeypatch):
    """Counts the operand copies the cuda device makes (so staged tests know staging ran)."""
    from engine.backend import cuda_staging

    calls = []
    real = cuda_staging.relayout

    def counting(*args, **kwargs):
        calls.append(args[2:5])
        return real(*args, **kwargs)

    monkeypatch.setattr(cuda_staging, "relayout", counting)
    return calls


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[7]], ids=["groups", "odd", "c17"])
def test_staged_tensor_core_operands(cuda, case, relayouts):
    """TF32 with staging forced: K-major weights in the forward, channel-major activations in the
    weight gradient, each copy rounded to nearest TF32. The results are, up to fp32 summation, the
    float64 reference on the operands as the tensor cores read them (copies rounded, the rest cut
    to TF32 on a GPU), and the rounding shows: the unrounded reference lies outside."""
    x, w, gy, sizes = _problem(case)
    n, h, w_, c, k, kh, kw, oh, ow, *_ = sizes
    _, _, _, _, _, _, stride, pad, dil, groups = case
    hx, hw, hgy = _upload(cuda, x), _upload(cuda, w), _upload(cuda, gy)
    out, gw = cuda.alloc(n * oh * ow * k), cuda.alloc(w.size)
    cuda.set_matmul_precision("tf32")
    cuda.set_operand_staging("always")
    cuda.conv2d_forward(hx, hw, out, *sizes)
    cuda.conv2d_backward_weight(hx, hgy, gw, *sizes)
    assert len(relayouts) == 3  # w for the forward; x and gy for the weight gradient
    expected = reference_conv(as_read_by_tensor_cores(x, False), round_to_tf32(w), stride, pad,
                              dil, groups)
    _, gw_expected = reference_grads(round_to_tf32(x), w, round_to_tf32(gy), stride, pad, dil,
                                     groups)
    _, gw_unrounded = reference_grads(x, w, gy, stride, pad, dil, groups)
    cases = ((_download(cuda, out, (n, oh, ow, k)), expected,
              reference_conv(x, w, stride, pad, dil, groups), kh * kw * c // groups),
             (_download(cuda, gw, w.shape), gw_expected, gw_unrounded, n * oh * ow))
    for got, want, unrounded, terms in cases:
        tolerance = {"rtol": 1e-5, "atol": 4e-5 * np.sqrt(terms)}
        np.testing.assert_allclose(got, want, **tolerance)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(unrounded, want, **tolerance)


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[7]], ids=["groups", "odd", "c17"])
def test_staged_fma_input_grad(cuda, case, relayouts):
    """IEEE with staging forced: the input gradient reads weights as (kh, kw, k, c/groups)."""
    x, w, gy, sizes = _problem(case)
    _, _, _, _, _, _, stride, pad, dil, groups = case
    gx_expected, _ = reference_grads(x, w, gy, stride, pad, dil, groups)
    gx = cuda.alloc(x.size)
    cuda.set_operand_staging("always")
    try:
        cuda.conv2d_backward_input(_upload(cuda, gy), _upload(cuda, w), gx, *sizes)
    finally:
        cuda.set_operand_staging("auto")
    assert len(relayouts) == 1
    np.testing.assert_allclose(_download(cuda, gx, x.shape), gx_expected, rtol=1e-4, atol=1e-4)


def test_staging_reports_bad_input_as_the_pass(cuda):
    """Checks run before any operand copy: errors name the pass the caller used."""
    x, w, out = cuda.alloc(100), cuda.alloc(10), cuda.alloc(100)
    sizes = (1, 4, 4, 1, 3, 3, 3, 4, 4, 1, 1, 1, 1, 1, 1, 1)
    cuda.set_operand_staging("always")
    try:
        for precision, call, match in (
                ("tf32", cuda.conv2d_forward, "conv2d_forward w"),
                ("ieee", cuda.conv2d_backward_input, "conv2d_backward_input w"),
                ("tf32", cuda.conv2d_backward_weight, "conv2d_backward_weight gy")):
            cuda.set_matmul_precision(precision)
            with pytest.raises(ValueError, match=match):
                call(x, w, out, *sizes)
            with pytest.raises(ValueError, match="groups=2 must divide"):
                call(x, w, out, *sizes[:-1], 2)
    finally:
        cuda.set_operand_staging("auto")
        cuda.set_matmul_precision("ieee")


def test_weight_grad_is_checked_once_per_launch(cuda, monkeypatch):
    """The launcher called on its own checks its buffers; through the device, which checks before
    it sizes the workspace, the check runs once."""
    from kernels_triton import conv

    sizes = (1, 4, 4, 1, 1, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1)
    x, gy = cuda.alloc(16), cuda.alloc(4)
    with pytest.raises(ValueError, match="gw: buffer holds 8 elements, 9 needed"):
        conv.conv2d_backward_weight(x, gy, cuda.alloc(8), *sizes)
    checks = []
    real_check = conv.check_pass
    monkeypatch.setattr(conv, "check_pass", lambda *args: checks.append(args[0]) or
                        real_check(*args))
    cuda.conv2d_backward_weight(x, gy, cuda.alloc(9), *sizes)
    assert checks == ["weight"]


def test_weight_grad_splits_fill_one_wave():
    from kernels_triton import conv

    # The benchmark layer on an H100: 9 tap tiles, at most two programs per multiprocessor.
    splits = conv.weight_grad_splits(32, 16, 16, 64, 64, 3, 3, 1, 132)
    assert 9 * splits <= 2 * 132 < 9 * (splits + 1)
    # Few pixels: slices of at least 256 pixels each; huge tile grids: one slice.
    assert conv.weight_grad_splits(1, 4, 4, 64, 64, 3, 3, 1, 132) == 1
    assert conv.weight_grad_splits(8, 32, 32, 512, 512, 3, 3, 1, 132) == 1


def test_bad_sizes_raise(cuda):
    x, w, out = cuda.alloc(100), cuda.alloc(100), cuda.alloc(100)
    with pytest.raises(ValueError, match="groups=2 must divide input channels 3"):
        cuda.conv2d_forward(x, w, out, 1, 4, 4, 3, 4, 1, 1, 4, 4, 1, 1, 0, 0, 1, 1, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        cuda.conv2d_forward(x, w, out, 1, 2, 2, 1, 1, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="does not match"):
        cuda.conv2d_backward_input(x, w, out, 1, 4, 4, 1, 1, 3, 3, 4, 4, 1, 1, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="stride_h must be an int >= 1"):
        cuda.conv2d_backward_weight(x, w, out, 1, 4, 4, 1, 1, 3, 3, 2, 2, 0, 1, 0, 0, 1, 1, 1)
    # Pixel indices are int32 in the kernels: past the limit, an error, not wrapped indices.
    with pytest.raises(ValueError, match=r"n\*h\*w = 2147483648 is more than the 2147418112"):
        cuda.conv2d_forward(x, w, out, 2**15, 256, 256, 1, 1, 1, 1, 256, 256, 1, 1, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match=r"n\*oh\*ow = 2164293632 is more than"):
        cuda.conv2d_backward_weight(x, w, out, 2**15, 255, 255, 1, 1, 1, 1, 257, 257, 1, 1, 1, 1,
                                    1, 1, 1)
    # The input gradient's rows span the padded input: 2**30 + 1 rows of padding on each side
    # would wrap its int32 row arithmetic (few pixels, so only the extent check catches it).
    with pytest.raises(ValueError, match=r"h \+ 2\*pad_h = 3221225474 is more than"):
        cuda.conv2d_backward_input(x, w, out, 1, 2**30, 1, 1, 1, 1, 1, 3073, 1, 2**20, 1,
                                   2**30 + 1, 0, 1, 1, 1)
    with pytest.raises(ValueError, match=r"kh\*kw\*c/groups\*k = 2415919104 elements"):
        cuda.conv2d_forward(x, w, out, 1, 3, 3, 16384, 16384, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="holds 100 elements, 108 needed"):
        cuda.conv2d_forward(x, w, out, 3, 6, 6, 1, 3, 1, 1, 6, 6, 1, 1, 0, 0, 1, 1, 1)
