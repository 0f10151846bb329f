"""Triton matmul kernel (kernel layer) through the cuda device, against a float64 reference: odd and
prime shapes, batches, transposed, broadcast (batch stride 0), negative-stride and offset operands,
the precision switch, K-major operand staging for the tensor cores, and bad sizes.
"""

import numpy as np
import pytest

from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()


RNG = np.random.default_rng(2)


def _upload(cuda, host):
    handle = cuda.alloc(host.size)
    cuda.from_numpy(host, handle)
    return handle


def _view(flat, shape, strides, offset):
    """A float64 numpy view of `flat` (strides in elements, possibly negative)."""
    index = offset + sum(np.arange(n).reshape([-1 if d == i else 1 for i in range(len(shape))]) * s
                         for d, (n, s) in enumerate(zip(shape, strides, strict=True)))
    return flat.astype(np.float64)[index]


def _matmul(cuda, a_flat, b_flat, batch, m, k, n, a_layout, b_layout):
    """Our matmul of strided operands; returns (ours, float64 reference)."""
    a_off, a_strides = a_layout
    b_off, b_strides = b_layout
    out = cuda.alloc(batch * m * n)
    cuda.matmul(_upload(cuda, a_flat), _upload(cuda, b_flat), out, batch, m, k, n,
                a_off, *a_strides, b_off, *b_strides)
    expected = np.matmul(_view(a_flat, (batch, m, k), a_strides, a_off),
                         _view(b_flat, (batch, k, n), b_strides, b_off))
    return cuda.to_numpy(out, (batch, m, n), (m * n, n, 1), 0), expected


def _check(got, expected, k, rtol=1e-5):
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * 4 * np.sqrt(max(k, 1)))


def rtol_for(precision):
    """TF32 keeps 10 mantissa bits on a GPU (the interpreter computes its dots in fp32)."""
    return 5e-3 if precision == "tf32" else 1e-5


@pytest.mark.parametrize("batch,m,k,n", [(1, 1, 1, 1), (1, 1, 7, 1), (1, 5, 1, 3),
                                         (1, 17, 23, 19), (3, 16, 32, 16), (2, 33, 47, 5),
                                         (1, 3, 0, 4), (4, 2, 3, 37)])
def test_compact_shapes(cuda, batch, m, k, n):
    a = RNG.standard_normal(batch * m * k).astype(np.float32)
    b = RNG.standard_normal(batch * k * n).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, (0, (m * k, k, 1)), (0, (k * n, n, 1)))
    _check(got, expected, k)


@pytest.mark.parametrize("case", ["transposed", "broadcast_batch", "negative", "offset_gapped"])
def test_strided_operands(cuda, case):
    batch, m, k, n = 3, 13, 19, 11
    a = RNG.standard_normal(2000).astype(np.float32)
    b = RNG.standard_normal(2000).astype(np.float32)
    if case == "transposed":  # A and B stored as their transposes, read without a copy
        layouts = (0, (m * k, 1, m)), (0, (k * n, 1, k))
    elif case == "broadcast_batch":  # one B (a weight) shared by every batch entry
        layouts = (0, (m * k, k, 1)), (5, (0, n, 1))
    elif case == "negative":  # flipped rows of A, flipped columns of B
        layouts = (m * k * batch - k, (-m * k, -k, 1)), (n - 1, (k * n, n, -1))
    else:  # sub-blocks of wider matrices at an offset
        layouts = (7, (m * 40, 40, 2)), (3, (k * 30, 30, 1))
    got, expected = _matmul(cuda, a, b, batch, m, k, n, *layouts)
    _check(got, expected, k)


@pytest.mark.parametrize("precision", ["tf32", "tf32x3", "ieee"])
def test_precision_modes(cuda, precision):
    cuda.set_matmul_precision(precision)
    assert cuda.get_matmul_precision() == precision
    a = RNG.standard_normal(20 * 24).astype(np.float32)
    b = RNG.standard_normal(24 * 18).astype(np.float32)
    got, expected = _matmul(cuda, a, b, 1, 20, 24, 18, (0, (0, 24, 1)), (0, (0, 18, 1)))
    _check(got, expected, 24, rtol=rtol_for(precision))


