"""Tensor-descriptor (TMA) loads in the Triton matmul kernel (kernel layer), through the cuda device
against a float64 reference: each operand K-major (as staging leaves it) or stored the other way
round, ragged edges the copy engine fills with zeros, batches and broadcast weights, and the
fallback to pointer loads whenever an operand breaks TMA's alignment rules.
"""

import os

import numpy as np
import pytest

from kernels_triton import matmul_layouts
from kernels_triton.common import interpreting
from tests.kernels.test_triton_matmul import _check, _matmul, rtol_for
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()

RNG = np.random.default_rng(7)


def _kernel_layout(stored):
    """The descriptor layout the kernel loads for a stored one: a TF32 product of a K-major A and
    an N-major B runs as out^T = B^T A^T (kernels_triton/matmul_layouts.py `oriented`), which is
    "mk", unless ENGINE_MATMUL_REGISTER_A is off."""
    return "mk" if stored == "kn" and matmul_layouts.REGISTER_A_ALLOWED else stored


@pytest.fixture(params=[(False, False), (True, False), (True, True)],
                ids=["tiles", "persistent", "persistent_split"])
def tma_config(request, cuda, monkeypatch):
    """tf32 products (the only ones with TMA configurations) run exactly one, persistent or one
    program per tile (the persistent one also with its epilogue split in column halves), on 3
    programs, whatever the problem size; 64x64 tiles on 4 warps are the smallest that reach wgmma
    on an H100."""
    from kernels_triton import matmul as triton_matmul

    persistent, split = request.param
    config = triton_matmul._config(64, 64, 16, 2, 4, 2, persistent=persistent, tma=True,
                                   split=split)
    # Whatever ENGINE_MATMUL_TMA the suite runs under, these tests are about the TMA path.
    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", frozenset(matmul_layouts.TMA_LAYOUTS))
    monkeypatch.setattr(triton_matmul._AUTOTUNED["tf32"], "configs", [config])
    monkeypatch.setattr(triton_matmul, "AUTOTUNE_MIN_WORK", 0)
    monkeypatch.setattr(cuda, "_sm_count", lambda: 3)
    cuda.set_operand_staging("never")
    return config


def _spy_descriptors(monkeypatch):
    """(built, layouts): `built` gets one entry per tensor descriptor the interpreter builds or,
    on a GPU (where descriptors are built in compiled code), per product that takes the TMA path;
    `layouts` the TMA layout of each product the launcher sends down that path."""
    from kernels_triton import matmul as triton_matmul

    built, layouts = [], []
    real_layout = triton_matmul.tma_layout

    def spied_layout(*args):
        layout = real_layout(*args)
        if layout:
            layouts.append(layout)
        return layout

    monkeypatch.setattr(triton_matmul, "tma_layout", spied_layout)
    if interpreting():
        from triton.runtime.interpreter import InterpreterBuilder

        real_build = InterpreterBuilder.create_make_tensor_descriptor
        monkeypatch.setattr(InterpreterBuilder, "create_make_tensor_descriptor",
                            lambda self, *args: built.append(1) or real_build(self, *args))
        return built, layouts
    return layouts, layouts


def _skip_unless_the_environment_allows(layout):
    """On a GPU, only the layouts ENGINE_MATMUL_TMA (or its default) names: bench/gpu_check.sh
    runs the tests after its TMA canary, with the switch naming the layouts whose TMA loads came
    out right on that GPU, and a layout left out could fault or hang a test worker. The
    interpreter runs every layout."""
    from kernels_triton.common import interpreting
    from kernels_triton.matmul_layouts import TMA_SWITCH, parse_tma_switch, tma_default

    if interpreting():
        return
    setting = os.environ.get(TMA_SWITCH, tma_default(matmul_layouts.REGISTER_A_ALLOWED))
    if _kernel_layout(layout) not in parse_tma_switch(setting):
        pytest.skip(f"{TMA_SWITCH} leaves {_kernel_layout(layout)} out")


def _padded(extent):
    return (extent + 3) // 4 * 4


