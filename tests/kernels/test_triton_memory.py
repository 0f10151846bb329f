"""Triton memory kernels (kernel layer) through the cuda device: fill, compact, setitem and the host
copies, against the numpy device, on views with broadcast, negative and offset strides up to rank 8.
Runs in Triton's interpreter (TRITON_INTERPRET=1) or on a CUDA GPU.
"""

import numpy as np
import pytest

from engine.backend import numpy_device
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()


def _upload(cuda, host):
    handle = cuda.alloc(host.size)
    cuda.from_numpy(host, handle)
    return handle


def _download(cuda, handle, size):
    return cuda.to_numpy(handle, (size,), (1,), 0)


RNG = np.random.default_rng(0)
BASE = RNG.standard_normal(720).astype(np.float32)

# (shape, strides, offset) views into BASE: transposed, broadcast, flipped, sliced, rank 0 and 8.
VIEWS = [
    ((), (), 7),
    ((1,), (1,), 0),
    ((13,), (1,), 3),
    ((4, 5), (1, 4), 0),
    ((3, 4, 5), (0, 5, 1), 10),
    ((5, 7), (-7, 1), 28),
    ((3, 4), (20, -2), 9),
    ((2, 3, 1, 4), (60, 20, 999, 5), 1),
    ((2, 3, 4, 5), (1, 2, 6, 24), 0),
    ((6, 1, 5), (0, 0, 0), 11),
    ((2, 2, 2, 2, 2, 2, 2, 2), (256, 128, 64, 32, 16, 8, 4, 2), 1),
    ((2, 1, 3, 1, 2, 1, 2, 2), (-300, 0, 50, 0, -20, 7, 3, 1), 400),
    ((0, 5), (5, 1), 0),
]


def test_round_trip_and_fill(cuda):
    handle = _upload(cuda, BASE)
    np.testing.assert_array_equal(_download(cuda, handle, BASE.size), BASE)
    for size in (1, 5, 1031):
        out = cuda.alloc(size + 3)
        cuda.fill(out, 9.0, size + 3)
        cuda.fill(out, -2.5, size)
        got = _download(cuda, out, size + 3)
        np.testing.assert_array_equal(got, [-2.5] * size + [9.0] * 3)


def test_to_numpy_owns_its_data(cuda):
    handle = _upload(cuda, BASE[:4])
    first = cuda.to_numpy(handle, (4,), (1,), 0)
    cuda.fill(handle, 0.0, 4)
    np.testing.assert_array_equal(first, BASE[:4])


@pytest.fixture(params=["int32", "int64"])
def index_path(request, monkeypatch):
    """Each strided kernel test on both index paths: int64 is the one views past int32 indices
    take (over 8 GiB of data), forced here on small ones."""
    if request.param == "int64":
        from kernels_triton import memory

        monkeypatch.setattr(memory, "INT32_LIMIT", 0)
    return request.param


@pytest.mark.parametrize("shape,strides,offset", VIEWS)
def test_compact_and_to_numpy(cuda, index_path, shape, strides, offset):
    size = int(np.prod(shape, dtype=np.int64))
    expected = np.empty(size, np.float32)
    numpy_device.compact(BASE, expected, shape, strides, offset)
    out = cuda.alloc(size)
    cuda.compact(_upload(cuda, BASE), out, shape, strides, offset)
    np.testing.assert_array_equal(_download(cuda, out, size), expected)
    np.testing.assert_array_equal(cuda.to_numpy(_upload(cuda, BASE), shape, strides, offset),
                                  numpy_device.to_numpy(BASE, shape, strides, offset))


@pytest.mark.parametrize("shape,strides,offset",
                         [v for v in VIEWS if 0 not in v[1] or np.prod(v[0]) <= 1])
def test_setitem(cuda, index_path, shape, strides, offset):
    size = int(np.prod(shape, dtype=np.int64))
    values = RNG.standard_normal(size).astype(np.float32)
    expected = BASE.copy()
    numpy_device.ewise_setitem(values, expected, shape, strides, offset)
    target = _upload(cuda, BASE)
    cuda.ewise_setitem(_upload(cuda, values), target, shape, strides, offset)
    np.testing.assert_array_equal(_download(cuda, target, BASE.size), expected)

    expected = BASE.copy()
    numpy_device.scalar_setitem(size, 4.25, expected, shape, strides, offset)
    target = _upload(cuda, BASE)
    cuda.scalar_setitem(size, 4.25, target, shape, strides, offset)
    np.testing.assert_array_equal(_download(cuda, target, BASE.size), expected)


def test_wide_indices_start_where_the_last_block_passes_int32():
    from kernels_triton import memory

    assert not memory.wide_indices(2**31, 1024)  # last index 2**31 - 1
    assert memory.wide_indices(2**31 + 1, 1024)
    assert not memory.wide_indices(2147483000, 1000)
    assert memory.wide_indices(2147483001, 1000)


def test_scalar_setitem_broadcast_target(cuda):
    target = _upload(cuda, BASE[:10])
    cuda.scalar_setitem(12, 1.5, target, (3, 4), (0, 2), 1)
    expected = BASE[:10].copy()
    expected[1:9:2] = 1.5
    np.testing.assert_array_equal(_download(cuda, target, 10), expected)


def test_bad_views_raise(cuda):
    handle = _upload(cuda, BASE[:20])
    out = cuda.alloc(20)
    with pytest.raises(ValueError, match="outside a buffer of 20"):
        cuda.compact(handle, out, (5, 5), (5, 1), 0)
    with pytest.raises(ValueError, match="outside"):
        cuda.compact(handle, out, (4,), (-1,), 2)
    with pytest.raises(ValueError, match="differ in rank"):
        cuda.ewise_setitem(handle, out, (4, 5), (1,), 0)
    with pytest.raises(ValueError, match="rank <= 8"):
        cuda.compact(cuda.alloc(1 << 9), cuda.alloc(1 << 9), (2,) * 9, (1, 2, 4, 8, 16, 32, 64,
                                                                         128, 256), 0)
    with pytest.raises(ValueError, match="holds 20 elements, 21 needed"):
        cuda.fill(out, 0.0, 21)
    with pytest.raises(ValueError, match="size 3 != prod"):
        cuda.scalar_setitem(3, 0.0, out, (2, 2), (2, 1), 0)
    with pytest.raises(TypeError, match="float32"):
        cuda.alloc(3, "float64")
