"""TF32 operand layouts of the Triton matmul (kernel layer, through the cuda device): an A that is
not K-major reaches the tensor cores through registers, rounded to nearest TF32 on the way; a
K-major A with a B that is not trades places with it (out^T = B^T A^T, written back transposed);
staging copies round what they copy (tf32x3 ones do not). Checked against float64 products of the
operands as the tensor cores read them, and the rounding itself on ties and special values.
"""

import numpy as np
import pytest

from tests.kernels.test_triton_matmul import _check, _matmul, _upload, _view
from tests.kernels.triton_support import as_read_by_tensor_cores, round_to_tf32, triton_marks

pytestmark = triton_marks()

RNG = np.random.default_rng(17)
BATCH, M, K, N = 2, 37, 29, 45
# Stored layout of each product: A's and B's (batch, row, col) strides with offsets, and which
# operand the kernel rounds in registers ("a", "b" once swapped into first place, or none).
LAYOUTS = {
    "kk": ((0, (M * K, K, 1)), (0, (K * N, 1, K)), None),
    "kn": ((0, (M * K, K, 1)), (0, (K * N, N, 1)), "b"),
    "mk": ((0, (M * K, 1, M)), (0, (K * N, 1, K)), "a"),
    "mn": ((0, (M * K, 1, M)), (0, (K * N, N, 1)), "a"),
    "kn_broadcast_b": ((3, (M * K, K, 1)), (5, (0, N, 1)), "b"),
    "kn_negative_cols": ((0, (M * K, K, 1)), (N - 1, (K * N, N, -1)), "b"),
}


def _reference(a, b, a_layout, b_layout):
    """float64 product of the (BATCH, M, K) and (BATCH, K, N) views of the flat operands."""
    return np.matmul(_view(a, (BATCH, M, K), a_layout[1], a_layout[0]),
                     _view(b, (BATCH, K, N), b_layout[1], b_layout[0]))


@pytest.fixture(params=["autotuned", "fixed"])
def launch_path(request, cuda, monkeypatch):
    """Both ways a product launches, each with the small configuration: through the autotuner and
    its heuristics, and straight into the kernel (products below AUTOTUNE_MIN_WORK on a GPU;
    the interpreter otherwise always autotunes)."""
    from kernels_triton import matmul as triton_matmul

    if request.param == "fixed":
        monkeypatch.setattr(triton_matmul, "interpreting", lambda: False)
    else:
        monkeypatch.setattr(triton_matmul, "AUTOTUNE_MIN_WORK", 0)
        monkeypatch.setattr(triton_matmul._AUTOTUNED["tf32"], "configs",
                            [triton_matmul.small_config()])
    cuda.set_matmul_precision("tf32")
    cuda.set_operand_staging("never")
    return request.param


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_tf32_layouts_match_the_rounded_product(cuda, launch_path, case):
    """The result is, up to fp32 summation, the float64 product of the operands as the tensor cores
    read them: the register operand rounded, the other cut to TF32 on a GPU (whole under the
    interpreter). The rounding must show: the unrounded product lies outside that tolerance."""
    from kernels_triton import matmul_layouts
    from kernels_triton.common import interpreting

    a_layout, b_layout, rounded = LAYOUTS[case]
    # With ENGINE_MATMUL_REGISTER_A=off (the GPU check's canary found that path wrong) no operand
    # goes through registers, and that path is what runs and is checked.
    rounded = rounded if matmul_layouts.REGISTER_A_ALLOWED else None
    a = RNG.standard_normal(BATCH * M * K + 8).astype(np.float32)
    b = RNG.standard_normal(BATCH * K * N + 8).astype(np.float32)
    got, exact = _matmul(cuda, a, b, BATCH, M, K, N, a_layout, b_layout)
    expected = _reference(as_read_by_tensor_cores(a, rounded == "a"),
                          as_read_by_tensor_cores(b, rounded == "b"), a_layout, b_layout)
    _check(got, expected, K)
    if rounded or not interpreting():
        with pytest.raises(AssertionError):
            _check(exact, expected, K)


# Which operands a forced staging copies (those not K-major), after which neither is fed from
# registers.
STAGED = {"kk": "", "kn": "b", "mk": "a", "mn": "ab"}