def _layouts(batch, m, k, n, tma_layout, a_offset=0, broadcast_b=False):
    """Strided layouts of A (batch, m, k) and B (batch, k, n) whose unit-stride dimensions are
    named by `tma_layout` ("kn": A row-major, B row-major), each line padded to a multiple of 4
    elements (16 bytes) as TMA requires; A starts `a_offset` elements in."""
    if tma_layout[0] == "k":
        a_layout = (a_offset, (m * _padded(k), _padded(k), 1))
    else:
        a_layout = (a_offset, (_padded(m) * k, 1, _padded(m)))
    b_batch = 0 if broadcast_b else _padded(n) * _padded(k)
    if tma_layout[1] == "k":
        return a_layout, (0, (b_batch, 1, _padded(k)))
    return a_layout, (0, (b_batch, _padded(n), 1))


@pytest.mark.parametrize("tma_layout", ["kk", "kn", "mk", "mn"])
@pytest.mark.parametrize("batch,m,k,n,broadcast_b", [(1, 33, 20, 17, False),
                                                     (3, 16, 48, 40, False),
                                                     (2, 5, 7, 31, True),
                                                     (1, 130, 24, 200, False)])
def test_tma_products_match_reference(cuda, tma_config, monkeypatch, tma_layout, batch, m, k, n,
                                      broadcast_b):
    """Edges in every dimension (the copy engine pads them with zeros), ragged K and padded
    lines; the descriptors must really be built, not bypassed."""
    _skip_unless_the_environment_allows(tma_layout)
    built, layouts = _spy_descriptors(monkeypatch)
    cuda.set_matmul_precision("tf32")
    size = batch * _padded(m) * _padded(k) + batch * _padded(n) * _padded(k) + 4
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, *_layouts(
        batch, m, k, n, tma_layout, a_offset=4, broadcast_b=broadcast_b))
    _check(got, expected, k, rtol=rtol_for("tf32"))
    assert built, "the TMA configuration did not build tensor descriptors"
    assert set(layouts) == {_kernel_layout(tma_layout)}


@pytest.mark.parametrize("case", ["offset", "k_not_aligned", "strided_rows", "ieee", "tf32x3"])
def test_operands_tma_cannot_address_fall_back_to_pointer_loads(cuda, tma_config, monkeypatch,
                                                                case):
    """An A starting 1 element (4 bytes) in, rows of 5 elements (20 bytes), an A with no unit
    stride, and IEEE or tf32x3 precision (no TMA configurations) all run the pointer loads and
    stay exact."""
    built, _ = _spy_descriptors(monkeypatch)
    batch, m, k, n = 2, 9, 5 if case == "k_not_aligned" else 8, 11
    precision = case if case in ("ieee", "tf32x3") else "tf32"
    cuda.set_matmul_precision(precision)
    a_layout = (1 if case == "offset" else 0, (m * k, k, 1))
    if case == "strided_rows":
        a_layout = (0, (2 * m * k, 2 * k, 2))
    b_layout = (0, (n * k, 1, k))
    a = RNG.standard_normal(2 * batch * m * k + 1).astype(np.float32)
    b = RNG.standard_normal(batch * n * k).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, a_layout, b_layout)
    _check(got, expected, k, rtol=rtol_for(precision))
    assert not built, "a tensor descriptor was built for operands TMA cannot address"


def test_tma_layout_follows_the_copy_engine_rules(monkeypatch):
    import torch

    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", frozenset(matmul_layouts.TMA_LAYOUTS))
    tma_layout = matmul_layouts.tma_layout

    buf = torch.zeros(4096)
    m, k, n = 12, 8, 16
    a_rows, b_kmajor = (0, (96, 8, 1)), (0, (128, 1, 8))
    assert tma_layout(buf, buf, m, k, n, *a_rows, *b_kmajor) == "kk"
    assert tma_layout(buf, buf, m, k, n, *a_rows, 0, (128, 16, 1)) == "kn"
    assert tma_layout(buf, buf, m, k, n, 0, (96, 1, 12), *b_kmajor) == "mk"
    assert tma_layout(buf, buf, m, k, n, 0, (96, 1, 12), 0, (128, 16, 1)) == "mn"
    assert tma_layout(buf, buf, m, k, n, *a_rows, 4, (0, 1, 8)) == "kk"  # broadcast B
    assert tma_layout(buf, buf, m, k, n, 2, (96, 8, 1), *b_kmajor) == ""  # A 8 bytes in
    assert tma_layout(buf, buf, 6, 6, 6, 0, (36, 6, 1), 0, (36, 1, 6)) == ""  # 24-byte lines
    assert tma_layout(buf, buf, m, k, n, 0, (96, 0, 1), *b_kmajor) == ""  # rows broadcast
    assert tma_layout(buf, buf, m, k, n, 0, (96, 4, 1), *b_kmajor) == ""  # rows overlap
    assert tma_layout(buf, buf, m, k, n, 0, (96, 16, 2), *b_kmajor) == ""  # no unit stride
    assert tma_layout(buf, buf, m, k, n, 0, (98, 8, 1), *b_kmajor) == ""  # batch 392 bytes
    assert tma_layout(buf[1:], buf, m, k, n, *a_rows, *b_kmajor) == ""  # buffer 4 bytes in