# How many operands each layout stages: (IEEE: A not m-contiguous, B not n-contiguous;
# tf32*: A not k-contiguous, B not k-contiguous).
STAGED = {"compact": (1, 1), "transposed": (1, 1), "broadcast_batch": (1, 1), "negative": (2, 2),
          "offset_gapped": (1, 2)}


@pytest.mark.parametrize("precision", ["ieee", "tf32", "tf32x3"])
@pytest.mark.parametrize("case", list(STAGED))
def test_staged_operands(cuda, precision, case, monkeypatch):
    """Staging relays operands out (K-major for tf32*, MN-major for IEEE) before the product;
    results must not change."""
    from engine.backend import cuda_staging

    copies = []
    real = cuda_staging.relayout
    monkeypatch.setattr(cuda_staging, "relayout", lambda *args, **kw: copies.append(1) or
                        real(*args, **kw))
    batch, m, k, n = 3, 13, 19, 11
    a = RNG.standard_normal(2000).astype(np.float32)
    b = RNG.standard_normal(2000).astype(np.float32)
    layouts = {"compact": ((0, (m * k, k, 1)), (0, (k * n, n, 1))),
               "transposed": ((0, (m * k, 1, m)), (0, (k * n, 1, k))),
               "broadcast_batch": ((0, (0, k, 1)), (5, (0, n, 1))),
               "negative": ((m * k * batch - 1, (-m * k, -1, -m)), (n - 1, (k * n, n, -1))),
               "offset_gapped": ((7, (m * 40, 2, 40)), (3, (k * 30, 30, 1)))}[case]
    cuda.set_matmul_precision(precision)
    try:
        cuda.set_operand_staging("always")
        staged, expected = _matmul(cuda, a, b, batch, m, k, n, *layouts)
        assert len(copies) == STAGED[case][0 if precision == "ieee" else 1]
        cuda.set_operand_staging("never")
        direct, _ = _matmul(cuda, a, b, batch, m, k, n, *layouts)
        assert len(copies) == STAGED[case][0 if precision == "ieee" else 1]
    finally:
        cuda.set_operand_staging("auto")
    rtol = rtol_for(precision)
    _check(staged, expected, k, rtol=rtol)
    _check(staged, direct, k, rtol=rtol)


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_staging_checks_first_and_skips_empty_products(cuda, precision):
    cuda.set_matmul_precision(precision)
    cuda.set_operand_staging("always")
    try:
        # A (4x3, column-major) needs 12 elements and gets 8; an operand gets staged either way.
        a, b, out = cuda.alloc(8), cuda.alloc(12), cuda.alloc(16)
        with pytest.raises(ValueError, match="matmul a"):
            cuda.matmul(a, b, out, 1, 4, 3, 4, 0, 0, 1, 4, 0, 0, 1, 3)
        with pytest.raises(ValueError, match="negative size"):
            cuda.matmul(a, b, out, -1, 3, 4, 3, 0, 0, 1, 3, 0, 0, 1, 4)
        empty = cuda.alloc(0)
        cuda.matmul(empty, empty, empty, 0, 3, 4, 3, 0, 0, 1, 3, 0, 0, 1, 4)
    finally:
        cuda.set_operand_staging("auto")
        cuda.set_matmul_precision("ieee")


def test_bad_input_raises(cuda):
    a, b, out = cuda.alloc(12), cuda.alloc(12), cuda.alloc(9)
    with pytest.raises(ValueError, match="matmul b"):
        cuda.matmul(a, b, out, 1, 3, 4, 3, 0, 0, 4, 1, 0, 0, 4, 1)
    with pytest.raises(ValueError, match="matmul out"):
        cuda.matmul(a, b, out, 1, 3, 4, 4, 0, 0, 4, 1, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="precision"):
        cuda.set_matmul_precision("bf16")
    with pytest.raises(ValueError, match="operand staging"):
        cuda.set_operand_staging("sometimes")


@pytest.mark.parametrize("batch,m,k,n,programs", [(1, 40, 19, 37, 2), (2, 33, 32, 50, 4),
                                                  (1, 16, 16, 16, 3), (3, 5, 7, 70, 1)])
