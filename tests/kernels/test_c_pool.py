"""Kernel layer tests: the C max pooling pair (kernels_c/pool.c via cpu_device_pool.py) against the
numpy spec bit for bit (disjoint and overlapping windows, padding, uncovered rows and columns, ties,
NaN and inf, empty sizes, 1 and 2 threads) and its errors for bad arguments."""

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from kernels_c import load
from tests.kernels.test_c_kernels import on_cpu

SENTINEL = 7.0
EXTRA = 3  # elements past each buffer's end that must keep the sentinel

# n, h, w, c, (kh, kw), (stride_h, stride_w), (pad_h, pad_w)
CASES = [
    (2, 8, 8, 16, (2, 2), (2, 2), (0, 0)),    # the common layer: disjoint, one pass
    (2, 7, 9, 5, (3, 3), (2, 2), (1, 1)),     # overlapping windows, padding on all sides
    (3, 6, 5, 3, (3, 2), (1, 1), (1, 0)),     # overlapping, padding on rows only
    (2, 5, 4, 3, (1, 1), (1, 1), (0, 0)),     # 1x1: the identity
    (2, 7, 9, 4, (2, 2), (2, 2), (0, 0)),     # the last row and column no window covers
    (1, 11, 10, 2, (2, 3), (3, 4), (1, 1)),   # stride > kernel: gaps between windows
    (2, 5, 6, 70, (2, 2), (2, 2), (1, 1)),    # channels past one 64-channel block, padded
    (1, 6, 7, 67, (3, 3), (1, 2), (1, 0)),    # the same, overlapping on rows only
    (1, 4, 4, 1, (4, 4), (1, 1), (2, 2)),     # windows much larger than the image
]
IDS = [f"{n}x{h}x{w}x{c}-k{k[0]}{k[1]}-s{s[0]}{s[1]}-p{p[0]}{p[1]}"
       for n, h, w, c, k, s, p in CASES]


def pool_sizes(n, h, w, c, kernel, stride, padding):
    oh = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    return (n, h, w, c, kernel[0], kernel[1], oh, ow, stride[0], stride[1], padding[0],
            padding[1])


def spec_pool(x, gy, sizes, out=None):
    """The spec's out (from x, unless given) and gx."""
    n, h, w, c, _, _, oh, ow = sizes[:8]
    if out is None:
        out = np.zeros(n * oh * ow * c, np.float32)
        spec.max_pool2d_forward(x, out, *sizes)
    gx = np.zeros(n * h * w * c, np.float32)
    spec.max_pool2d_backward(x, out, gy, gx, *sizes)
    return out, gx


def sentinel_buffer(size):
    handle = cpu.alloc(size + EXTRA)
    cpu.fill(handle, SENTINEL, size + EXTRA)
    return handle


def cpu_pool(x, gy, sizes, out=None):
    """The cpu device's out (from x, unless given) and gx, each checked to write nothing past its
    end."""
    n, h, w, c, _, _, oh, ow = sizes[:8]
    pooled, image = n * oh * ow * c, n * h * w * c
    if out is None:
        out_handle = sentinel_buffer(pooled)
        cpu.max_pool2d_forward(on_cpu(x), out_handle, *sizes)
        np.testing.assert_array_equal(np.asarray(out_handle)[pooled:], [SENTINEL] * EXTRA)
        out = np.asarray(out_handle)[:pooled].copy()
    gx_handle = sentinel_buffer(image)
    cpu.max_pool2d_backward(on_cpu(x), on_cpu(out), on_cpu(gy), gx_handle, *sizes)
    np.testing.assert_array_equal(np.asarray(gx_handle)[image:], [SENTINEL] * EXTRA)
    return out, np.asarray(gx_handle)[:image].copy()


def operands(sizes, seed, integers=False):
    n, h, w, c, _, _, oh, ow = sizes[:8]
    rng = np.random.default_rng(seed)
    if integers:  # three values only: windows full of ties
        x = rng.integers(-1, 2, n * h * w * c).astype(np.float32)
    else:
        x = rng.standard_normal(n * h * w * c).astype(np.float32)
    return x, rng.standard_normal(n * oh * ow * c).astype(np.float32)


def assert_matches_spec(x, gy, sizes, out=None):
    expected_out, expected_gx = spec_pool(x, gy, sizes, out)
    actual_out, actual_gx = cpu_pool(x, gy, sizes, out)
    np.testing.assert_array_equal(actual_out, expected_out)
    np.testing.assert_array_equal(actual_gx, expected_gx)
    # assert_array_equal takes -0 for +0: compare the bits of the gradient too.
    np.testing.assert_array_equal(actual_gx.view(np.uint32) & ~np.uint32(0x7FFFFF),
                                  expected_gx.view(np.uint32) & ~np.uint32(0x7FFFFF))