def test_switch_names_the_layouts_tma_may_load():
    from kernels_triton.matmul_layouts import TMA_LAYOUTS, parse_tma_switch

    assert parse_tma_switch("on") == frozenset(TMA_LAYOUTS)
    assert parse_tma_switch(" OFF ") == frozenset()
    assert parse_tma_switch("kk,mn") == {"kk", "mn"}
    assert parse_tma_switch("") == frozenset(TMA_LAYOUTS)  # set but empty: the default
    for bad in ("yes", "kk,nk", "kk;kn", "kk,"):
        with pytest.raises(ValueError, match="ENGINE_MATMUL_TMA"):
            parse_tma_switch(bad)


def test_register_switch_is_on_or_off():
    from kernels_triton.matmul_layouts import REGISTER_SWITCH, parse_on_off

    assert parse_on_off(REGISTER_SWITCH, "on") and parse_on_off(REGISTER_SWITCH, "")
    assert not parse_on_off(REGISTER_SWITCH, " OFF ")
    with pytest.raises(ValueError, match="ENGINE_MATMUL_REGISTER_A"):
        parse_on_off(REGISTER_SWITCH, "yes")


def test_the_switch_filters_what_the_copy_engine_could_read(monkeypatch):
    import torch

    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", matmul_layouts.parse_tma_switch("off"))
    buf, row_major = torch.zeros(256), (0, (0, 8, 1))
    assert matmul_layouts.descriptor_layout(buf, buf, 8, 8, 8, *row_major, *row_major) == "kn"
    assert matmul_layouts.tma_layout(buf, buf, 8, 8, 8, *row_major, *row_major) == ""


def test_layouts_switched_off_run_the_pointer_loads(cuda, tma_config, monkeypatch):
    """ENGINE_MATMUL_TMA=kk: a row-major X @ W (stored "kn", loaded "mk" after the swap) builds
    no descriptor and stays exact, while "kk" operands still load by TMA."""
    _skip_unless_the_environment_allows("kk")
    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", matmul_layouts.parse_tma_switch("kk"))
    built, _ = _spy_descriptors(monkeypatch)
    cuda.set_matmul_precision("tf32")
    batch, m, k, n = 1, 24, 16, 20
    a = RNG.standard_normal(m * k).astype(np.float32)
    b = RNG.standard_normal(k * n).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, *_layouts(batch, m, k, n, "kn"))
    _check(got, expected, k, rtol=rtol_for("tf32"))
    assert not built, "a tensor descriptor was built for a layout the switch leaves out"
    got, expected = _matmul(cuda, a, b, batch, m, k, n, *_layouts(batch, m, k, n, "kk"))
    _check(got, expected, k, rtol=rtol_for("tf32"))
    assert built, "the layout the switch keeps did not load by TMA"


def test_autotuning_without_tma_times_the_pointer_configurations_only():
    from kernels_triton import matmul as triton_matmul

    configs = [triton_matmul._config(128, 256, 32, 8, 8, 3),
               triton_matmul._config(128, 256, 32, 8, 8, 3, tma=True),
               triton_matmul._config(256, 128, 32, 8, 8, 3, True),
               triton_matmul._config(128, 256, 32, 8, 8, 3, True, True, split=True)]
    assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT="kn") == configs
    assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT="") == [configs[0], configs[2]]
    only_tma = configs[1:2]  # nothing else to time: the twin runs
    assert triton_matmul._tma_fallback(only_tma, {}, TMA_LAYOUT="") == only_tma


