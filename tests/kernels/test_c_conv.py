"""The C convolution kernels (im2col/col2im + sgemm) against their naive twins and the float64
numpy reference (engine/backend/numpy_conv.py). Kernel layer tests over strides, paddings,
dilations, groups, 1x1 and even kernels, batch 1, non-square images, 1 and 2 threads, for both the
im2col path and the direct path for few input channels.
"""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_conv
from kernels_c import KernelError, load

LIB = load()
PASSES = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")

# n, h, w, c, k, (kh, kw), stride, padding, dilation, groups
CASES = [
    (2, 7, 5, 3, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 8, 8, 4, 6, (3, 3), (2, 2), (1, 1), (1, 1), 2),
    (3, 9, 6, 6, 6, (2, 2), (1, 1), (0, 0), (1, 1), 3),
    (2, 5, 5, 8, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (2, 6, 7, 4, 4, (1, 1), (2, 2), (0, 0), (1, 1), 1),
    (1, 10, 9, 3, 5, (3, 2), (2, 1), (1, 2), (2, 1), 1),
    (2, 4, 4, 2, 2, (5, 5), (1, 1), (2, 2), (1, 1), 1),
    (1, 3, 3, 1, 1, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    (2, 6, 6, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 4),
    (3, 11, 13, 5, 7, (4, 3), (3, 2), (2, 0), (1, 2), 1),
    (2, 20, 20, 64, 8, (5, 5), (1, 1), (2, 2), (1, 1), 1),
]
# Few input values per output pixel (c*kh*kw <= 32, groups 1): the direct path of conv_direct.c.
# k runs below, at and above multiples of 16 (the vector width) and 32 (two vectors), rows wider
# than its 128-pixel spans; 1x1 stride-1 unpadded (sgemm on x itself) and c*kh*kw = 33 stay on
# the im2col path.
DIRECT_CASES = [
    (2, 28, 28, 1, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 9, 7, 1, 5, (1, 1), (1, 1), (1, 0), (1, 1), 1),
    (3, 8, 10, 2, 17, (3, 3), (2, 2), (0, 0), (1, 1), 1),
    (2, 11, 9, 1, 33, (5, 5), (1, 1), (2, 2), (1, 1), 1),
    (1, 12, 13, 3, 7, (3, 3), (2, 1), (1, 2), (2, 2), 1),
    (2, 6, 9, 2, 16, (2, 4), (1, 2), (1, 0), (1, 1), 1),
    (1, 5, 5, 1, 1, (5, 5), (1, 1), (0, 0), (1, 1), 1),
    (4, 7, 6, 3, 12, (1, 1), (2, 2), (1, 1), (1, 1), 1),
    (1, 3, 140, 2, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 9, 9, 1, 48, (3, 3), (1, 1), (2, 2), (2, 2), 1),
    (2, 8, 8, 32, 16, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (1, 7, 7, 3, 8, (4, 4), (2, 2), (1, 1), (1, 1), 1),
    (2, 10, 10, 1, 64, (3, 2), (3, 3), (2, 1), (1, 3), 1),
    (2, 6, 6, 11, 4, (1, 3), (1, 1), (0, 1), (1, 1), 1),
]


def sizes_of(case):
    n, h, w, c, k, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups = case
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return (n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups)


def operands(case, seed):
    n, h, w, c, k, kh, kw, oh, ow, *_, groups = sizes_of(case)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n * h * w * c)
    weight = rng.uniform(-1, 1, kh * kw * (c // groups) * k)
    gy = rng.uniform(-1, 1, n * oh * ow * k)
    return {"x": x, "w": weight, "gy": gy}, (n * oh * ow * k, n * h * w * c, weight.size)


def inputs_of(name):
    return {"conv2d_forward": ("x", "w"), "conv2d_backward_input": ("gy", "w"),
            "conv2d_backward_weight": ("x", "gy")}[name]


@pytest.mark.parametrize("case", CASES + DIRECT_CASES,
                         ids=[f"case{i}" for i in range(len(CASES))]
                         + [f"direct{i}" for i in range(len(DIRECT_CASES))])
@pytest.mark.parametrize("name", PASSES)
def test_conv_matches_reference_and_naive(name, case, threads):
    sizes = sizes_of(case)
    data, out_sizes = operands(case, len(name) + sum(sizes))
    out_size = dict(zip(PASSES, out_sizes, strict=True))[name]
    first, second = (data[key] for key in inputs_of(name))
    expected = np.empty(out_size)
    getattr(numpy_conv, name)(first.astype(np.float32).astype(np.float64),
                              second.astype(np.float32).astype(np.float64), expected, *sizes)
    first32, second32 = (np.ascontiguousarray(v, np.float32) for v in (first, second))
    out = cpu.alloc(out_size)
    cpu.fill(out, np.nan, out_size)  # every output element must be written
    getattr(cpu, name)(first32, second32, out, *sizes)
    naive = np.full(out_size, np.nan, np.float32)
    status = getattr(LIB, f"nd_{name}_naive_f32")(first32.ctypes.data, second32.ctypes.data,
                                                  naive.ctypes.data, *sizes)
    assert status == 0
    reduction = max(out_sizes) // max(out_size, 1) * 9 + 64
    tolerance = 2e-6 * np.sqrt(reduction)
    np.testing.assert_allclose(np.asarray(out)[:out_size], expected, rtol=1e-5, atol=tolerance)
    np.testing.assert_allclose(naive, expected, rtol=1e-5, atol=tolerance)


def test_numpy_reference_matches_direct_formula():
    """The numpy reference itself against the index formula of the protocol, pixel by pixel."""
    case = (1, 5, 4, 4, 2, (2, 3), (2, 1), (1, 1), (2, 1), 2)
    n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups = sizes = sizes_of(case)
    data, _ = operands(case, 0)
    x, weight = data["x"].reshape(n, h, w, c), data["w"].reshape(kh, kw, c // groups, k)
    y = np.empty(n * oh * ow * k)
    numpy_conv.conv2d_forward(data["x"], data["w"], y, *sizes)
    cg, kg = c // groups, k // groups
    expected = np.zeros((n, oh, ow, k))
    for oy in range(oh):
        for ox in range(ow):
            for o in range(k):
                g = o // kg
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
                        if 0 <= iy < h and 0 <= ix < w:
                            expected[0, oy, ox, o] += x[0, iy, ix, g * cg:(g + 1) * cg] @ \
                                weight[ky, kx, :, o]
    np.testing.assert_allclose(y.reshape(n, oh, ow, k), expected, rtol=1e-12, atol=1e-12)


def test_conv_bad_input_raises():
    x, w, y = cpu.alloc(2 * 5 * 5 * 4), cpu.alloc(3 * 3 * 4 * 6), cpu.alloc(2 * 5 * 5 * 6)
    good = (2, 5, 5, 4, 6, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1, 1)
    cpu.conv2d_forward(x, w, y, *good)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        cpu.conv2d_forward(x, w, y, *good[:-1], 3)
    with pytest.raises(KernelError, match="sizes"):  # output size not matching the geometry
        cpu.conv2d_forward(x, w, y, 2, 5, 5, 4, 6, 3, 3, 4, 5, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(KernelError, match="sizes"):  # kernel larger than the padded input
        cpu.conv2d_forward(x, cpu.alloc(7 * 7 * 4 * 6), y, 2, 5, 5, 4, 6, 7, 7, 1, 1, 1, 1, 0, 0,
                           1, 1, 1)
    with pytest.raises(ValueError, match="needs 300 elements"):
        cpu.conv2d_forward(x, w, cpu.alloc(10), *good)
    with pytest.raises(ValueError, match="does not match"):
        numpy_conv.conv2d_forward(np.zeros(200), np.zeros(216), np.zeros(300), 2, 5, 5, 4, 6, 3,
                                  3, 4, 5, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        numpy_conv.conv2d_forward(np.zeros(200), np.zeros(7 * 7 * 24), np.zeros(300), 2, 5, 5, 4,
                                  6, 7, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1)


@pytest.mark.parametrize("case", [DIRECT_CASES[0], DIRECT_CASES[8], CASES[0]],
                         ids=["direct-mnist", "direct-wide", "im2col"])
def test_conv_weight_gradient_is_repeatable(case, threads):
    """Per-thread partial sums are added in a fixed order: same inputs, same bits, every call."""
    sizes = sizes_of(case)
    data, (_, _, gw_size) = operands(case, 1)
    x, gy = (np.ascontiguousarray(data[key], np.float32) for key in ("x", "gy"))
    results = []
    for _ in range(3):
        gw = cpu.alloc(gw_size)
        cpu.conv2d_backward_weight(x, gy, gw, *sizes)
        results.append(np.asarray(gw)[:gw_size].copy())
    assert np.isfinite(results[0]).all()
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
