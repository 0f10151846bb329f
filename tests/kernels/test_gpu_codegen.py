"""What our Triton kernels compile to on an H100 (sm_90), checked on a machine without a GPU
(kernel layer, slow): every kernel variant compiles; the conv weight gradient's loops call
nothing; TF32 products reach the tensor cores fed by 16-byte async copies once the device stages
operands K-major, and without staging too when only one operand is not K-major (it comes through
registers; 4-byte copies when both are not: the reason staging still exists), and IEEE products
read MN-major staged tiles with vector shared-memory loads. Uses the launch-time specialization,
as a real launch would.
"""

import os

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="compiles GPU code; the interpreter replaces compilation")]


def _records(probe, *args):
    from bench.gpu_ir_probe import capture_launches

    records = []
    with capture_launches(records, all_configs=False):
        probe(*args)
    return {name: summary for name, _, summary in records}


def test_every_kernel_variant_compiles_for_sm90():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = root
    done = subprocess.run([sys.executable, "bench/gpu_compile_check.py", "--quick"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("layout", ["nn", "tn", "tt"])
def test_tf32_matmul_feeds_wgmma_with_16_byte_copies(layout, monkeypatch):
    """Staged, every layout; as stored, a row-major B (swapped into first place) or a transposed
    A alone, which reach wgmma through registers; a transposed A with a row-major B ("tn",
    neither K-major) gathers B 4 bytes at a time."""
    from bench.gpu_ir_probe import probe_matmul
    from kernels_triton import matmul_layouts

    # Compiles only: the register path is probed whatever ENGINE_MATMUL_REGISTER_A says.
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)
    staged = _records(probe_matmul, layout, "tf32", "always")
    assert "_transpose_kernel" in staged
    assert staged["_matmul_kernel"]["mma"] == "wgmma"
    assert staged["_matmul_kernel"]["copies_4B"] == 0
    assert staged["_matmul_kernel"]["copies_16B"] > 0
    direct = _records(probe_matmul, layout, "tf32", "never")
    assert "_transpose_kernel" not in direct
    assert direct["_matmul_kernel"]["mma"] == "wgmma"
    assert direct["_matmul_kernel"]["copies_16B"] > 0
    assert direct["_matmul_kernel"]["register_staged"] == 0
    assert (direct["_matmul_kernel"]["copies_4B"] > 0) == (layout == "tn")


def test_tf32_conv_staging_feeds_wgmma_with_16_byte_copies():
    from bench.gpu_ir_probe import probe_conv

    staged = _records(probe_conv, "tf32", "always")
    direct = _records(probe_conv, "tf32", "never")
    assert staged["_forward_kernel"]["mma"] == "wgmma"
    assert staged["_forward_kernel"]["copies_4B"] == 0
    assert direct["_forward_kernel"]["copies_4B"] > 0
    # Weight gradient: channel-major gy arrives in 16-byte copies; x, gathered through each tap's
    # shifted pixel index, stays 4-byte either way (unit stride cannot be proven there).
    assert direct["_weight_grad_kernel"]["copies_16B"] == 0
    assert staged["_weight_grad_kernel"]["copies_16B"] > 0
    assert staged["_weight_grad_kernel"]["copies_4B"] < direct["_weight_grad_kernel"]["copies_4B"]


def test_ieee_staging_feeds_fma_with_vector_shared_loads():
    """FMA reads MN-major tiles 16 bytes at a time: staging A of X @ W (K-major as stored) and the
    input gradient's weights leaves no narrow shared-memory reads in the matmul kernel and far
    fewer in the input gradient."""
    from bench.gpu_ir_probe import probe_conv, probe_matmul

    staged = _records(probe_matmul, "nn", "ieee", "always")
    assert "_transpose_kernel" in staged
    assert staged["_matmul_kernel"]["mma"] == "fma"
    assert staged["_matmul_kernel"]["smem_loads_narrow"] == 0
    assert _records(probe_matmul, "nn", "ieee", "never")["_matmul_kernel"]["smem_loads_narrow"] > 0
    conv_staged = _records(probe_conv, "ieee", "always")["_input_grad_kernel"]
    conv_direct = _records(probe_conv, "ieee", "never")["_input_grad_kernel"]
    assert conv_staged["smem_loads_narrow"] < conv_direct["smem_loads_narrow"]
    assert conv_staged["smem_loads_v4"] > conv_direct["smem_loads_v4"]


@pytest.mark.parametrize("layout,staging,tma_layout", [("nn", "always", "kk"),
                                                       ("nn", "never", "mk"),
                                                       ("tt", "never", "mk"),
                                                       ("tn", "never", "mn")])
def test_tf32_tma_configurations_fetch_tiles_with_the_copy_engine(layout, staging, tma_layout,
                                                                  monkeypatch):
    """On K-major operands (as staging leaves them) and on operands stored the other way round
    (A through registers, a row-major B swapped into A's place, B turned round in shared memory)
    the TMA configurations fetch whole tiles by tensor descriptor: no per-element async copies
    remain, the tiles still feed wgmma, and every one fits an H100's shared memory."""
    from bench.gpu_ir_probe import capture_launches, probe_matmul
    from kernels_triton import matmul_layouts

    # Compiles only, so whatever ENGINE_MATMUL_TMA and ENGINE_MATMUL_REGISTER_A say, every layout
    # is probed, with the register path.
    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", frozenset(matmul_layouts.TMA_LAYOUTS))
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)

    records = []
    with capture_launches(records):
        probe_matmul(layout, "tf32", staging)
    tma = [summary for name, meta, summary in records
           if name == "_matmul_kernel" and meta.get("TMA") and meta["TMA_LAYOUT"] == tma_layout]
    assert len(tma) >= 2
    for summary in tma:
        assert summary["mma"] == "wgmma"
        assert summary["tma_loads"] > 0
        assert summary["copies_4B"] == summary["copies_16B"] == 0
        assert summary["shared_bytes"] <= 227 * 1024


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_conv_weight_gradient_loops_call_nothing(precision):
    """The weight gradient's pixel loop once called the 64-bit division routine 17 times a pass
    (int64 pixel indices), three quarters as many instructions as its FFMAs: in the SASS of every
    configuration no call and no spill is left (the calls' own instructions lie outside the loop
    body, so only this count shows them), and IEEE loops spend most slots on FFMA: 69-77 % with
    the gathers' address arithmetic (the IEEE matmul's run 86-90 %)."""
    from bench.gpu_ir_probe import probe_conv
    from bench.gpu_sass_loops import compiled_loops
    from kernels_triton.conv import conv_configs

    records = [(meta, mixes) for name, meta, mixes in
               compiled_loops(probe_conv, precision, "never") if name == "_weight_grad_kernel"]
    assert len(records) == len(conv_configs("weight", precision))
    for meta, mixes in records:
        assert mixes, meta
        for mix in mixes:
            assert mix["calls"] == mix["spill_loads"] == 0, (meta, mix)
            if precision == "ieee":
                assert mix["ffma"] >= 0.6 * mix["instructions"], (meta, mix)