def test_every_tma_configuration_but_the_split_has_a_pointer_twin_among_the_candidates(
        monkeypatch):
    """So timing only the pointer configurations, when TMA cannot load, loses no tile shape the
    autotuner would otherwise have tried (the split one's twin waits to be measured; warp
    specialization needs TMA loads, and its 4-warp plain twins of large tiles would spill)."""
    from kernels_triton import matmul as triton_matmul

    def shape(config):
        return (tuple(config.kwargs[key] for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M",
                                                     "PERSISTENT", "SPLIT_EPILOGUE")),
                config.num_warps, config.num_stages)

    monkeypatch.setattr(triton_matmul, "interpreting", lambda: False)  # the GPU's list
    configs = triton_matmul.matmul_configs("tf32")
    pointer = {shape(c) for c in configs if not c.kwargs["TMA"]}
    missing = [c for c in configs if c.kwargs["TMA"] and not c.kwargs["WARP_SPECIALIZE"]
               and shape(c) not in pointer]
    assert [c.kwargs["SPLIT_EPILOGUE"] for c in missing] == [True]


def test_warp_specialization_only_where_it_compiles(monkeypatch):
    """Only TMA loads of a K-major B with A K-major ("kk") or through registers ("mk"), with
    neither the persistent loop nor a split epilogue, get a warp-specialized K loop; elsewhere the
    autotuner does not time such a configuration, and a forced launch runs it plain."""
    from kernels_triton import matmul as triton_matmul
    from kernels_triton.matmul_layouts import warp_specialized

    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", True)
    monkeypatch.setattr(matmul_layouts, "WARP_SPECIALIZE_ALLOWED", True)
    def asked(requested=True, persistent=False, split=False):
        return {"WARP_SPECIALIZE": requested, "PERSISTENT": persistent, "SPLIT_EPILOGUE": split}

    assert warp_specialized(asked(), "kk") and warp_specialized(asked(), "mk")
    for layout in ("kn", "mn", ""):
        assert not warp_specialized(asked(), layout)
    assert not warp_specialized(asked(persistent=True), "kk")
    assert not warp_specialized(asked(split=True), "kk")
    assert not warp_specialized(asked(requested=False), "kk")
    plain = triton_matmul._config(128, 128, 32, 8, 4, 4, tma=True)
    specialized = triton_matmul._config(128, 128, 32, 8, 4, 4, tma=True, ws=True)
    pointer = triton_matmul._config(128, 128, 32, 8, 4, 4)
    configs = [pointer, plain, specialized]
    for layout in ("kk", "mk"):
        assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT=layout) == configs
    for layout in ("kn", "mn"):
        assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT=layout) == [pointer, plain]
    assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT="") == [pointer]
    assert triton_matmul._tma_fallback([specialized], {}, TMA_LAYOUT="mn") == [specialized]
    # ENGINE_MATMUL_REGISTER_A=off: an M-major A stays in shared memory, where it does not compile.
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", False)
    assert warp_specialized(asked(), "kk") and not warp_specialized(asked(), "mk")
    assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT="mk") == [pointer, plain]
    # ENGINE_MATMUL_WARP_SPECIALIZE=off (the GPU check's canary saw it fail): nowhere.
    monkeypatch.setattr(matmul_layouts, "WARP_SPECIALIZE_ALLOWED", False)
    assert not warp_specialized(asked(), "kk")
    assert triton_matmul._tma_fallback(configs, {}, TMA_LAYOUT="kk") == [pointer, plain]


