"""Triton batched transpose kernel (kernel layer): strided (batch, rows, cols) views, including
transposed, broadcast, negative-stride and offset ones, copied to compact (batch, cols, rows)
against numpy, also rounding to TF32; and bad sizes. Runs in Triton's interpreter or on a CUDA GPU.
"""

import numpy as np
import pytest

from tests.kernels.triton_support import round_to_tf32, triton_marks

pytestmark = triton_marks()

RNG = np.random.default_rng(5)
BASE = RNG.standard_normal(3000).astype(np.float32)


def _view(flat, shape, strides, offset):
    return np.lib.stride_tricks.as_strided(flat[offset:], shape,
                                           [s * flat.itemsize for s in strides])


# (batch, rows, cols, offset, (batch_stride, row_stride, col_stride)); negative strides are
# written as views of the flipped base below.
CASES = [
    (1, 1, 1, 0, (1, 1, 1)),
    (1, 17, 23, 0, (391, 23, 1)),     # one compact matrix, sizes off the tile grid
    (3, 16, 33, 5, (528, 33, 1)),     # batch at an offset
    (2, 40, 9, 0, (360, 1, 40)),      # a transposed view: the copy is a compact matrix again
    (4, 7, 5, 2, (0, 5, 1)),          # one matrix broadcast over the batch
    (2, 6, 8, 1, (100, 16, 2)),       # gapped rows and columns
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_transpose_matches_numpy(cuda, case):
    from kernels_triton import transpose

    batch, rows, cols, offset, strides = case
    src = cuda.alloc(BASE.size)
    cuda.from_numpy(BASE, src)
    dst = cuda.alloc(batch * rows * cols)
    transpose.transpose(src, dst, batch, rows, cols, offset, *strides)
    expected = _view(BASE, (batch, rows, cols), strides, offset).transpose(0, 2, 1)
    got = cuda.to_numpy(dst, (batch, cols, rows), (rows * cols, rows, 1), 0)
    np.testing.assert_array_equal(got, expected)


def test_negative_strides(cuda):
    from kernels_triton import transpose

    rows, cols = 9, 14
    src = cuda.alloc(BASE.size)
    cuda.from_numpy(BASE, src)
    dst = cuda.alloc(rows * cols)
    # Rows read last to first, columns every other element backwards.
    offset = (rows - 1) * 40 + 2 * (cols - 1)
    transpose.transpose(src, dst, 1, rows, cols, offset, 0, -40, -2)
    expected = np.array([[BASE[offset - 40 * i - 2 * j] for j in range(cols)]
                         for i in range(rows)])
    got = cuda.to_numpy(dst, (cols, rows), (rows, 1), 0)
    np.testing.assert_array_equal(got, expected.T)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_round_tf32_rounds_every_element(cuda):
    """round_tf32 copies each element rounded to nearest TF32 (ties away from zero), NaNs as NaNs,
    over a strided batch whose sizes are off the tile grid."""
    from kernels_triton import transpose

    special = np.array([0x3F801000, 0x3F800FFF, 0xBF801000, 0x7F800000, 0x7FC00000, 0x7F800001,
                        0x7F7FFFFF, 0xFFFFFFFF, 0x00000001], dtype=np.uint32).view(np.float32)
    base = BASE.copy()
    base[5:5 + special.size] = special
    batch, rows, cols, offset, strides = 2, 17, 23, 5, (400, 23, 1)
    src, dst = cuda.alloc(base.size), cuda.alloc(batch * rows * cols)
    cuda.from_numpy(base, src)
    transpose.transpose(src, dst, batch, rows, cols, offset, *strides, round_tf32=True)
    expected = round_to_tf32(_view(base, (batch, rows, cols), strides, offset).transpose(0, 2, 1))
    got = cuda.to_numpy(dst, (batch, cols, rows), (rows * cols, rows, 1), 0)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(got[finite].view(np.uint32), expected[finite].view(np.uint32))
    assert not np.array_equal(got[finite], _view(base, (batch, rows, cols), strides,
                                                 offset).transpose(0, 2, 1)[finite])


def test_bad_sizes_raise(cuda):
    from kernels_triton import transpose

    src, dst = cuda.alloc(20), cuda.alloc(20)
    with pytest.raises(ValueError, match="transpose src"):
        transpose.transpose(src, dst, 1, 5, 5, 0, 0, 5, 1)
    with pytest.raises(ValueError, match="transpose dst"):
        transpose.transpose(src, cuda.alloc(10), 1, 4, 5, 0, 0, 5, 1)
    with pytest.raises(ValueError, match="negative size"):
        transpose.transpose(src, dst, 1, -1, 5, 0, 0, 5, 1)
