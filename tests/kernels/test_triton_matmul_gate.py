"""The Triton matmul's epilogues (a bias row, dropout, ReLU's gradient, ReLU, applied where the
tile is stored) on every store path, and the launcher's memory of autotune choices. Kernel tests,
in the interpreter or on a GPU; each product must equal the same kernel's plain product with the
epilogue applied after, bit for bit.
"""

import numpy as np
import pytest

from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()

RNG = np.random.default_rng(11)


def _upload(cuda, host):
    handle = cuda.alloc(host.size)
    cuda.from_numpy(np.ascontiguousarray(host, dtype=np.float32), handle)
    return handle


def _gate(size):
    gate = RNG.standard_normal(size).astype(np.float32)
    gate[RNG.integers(0, size, size // 4 + 1)] = np.float32(0.0)
    gate[RNG.integers(0, size, size // 8 + 1)] = np.float32(np.nan)
    return gate


def _plain_and_gated(cuda, batch, m, k, n, a_strides, b_strides):
    """(plain product, gated product, gate) of random operands with the given strides."""
    a_size = (batch - 1) * a_strides[0] + (m - 1) * a_strides[1] + (k - 1) * a_strides[2] + 1
    b_size = (batch - 1) * b_strides[0] + (k - 1) * b_strides[1] + (n - 1) * b_strides[2] + 1
    a = _upload(cuda, RNG.standard_normal(a_size).astype(np.float32))
    b = _upload(cuda, RNG.standard_normal(b_size).astype(np.float32))
    size = batch * m * n
    gate = _gate(size)
    plain, gated = cuda.alloc(size), cuda.alloc(size)
    cuda.matmul(a, b, plain, batch, m, k, n, 0, *a_strides, 0, *b_strides)
    cuda.matmul(a, b, gated, batch, m, k, n, 0, *a_strides, 0, *b_strides,
                gate=_upload(cuda, gate))
    read = (lambda handle: cuda.to_numpy(handle, (size,), (1,), 0))
    return read(plain), read(gated), gate


def _assert_gated(plain, gated, gate):
    np.testing.assert_array_equal(gated, np.where(gate <= 0, np.float32(0), plain))
    assert np.any(gated != 0), "the product was all gated away: the test shows nothing"


@pytest.mark.parametrize("persistent,split", [(False, False), (True, False), (False, True),
                                              (True, True)],
                         ids=["tiles", "persistent", "split", "persistent_split"])
@pytest.mark.parametrize("m,n", [(40, 37), (9, 8), (33, 64)])
def test_every_store_path_gates(cuda, monkeypatch, persistent, split, m, n):
    from kernels_triton import matmul as triton_matmul

    config = triton_matmul._config(16, 32, 16, 2, 1, 1, persistent=persistent, split=split)
    monkeypatch.setattr(triton_matmul._AUTOTUNED["ieee"], "configs", [config])
    monkeypatch.setattr(triton_matmul, "small_config", lambda: config)
    monkeypatch.setattr(cuda, "_sm_count", lambda: 2)
    batch, k = 2, 19
    _assert_gated(*_plain_and_gated(cuda, batch, m, k, n, (m * k, k, 1), (k * n, n, 1)))
    plain, with_relu = _plain_and_relu(cuda, batch, m, k, n, (m * k, k, 1), (k * n, n, 1))
    np.testing.assert_array_equal(with_relu, np.maximum(plain, np.float32(0)))
    assert np.any(with_relu == 0) and np.any(with_relu > 0)
    _assert_bias_relu(*_plain_and_fused(cuda, batch, m, k, n, (m * k, k, 1), (k * n, n, 1)))
    _assert_dropout_like_its_kernel(cuda, batch, m, k, n, (m * k, k, 1), (k * n, n, 1))


def _plain_and_relu(cuda, batch, m, k, n, a_strides, b_strides):
    """(plain product, product through ReLU) of random operands with the given strides."""
    plain, fused, _ = _plain_and_fused(cuda, batch, m, k, n, a_strides, b_strides, bias=False)
    return plain, fused


def _plain_and_fused(cuda, batch, m, k, n, a_strides, b_strides, bias=True):
    """(plain product, product plus a bias row through ReLU, the bias) of random operands with
    the given strides (no bias: zeros)."""
    a_size = (batch - 1) * a_strides[0] + (m - 1) * a_strides[1] + (k - 1) * a_strides[2] + 1
    b_size = (batch - 1) * b_strides[0] + (k - 1) * b_strides[1] + (n - 1) * b_strides[2] + 1
    a = _upload(cuda, RNG.standard_normal(a_size).astype(np.float32))
    b = _upload(cuda, RNG.standard_normal(b_size).astype(np.float32))
    row = RNG.standard_normal(n).astype(np.float32) if bias else np.zeros(n, np.float32)
    size = batch * m * n
    plain, fused = cuda.alloc(size), cuda.alloc(size)
    cuda.matmul(a, b, plain, batch, m, k, n, 0, *a_strides, 0, *b_strides)
    cuda.matmul(a, b, fused, batch, m, k, n, 0, *a_strides, 0, *b_strides, relu=True,
                bias=_upload(cuda, row) if bias else None)
    return (cuda.to_numpy(plain, (size,), (1,), 0), cuda.to_numpy(fused, (size,), (1,), 0), row)


def _assert_dropout_like_its_kernel(cuda, batch, m, k, n, a_strides, b_strides):
    """The product through bias, dropout (p = 0.3) and ReLU equals the same kernel's plain product
    through ewise_add_row, ewise_dropout and ewise_relu, bit for bit."""
    a_size = (batch - 1) * a_strides[0] + (m - 1) * a_strides[1] + (k - 1) * a_strides[2] + 1
    b_size = (batch - 1) * b_strides[0] + (k - 1) * b_strides[1] + (n - 1) * b_strides[2] + 1
    a = _upload(cuda, RNG.standard_normal(a_size).astype(np.float32))
    b = _upload(cuda, RNG.standard_normal(b_size).astype(np.float32))
    bias = _upload(cuda, RNG.standard_normal(n).astype(np.float32))
    size, dropout = batch * m * n, (round(0.3 * 2**24), 1.0 / 0.7, 4000000007)
    plain, fused = cuda.alloc(size), cuda.alloc(size)
    cuda.matmul(a, b, plain, batch, m, k, n, 0, *a_strides, 0, *b_strides)
    cuda.matmul(a, b, fused, batch, m, k, n, 0, *a_strides, 0, *b_strides, relu=True, bias=bias,
                dropout=dropout)
    cuda.ewise_add_row(plain, bias, plain, size, n)
    cuda.ewise_dropout(plain, plain, size, *dropout)
    cuda.ewise_relu(plain, plain, size)
    got, want = (cuda.to_numpy(h, (size,), (1,), 0) for h in (fused, plain))
    np.testing.assert_array_equal(got, want)
    assert np.any(got > 0) and np.any(got == 0)


def _assert_bias_relu(plain, fused, row):
    by_row = plain.reshape(-1, row.size) + row  # float32 sums, as the kernel's
    np.testing.assert_array_equal(fused, np.maximum(by_row, np.float32(0)).reshape(-1))


@pytest.mark.parametrize("b_layout", ["n_major", "k_major"])
def test_a_swapped_tf32_product_gates_its_transposed_store(cuda, monkeypatch, b_layout):
    # A K-major A with an N-major B runs as out^T = B^T A^T (matmul_layouts.oriented), storing
    # its tile transposed: the gate must be read at the same transposed addresses.
    from kernels_triton import matmul as triton_matmul

    monkeypatch.setattr(triton_matmul, "oriented", _spy_orientation(monkeypatch, triton_matmul))
    cuda.set_matmul_precision("tf32")
    cuda.set_operand_staging("never")
    batch, m, k, n = 2, 21, 24, 35
    b_strides = (k * n, n, 1) if b_layout == "n_major" else (k * n, 1, k)
    _assert_gated(*_plain_and_gated(cuda, batch, m, k, n, (m * k, k, 1), b_strides))
    plain, with_relu = _plain_and_relu(cuda, batch, m, k, n, (m * k, k, 1), b_strides)
    np.testing.assert_array_equal(with_relu, np.maximum(plain, np.float32(0)))
    # The bias belongs to the result's columns: the tile's rows when it is stored transposed.
    _assert_bias_relu(*_plain_and_fused(cuda, batch, m, k, n, (m * k, k, 1), b_strides))
    _assert_dropout_like_its_kernel(cuda, batch, m, k, n, (m * k, k, 1), b_strides)

    from kernels_triton import matmul_layouts

    swapped = b_layout == "n_major" and matmul_layouts.REGISTER_A_ALLOWED
    assert _ORIENTATIONS[-1] is swapped


def test_dropout_indexes_the_whole_result_across_grid_chunks(cuda, monkeypatch):
    # Batches past the grid's limit launch in chunks: each chunk's mask continues the index.
    from kernels_triton import matmul as triton_matmul

    monkeypatch.setattr(triton_matmul, "MAX_GRID_BATCH", 2)
    batch, m, k, n = 5, 6, 7, 9
    _assert_dropout_like_its_kernel(cuda, batch, m, k, n, (m * k, k, 1), (0, n, 1))


_ORIENTATIONS = []


def _spy_orientation(monkeypatch, triton_matmul):
    real = triton_matmul.oriented
    _ORIENTATIONS.clear()

    def spied(*args):
        result = real(*args)
        _ORIENTATIONS.append(bool(result[-1]))
        return result
    return spied


def test_an_autotune_choice_is_remembered_while_its_candidates_stand(cuda, monkeypatch):
    from kernels_triton import matmul as triton_matmul

    autotuner = triton_matmul._AUTOTUNED["ieee"]
    calls = []
    real_run = autotuner.run
    monkeypatch.setattr(autotuner, "run", lambda *a, **kw: calls.append(1) or real_run(*a, **kw))
    first = triton_matmul._config(16, 16, 16, 2, 1, 1)
    monkeypatch.setattr(autotuner, "configs", [first])
    monkeypatch.setattr(triton_matmul, "_CHOSEN", {})
    # On a GPU a product this small skips the autotuner (small_config): here it may not.
    monkeypatch.setattr(triton_matmul, "AUTOTUNE_MIN_WORK", 0)
    m, k, n = 20, 18, 22
    _plain_and_gated(cuda, 1, m, k, n, (0, k, 1), (0, n, 1))
    assert len(calls) == 2  # gated and plain products are tuned apart
    plain, gated, gate = _plain_and_gated(cuda, 1, m, k, n, (0, k, 1), (0, n, 1))
    assert len(calls) == 2, "a second launch of a shape went through the autotuner again"
    assert triton_matmul.last_config() is first
    _assert_gated(plain, gated, gate)
    second = triton_matmul._config(16, 32, 16, 2, 1, 1, split=True)
    monkeypatch.setattr(autotuner, "configs", [second])
    _plain_and_gated(cuda, 1, m, k, n, (0, k, 1), (0, n, 1))
    assert len(calls) == 4 and triton_matmul.last_config() is second


def test_a_gate_that_is_no_float32_buffer_is_refused(cuda):
    import torch

    a, b, out = cuda.alloc(6), cuda.alloc(6), cuda.alloc(4)
    with pytest.raises(TypeError, match="matmul gate"):
        cuda.matmul(a, b, out, 1, 2, 3, 2, 0, 0, 3, 1, 0, 0, 2, 1,
                    gate=torch.zeros(4, dtype=torch.float64))