@pytest.mark.parametrize("precision", ["tf32", "tf32x3"])
@pytest.mark.parametrize("case", list(STAGED))
def test_staging_copies_round_tf32_operands(cuda, case, precision, monkeypatch):
    """With staging forced, a TF32 product's copied operands are rounded to nearest TF32 as they
    are copied (the others reach the tensor cores as stored); tf32x3 copies keep every bit, since
    it splits each value into a TF32 part and the remainder."""
    from engine.backend import cuda_staging
    from kernels_triton.common import interpreting

    copies = []
    real = cuda_staging.relayout
    monkeypatch.setattr(cuda_staging, "relayout", lambda *args, **kw: copies.append(
        kw["round_tf32"]) or real(*args, **kw))
    a_layout, b_layout, _ = LAYOUTS[case]
    a = RNG.standard_normal(BATCH * M * K + 8).astype(np.float32)
    b = RNG.standard_normal(BATCH * K * N + 8).astype(np.float32)
    cuda.set_matmul_precision(precision)
    cuda.set_operand_staging("always")
    got, exact = _matmul(cuda, a, b, BATCH, M, K, N, a_layout, b_layout)
    assert copies == [precision == "tf32"] * len(STAGED[case])
    if precision == "tf32x3":
        _check(got, exact, K)
        if STAGED[case]:
            with pytest.raises(AssertionError):
                _check(_reference(round_to_tf32(a), round_to_tf32(b), a_layout, b_layout),
                       exact, K)
        return
    staged = STAGED[case]
    expected = _reference(as_read_by_tensor_cores(a, "a" in staged),
                          as_read_by_tensor_cores(b, "b" in staged), a_layout, b_layout)
    _check(got, expected, K)
    if staged or not interpreting():
        with pytest.raises(AssertionError):
            _check(exact, expected, K)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_rounding_to_tf32_ties_and_special_values(cuda, launch_path):
    """A (m, 1) column stored M-major times a 1x1 B of 1.0 gives back A as the kernel rounds it,
    exactly on any device: ties round away from zero, NaNs stay NaN (also one whose payload lies
    only in the bits the tensor cores drop, and all-ones ones, where rounding would carry), as do
    infinities, and the largest floats round up to infinity."""
    from kernels_triton import matmul_layouts

    if not matmul_layouts.REGISTER_A_ALLOWED:
        pytest.skip(f"{matmul_layouts.REGISTER_SWITCH}=off: nothing is rounded in registers")
    bits = np.array([0x3F801000, 0x3F800FFF, 0xBF801000, 0x3F803000, 0x3F802FFF, 0x7F800000,
                     0xFF800000, 0x7FC00000, 0x7F800001, 0x7F7FFFFF, 0x00000000, 0x40490FDB,
                     0x7FFFFFFF, 0xFFFFFFFF, 0xFF800FFF],
                    dtype=np.uint32)
    a = bits.view(np.float32)
    m = a.size
    got, _ = _matmul(cuda, a, np.ones(1, np.float32), 1, m, 1, 1, (0, (m, 1, m)), (0, (1, 1, 1)))
    expected = np.array([0x3F802000, 0x3F800000, 0xBF802000, 0x3F804000, 0x3F802000, 0x7F800000,
                         0xFF800000, np.nan, np.nan, 0x7F800000, 0x00000000, 0x40490000,
                         np.nan, np.nan, np.nan],
                        dtype=np.float64)
    got = got.reshape(m).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    assert [hex(x) for x in got[finite].view(np.uint32)] == \
        [hex(int(x)) for x in expected[finite]]


@pytest.mark.parametrize("case,register", [("kk", True), ("mk", False)])
def test_forced_register_path(cuda, case, register):
    """`run_config`'s `register` overrides the launcher's choice (the GPU check times K-major
    tiles with A rounded in registers): forced on, a K-major A is rounded; forced off, an M-major
    A is read as stored, unrounded."""
    from kernels_triton import matmul as triton_matmul
    from kernels_triton.common import interpreting

    a_layout, b_layout, _ = LAYOUTS[case]
    a = RNG.standard_normal(BATCH * M * K + 8).astype(np.float32)
    b = RNG.standard_normal(BATCH * K * N + 8).astype(np.float32)
    out = cuda.alloc(BATCH * M * N)
    args = (_upload(cuda, a), _upload(cuda, b), out, M, N, K, a_layout[0], *a_layout[1],
            b_layout[0], *b_layout[1])
    triton_matmul.run_config(triton_matmul.small_config(),
                             triton_matmul._tile_grid(M, N, BATCH, None), args, "tf32", "", False,
                             register=register)
    got = cuda.to_numpy(out, (BATCH, M, N), (M * N, N, 1), 0)
    expected = _reference(as_read_by_tensor_cores(a, register), as_read_by_tensor_cores(b, False),
                          a_layout, b_layout)
    _check(got, expected, K)
    if register or not interpreting():
        with pytest.raises(AssertionError):
            _check(got, _reference(a, b, a_layout, b_layout), K)