def test_persistent_programs_cover_every_tile(cuda, monkeypatch, batch, m, k, n, programs):
    """A persistent configuration runs one program per multiprocessor (here `programs`), each
    striding over the output tiles: every tile must come out, also with more programs than tiles
    and with a ragged last round."""
    from kernels_triton import matmul as triton_matmul

    persistent = triton_matmul._config(16, 16, 16, 2, 1, 1, persistent=True)
    monkeypatch.setattr(triton_matmul._AUTOTUNED["ieee"], "configs", [persistent])
    monkeypatch.setattr(triton_matmul, "small_config", lambda: persistent)
    monkeypatch.setattr(cuda, "_sm_count", lambda: programs)
    a = RNG.standard_normal(batch * m * k).astype(np.float32)
    b = RNG.standard_normal(batch * k * n).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, (0, (m * k, k, 1)), (0, (k * n, n, 1)))
    _check(got, expected, k)


@pytest.mark.parametrize("persistent", [False, True], ids=["tiles", "persistent"])
@pytest.mark.parametrize("m,n", [(40, 37), (9, 8), (33, 64), (17, 50)])
def test_split_epilogue_stores_both_halves(cuda, monkeypatch, persistent, m, n):
    """SPLIT_EPILOGUE stores a tile's left and right column halves one after the other: a right
    half partly or wholly past the last column, and a left half cut short, must come out exact."""
    from kernels_triton import matmul as triton_matmul

    split = triton_matmul._config(16, 32, 16, 2, 1, 1, persistent=persistent, split=True)
    monkeypatch.setattr(triton_matmul._AUTOTUNED["ieee"], "configs", [split])
    monkeypatch.setattr(triton_matmul, "small_config", lambda: split)
    monkeypatch.setattr(cuda, "_sm_count", lambda: 2)
    batch, k = 2, 19
    a = RNG.standard_normal(batch * m * k).astype(np.float32)
    b = RNG.standard_normal(batch * k * n).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, (0, (m * k, k, 1)), (0, (k * n, n, 1)))
    _check(got, expected, k)


def test_persistent_grid_is_one_program_per_multiprocessor():
    from kernels_triton.matmul import _tile_grid

    meta = {"BLOCK_M": 128, "BLOCK_N": 256}
    assert _tile_grid(8192, 8192, 1, 132)(dict(meta, PERSISTENT=True)) == (132, 1)
    assert _tile_grid(8192, 8192, 1, 132)(dict(meta, PERSISTENT=False)) == (2048, 1)
    assert _tile_grid(200, 300, 3, 132)(dict(meta, PERSISTENT=True)) == (4, 3)
    assert _tile_grid(8192, 8192, 1, None)(dict(meta, PERSISTENT=True)) == (2048, 1)


@pytest.mark.parametrize("k", [40, 64])
def test_small_products_run_the_fixed_configuration(cuda, monkeypatch, k):
    """Below AUTOTUNE_MIN_WORK (on a GPU; the interpreter otherwise always autotunes) the kernel
    runs with the fixed small configuration, no autotuner or heuristics in between, and a K
    that is not a multiple of its BLOCK_K (40 against 32) still comes out whole."""
    from kernels_triton import matmul as triton_matmul

    monkeypatch.setattr(triton_matmul, "interpreting", lambda: False)
    for precision in triton_matmul.PRECISIONS:
        monkeypatch.setattr(triton_matmul._AUTOTUNED[precision], "run", lambda *a, **kw:
                            pytest.fail("a small product went through the autotuner"))
    monkeypatch.setattr(triton_matmul._matmul_even_k, "run", lambda *a, **kw:
                        pytest.fail("a small product went through the heuristics"))
    m, n = 70, 33
    a = RNG.standard_normal(m * k).astype(np.float32)
    b = RNG.standard_normal(k * n).astype(np.float32)
    got, expected = _matmul(cuda, a, b, 1, m, k, n, (0, (m * k, k, 1)), (0, (k * n, n, 1)))
    _check(got, expected, k)