@pytest.mark.parametrize("tma_layout", ["kk", "kn", "mk", "mn"])
def test_warp_specialized_configurations_compute_the_product(cuda, monkeypatch, tma_layout):
    """The only candidate warp-specialized, through the autotuner and its heuristics, on every
    stored layout: specialized where that compiles on a GPU, plain elsewhere (and under the
    interpreter, which runs the loop plain)."""
    from kernels_triton import matmul as triton_matmul

    _skip_unless_the_environment_allows(tma_layout)
    monkeypatch.setattr(matmul_layouts, "TMA_ALLOWED", frozenset(matmul_layouts.TMA_LAYOUTS))
    monkeypatch.setattr(triton_matmul._AUTOTUNED["tf32"], "configs", [
        triton_matmul._config(64, 64, 16, 2, 4, 2, tma=True, ws=True)])
    monkeypatch.setattr(triton_matmul, "AUTOTUNE_MIN_WORK", 0)
    cuda.set_matmul_precision("tf32")
    batch, m, k, n = 2, 33, 40, 70
    size = batch * _padded(m) * _padded(k) + batch * _padded(n) * _padded(k) + 4
    a = RNG.standard_normal(size).astype(np.float32)
    b = RNG.standard_normal(size).astype(np.float32)
    got, expected = _matmul(cuda, a, b, batch, m, k, n, *_layouts(batch, m, k, n, tma_layout))
    _check(got, expected, k, rtol=rtol_for("tf32"))


def test_each_variant_compiles_once_whatever_the_layout(monkeypatch):
    """Pointer-load configurations see no layout and TMA ones always an even K, so neither is
    compiled again for each layout or K remainder a process meets; warp specialization follows
    the layout loaded."""
    from kernels_triton.matmul import _matmul_even_k

    monkeypatch.setattr(matmul_layouts, "WARP_SPECIALIZE_ALLOWED", True)

    def normalised(**args):
        args = {"PRECISION": "tf32", "stride_ak": 1, "WARP_SPECIALIZE": True, "PERSISTENT": False,
                "SPLIT_EPILOGUE": False, **args}
        for name, heuristic in _matmul_even_k.values.items():
            args[name] = heuristic(args)
        return args["TMA_LAYOUT"], args["EVEN_K"], args["WARP_SPECIALIZE"]

    assert normalised(TMA=False, TMA_LAYOUT="kn", k=20, BLOCK_K=16) == ("", False, False)
    assert normalised(TMA=False, TMA_LAYOUT="kk", k=32, BLOCK_K=16) == ("", True, False)
    assert normalised(TMA=True, TMA_LAYOUT="kn", k=20, BLOCK_K=16) == ("kn", True, False)
    assert normalised(TMA=True, TMA_LAYOUT="kk", k=20, BLOCK_K=16) == ("kk", True, True)
    assert normalised(TMA=True, TMA_LAYOUT="", k=20, BLOCK_K=16) == ("", False, False)


@pytest.mark.parametrize("tma_layout", ["kk", "kn"])
def test_tma_products_gate_where_they_store(cuda, tma_config, monkeypatch, tma_layout):
    """A gated product on the TMA path ("kn" stores transposed) equals the same kernel's plain
    product gated afterwards, bit for bit."""
    from tests.kernels.test_triton_matmul_gate import _assert_gated, _gate

    _skip_unless_the_environment_allows(tma_layout)
    built, _ = _spy_descriptors(monkeypatch)
    cuda.set_matmul_precision("tf32")
    batch, m, k, n = 2, 33, 20, 70
    (a_offset, a_strides), (b_offset, b_strides) = _layouts(batch, m, k, n, tma_layout)
    size = batch * _padded(m) * _padded(k) + batch * _padded(n) * _padded(k) + 4
    a = cuda.alloc(size)
    b = cuda.alloc(size)
    cuda.from_numpy(RNG.standard_normal(size).astype(np.float32), a)
    cuda.from_numpy(RNG.standard_normal(size).astype(np.float32), b)
    gate_host = _gate(batch * m * n)
    gate = cuda.alloc(gate_host.size)
    cuda.from_numpy(gate_host, gate)
    plain, gated = cuda.alloc(batch * m * n), cuda.alloc(batch * m * n)
    for out, extra in ((plain, {}), (gated, {"gate": gate})):
        cuda.matmul(a, b, out, batch, m, k, n, a_offset, *a_strides, b_offset, *b_strides,
                    **extra)
    read = (lambda handle: cuda.to_numpy(handle, (batch * m * n,), (1,), 0))
    _assert_gated(read(plain), read(gated), gate_host)
    assert built, "the TMA configuration did not build tensor descriptors"