@pytest.mark.parametrize("integers", [False, True], ids=["floats", "ties"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_spec_bit_for_bit(case, integers, threads):
    sizes = pool_sizes(*case)
    x, gy = operands(sizes, seed=sum(case[:4]), integers=integers)
    assert_matches_spec(x, gy, sizes)


def test_ties_share_the_gradient_equally():
    """One 2x2 window of four equal values and one with a single winner."""
    x = np.array([3, 1, 3, 3, 3, 2, 3, 0], np.float32)  # (1, 2, 2, 2): channels interleaved
    sizes = pool_sizes(1, 2, 2, 2, (2, 2), (2, 2), (0, 0))
    out, gx = cpu_pool(x, np.array([8.0, 6.0], np.float32), sizes)
    np.testing.assert_array_equal(out, [3, 3])
    np.testing.assert_array_equal(gx, [2, 0, 2, 6, 2, 0, 2, 0])


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[5]], ids=lambda c: str(c))
def test_nan_and_inf(case, threads):
    """A NaN element makes its windows' maxima NaN and sends NaN to everything those windows
    cover; +inf ties, all -inf windows tie everywhere, a -0 cotangent sums to +0 like the spec."""
    sizes = pool_sizes(*case)
    x, gy = operands(sizes, seed=5)
    rng = np.random.default_rng(6)
    for value in (np.nan, np.inf, -np.inf):
        x[rng.choice(x.size, max(1, x.size // 15), replace=False)] = value
    x[: 2 * case[2] * case[3]] = -np.inf  # the first two rows of image 0
    gy[::5] = -0.0
    gy[3::17] = np.nan
    out, _ = spec_pool(x, gy, sizes)
    assert np.isnan(out).any() and np.isneginf(out).any() and np.isposinf(out).any()
    assert_matches_spec(x, gy, sizes)


def test_forward_nan_wins_in_any_position():
    """NaN first, last, or after a larger value: the maximum is NaN each time."""
    windows = [[np.nan, 1, 2, 3], [1, 2, 3, np.nan], [5, np.nan, 1, 2], [-np.inf] * 3 + [np.nan]]
    for window in windows:
        x = np.array(window, np.float32)  # (1, 2, 2, 1)
        out, gx = cpu_pool(x, np.ones(1, np.float32), pool_sizes(1, 2, 2, 1, (2, 2), (1, 1),
                                                                  (0, 0)))
        assert np.isnan(out).all() and np.isnan(gx).all(), window


def test_an_out_no_element_equals_sends_nan():
    """backward reads the given out: a window whose out matches nothing sends NaN to all it covers,
    like the spec, overlapping or not."""
    for case in (CASES[0], CASES[1]):
        sizes = pool_sizes(*case)
        x, gy = operands(sizes, seed=8)
        out, _ = spec_pool(x, gy, sizes)
        out[::4] = 100.0
        assert_matches_spec(x, gy, sizes, out)
        assert np.isnan(cpu_pool(x, gy, sizes, out)[1]).any()


@pytest.mark.parametrize("case", [(0, 4, 4, 3, (2, 2), (2, 2), (0, 0)),
                                  (2, 4, 4, 0, (3, 3), (1, 1), (1, 1)),
                                  (0, 5, 5, 0, (2, 2), (1, 1), (1, 1))], ids=str)
def test_empty_sizes_write_nothing(case):
    sizes = pool_sizes(*case)
    out, gx = sentinel_buffer(0), sentinel_buffer(0)
    cpu.max_pool2d_forward(cpu.alloc(0), out, *sizes)
    cpu.max_pool2d_backward(cpu.alloc(0), cpu.alloc(0), cpu.alloc(0), gx, *sizes)
    np.testing.assert_array_equal(np.asarray(out), [SENTINEL] * EXTRA)
    np.testing.assert_array_equal(np.asarray(gx), [SENTINEL] * EXTRA)


def test_an_empty_image_pools_to_minus_infinity():
    """h = 0 with padding half the kernel: one window covering no element, -inf like the spec."""
    sizes = pool_sizes(2, 0, 3, 2, (2, 2), (1, 1), (1, 1))
    out, gx = cpu_pool(np.zeros(0, np.float32), np.ones(2 * 1 * 4 * 2, np.float32), sizes)
    expected_out, _ = spec_pool(np.zeros(0, np.float32), np.ones(16, np.float32), sizes)
    assert np.isneginf(out).all() and out.size == 16 and gx.size == 0
    np.testing.assert_array_equal(out, expected_out)


@pytest.mark.parametrize("case", [(4, 32, 32, 16, (2, 2), (2, 2), (0, 0)),
                                  (4, 32, 32, 16, (3, 3), (2, 2), (1, 1)),
                                  (1, 64, 33, 8, (3, 3), (1, 1), (1, 1))], ids=str)
def test_one_and_two_threads_agree_bit_for_bit_past_the_grain(case):
    sizes = pool_sizes(*case)
    x, gy = operands(sizes, seed=3, integers=True)
    before = cpu.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            cpu.set_num_threads(count)
            results.append(cpu_pool(x, gy, sizes))
    finally:
        cpu.set_num_threads(before)
    for one, two in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))
    np.testing.assert_array_equal(results[0][1], spec_pool(x, gy, sizes)[1])


GOOD = (2, 4, 4, 3, 2, 2, 2, 2, 2, 2, 0, 0)  # n, h, w, c, kh, kw, oh, ow, strides, paddings


# (changes to GOOD, the spec's message): each bad size the spec names.
BAD_SIZES = [
    ({0: -1}, r"negative size in n=-1"),
    ({4: 0}, r"kernel \(0, 2\) and stride \(2, 2\) must be >= 1"),
    ({9: 0}, r"kernel \(2, 2\) and stride \(2, 0\) must be >= 1"),
    ({10: -1}, r"kernel \(2, 2\) and stride \(2, 2\) must be >= 1, padding \(-1, 0\) >= 0"),
    ({5: 3, 11: 2}, r"padding \(0, 2\) must be at most half the kernel \(2, 3\)"),
    ({6: 3}, r"output size \(3, 2\) does not match input \(4, 4\), kernel \(2, 2\)"),
    ({1: 1}, r"output size \(2, 2\) does not match input \(1, 4\)"),
]
BAD_SIZE_IDS = ["negative", "kernel", "stride", "padding", "half-kernel", "output",
                "kernel-too-big"]


@pytest.mark.parametrize("changes, message", BAD_SIZES, ids=BAD_SIZE_IDS)
@pytest.mark.parametrize("name", ["max_pool2d_forward", "max_pool2d_backward"])
def test_bad_sizes_raise_the_spec_message(name, changes, message):
    sizes = list(GOOD)
    for index, value in changes.items():
        sizes[index] = value
    buffers = [cpu.alloc(96) for _ in range(2 if name.endswith("forward") else 4)]
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        getattr(cpu, name)(*buffers, *sizes)
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        getattr(spec, name)(*[np.zeros(96, np.float32) for _ in buffers], *sizes)


@pytest.mark.parametrize("small, label", [(0, "x"), (1, "out"), (2, "gy"), (3, "gx")])
def test_small_buffers_are_named(small, label):
    buffers = [cpu.alloc(96), cpu.alloc(24), cpu.alloc(24), cpu.alloc(96)]
    buffers[small] = cpu.alloc(10)
    needed = 96 if label in ("x", "gx") else 24
    with pytest.raises(ValueError, match=rf"max_pool2d_backward: {label} needs {needed} elements"
                                         rf".*its buffer has 10"):
        cpu.max_pool2d_backward(*buffers, *GOOD)
    if label in ("x", "out"):
        with pytest.raises(ValueError, match=rf"max_pool2d_forward: {label} needs {needed}"):
            cpu.max_pool2d_forward(*[buffers[0], buffers[1]], *GOOD)


def test_non_integer_sizes_are_a_type_error():
    with pytest.raises(TypeError, match="max_pool2d_forward: sizes must be integers"):
        cpu.max_pool2d_forward(cpu.alloc(96), cpu.alloc(24), *GOOD[:-1], 0.5)


def test_kernel_refuses_bad_sizes_and_null_buffers_before_writing():
    lib = load()
    out = sentinel_buffer(24)
    bad = list(GOOD)
    bad[6] = 3
    assert lib.nd_max_pool2d_forward_f32(on_cpu(np.ones(96, np.float32)).address, out.address,
                                         *bad) == 2  # ND_ERR_SIZE
    assert lib.nd_max_pool2d_forward_f32(None, out.address, *GOOD) == 4  # ND_ERR_NULL
    assert lib.nd_max_pool2d_backward_f32(None, None, None, out.address, *GOOD) == 4
    np.testing.assert_array_equal(np.asarray(out), [SENTINEL] * 27)
