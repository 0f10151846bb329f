"""Direct launches (kernels_triton/launch.py) pass the kernel Triton would choose exactly the
arguments Triton would pass: checked on a machine without a GPU through Triton's real launch path
under the compile-only driver (bench/compile_only_driver.py), which records each launch.
Kernel-layer tests.
"""

import os

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="the interpreter launches through Triton itself")

triton = pytest.importorskip("triton")
torch = pytest.importorskip("torch")

import triton.language as tl  # noqa: E402

from bench.compile_only_driver import compile_only  # noqa: E402
from kernels_triton import launch as launch_module  # noqa: E402
from kernels_triton.launch import launch  # noqa: E402


@triton.jit
def _axpy(x, y, out, n, alpha, offset, BLOCK: tl.constexpr, TWICE: tl.constexpr = False):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    value = alpha * tl.load(x + offset + i, mask=mask) + tl.load(y + i, mask=mask)
    tl.store(out + i, value * 2 if TWICE else value, mask=mask)


@pytest.fixture
def driver(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(launch_module, "_LAUNCHES", {})
    with compile_only() as stand_in:
        yield stand_in


def _buffers(size=64):
    return torch.zeros(size + 4), torch.zeros(size), torch.zeros(size)


def _described(argument):
    """A tensor by the memory a kernel would see (launchers may pass a fresh view of a buffer),
    anything else by its type and value."""
    if isinstance(argument, torch.Tensor):
        return ("tensor", argument.data_ptr(), argument.dtype, argument.numel())
    return type(argument), argument


def _same(first, second):
    assert [_described(a) for a in first] == [_described(b) for b in second]


def _count_runs(monkeypatch, fn):
    """A list that gets an entry per launch of `fn` through Triton's own launch path."""
    calls, real = [], fn.run

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fn, "run", counted)
    return calls


def test_a_repeated_launch_passes_what_triton_passed(driver, monkeypatch):
    x, y, out = _buffers()
    args, kwargs = (x, y, out, 64, 0.5, 0), {"BLOCK": 32, "num_warps": 2}
    through_triton = _count_runs(monkeypatch, _axpy)
    triton_kernel = _axpy[(2,)](*args, **kwargs)
    first = launch(_axpy, (2,), args, kwargs)
    second = launch(_axpy, (2,), args, kwargs)
    assert first is second is triton_kernel
    assert len(through_triton) == 2  # the second launch() is direct
    assert driver.launches == [("_axpy", (2, 1, 1), 2)] * 3
    # The constexprs follow the positional arguments, the default included.
    assert driver.arguments[0][6:] == (32, False)
    _same(driver.arguments[0], driver.arguments[1])
    _same(driver.arguments[0], driver.arguments[2])


@pytest.mark.parametrize("change", ["misaligned x", "unit n", "n divisible by 16", "wide offset",
                                    "keyword", "grid"])
def test_what_triton_specializes_on_keys_a_launch_of_its_own(driver, change):
    x, y, out = _buffers()
    args, kwargs, grid = [x, y, out, 40, 0.5, 0], {"BLOCK": 32}, (2,)
    base = launch(_axpy, grid, tuple(args), kwargs)
    if change == "misaligned x":
        args[0] = x[1:]
    elif change == "unit n":
        args[3] = 1
    elif change == "n divisible by 16":
        args[3] = 48
    elif change == "wide offset":
        args[5] = 2 ** 40
    elif change == "keyword":
        kwargs = {"BLOCK": 32, "TWICE": True}
    else:
        grid = (3,)
    triton_kernel = _axpy[grid](*args, **kwargs)
    ours = launch(_axpy, grid, tuple(args), kwargs)
    again = launch(_axpy, grid, tuple(args), kwargs)
    assert ours is again is triton_kernel
    assert (ours is base) == (change == "grid")  # the grid is no specialization
    assert driver.launches[-1][1] == (*grid, 1, 1)
    _same(driver.arguments[-3], driver.arguments[-1])


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_the_matmul_launcher_repeats_triton_launches_exactly(driver, precision, monkeypatch):
    # Each product twice: the second is launched by the plan the first left (TF32 swaps the
    # operands of a row-major product, kernels_triton/matmul_layouts.oriented).
    from bench.gpu_ir_probe import _device_modes
    from kernels_triton import matmul, matmul_plans

    monkeypatch.setattr(matmul_plans, "PLANS", {})
    through_triton = _count_runs(monkeypatch, matmul._matmul_kernel)
    size = 96
    a, b, out, gate, bias = (torch.zeros(size * size + 8) for _ in range(5))
    row_major, transposed = (0, 0, size, 1), (3, 0, 1, size)  # (offset, strides)
    calls = [(row_major, {}), (row_major, {"relu": True, "bias": bias}),
             (row_major, {"gate": gate}), (transposed, {"dropout": (1 << 23, 2.0, 7)}),
             (transposed, {"dropout": (1 << 22, 3.0, 9)})]
    with _device_modes(precision, "never") as device:
        for a_view, extra in calls:
            for _ in range(2):
                device.matmul(a, b, out, 1, size, size, size, *a_view, 0, 0, size, 1, **extra)
    assert len(driver.launches) == 2 * len(calls) and len(matmul_plans.PLANS) == 4
    assert len(through_triton) == 4  # a new seed is no new launch key
    for first in range(0, len(driver.arguments), 2):
        _same(driver.arguments[first], driver.arguments[first + 1])
    assert len({len(arguments) for arguments in driver.arguments}) == 1
    swapped = driver.arguments[0][0] is b
    assert swapped == (precision == "tf32")


def _conv_args(kind, channel_major=False):
    """The GPU benchmark layer's launch arguments for pass `kind`, shrunk (n=2, 8x8, 8 to 16
    channels, 3x3, padding 1), and its grid."""
    from kernels_triton import conv

    n, hw, c, k = 2, 8, 8, 16
    x, gy, w = torch.zeros(n * hw * hw * c), torch.zeros(n * hw * hw * k), torch.zeros(9 * c * k)
    sizes = (n, hw, hw, c, k, 3, 3, hw, hw, 1, 1, 1, 1, 1, 1, c, k)
    if kind == "forward":
        args = (x, w, torch.zeros_like(gy), *sizes, k, 1)
    elif kind == "input":
        args = (gy, w, torch.zeros_like(x), *sizes, c * k, k, 1)
    else:
        layout = (1, n * hw * hw) if channel_major else (c, 1)
        args = (x, gy, torch.zeros_like(w), *sizes, 1, *layout, k, 1)
    names = conv._KERNELS[kind].arg_names
    assert len(args) == len(names) - 6  # the six constexprs come as keywords

    def grid(meta):
        return (triton.cdiv(n * hw * hw, meta["BLOCK_M"]) * 9, 1, 1)

    return args, grid


@pytest.mark.parametrize("kind, channel_major", [("forward", False), ("input", False),
                                                  ("weight", False), ("weight", True)])
def test_a_small_conv_launch_repeats_the_heuristics_launch(driver, kind, channel_major):
    from kernels_triton import conv

    args, grid = _conv_args(kind, channel_major)
    config = conv.conv_configs(kind, "ieee")[0]
    # As the autotuner launches a configuration: its keywords and options, num_ctas included.
    through_heuristics = conv._LAUNCHABLE[kind][grid](*args, PRECISION="ieee",
                                                      **config.all_kwargs())
    for _ in range(2):
        conv._launch(kind, args, grid, 0, "ieee")
    assert len(driver.arguments) == 3
    own = launch_module._LAUNCHES[id(conv._KERNELS[kind])][1]
    assert through_heuristics in {entry[0] for entry in own.values()}
    for arguments in driver.arguments[1:]:
        _same(driver.arguments[0], arguments)


def test_an_autotuned_conv_launches_its_choice_directly_after_the_first(driver, monkeypatch):
    from kernels_triton import conv

    tuning = conv._TUNING[("forward", "ieee")]
    monkeypatch.setattr(tuning.autotuner, "configs", conv.conv_configs("forward", "ieee")[:2])
    monkeypatch.setattr(tuning.autotuner, "cache", {})
    monkeypatch.setattr(tuning, "timer", lambda call, quantiles: call() or [1.0] * 3)
    monkeypatch.setattr(conv, "_CHOSEN", {})
    compiles, real_compile = [], triton.compiler.compile
    monkeypatch.setattr(triton.compiler, "compile",
                        lambda *a, **kw: compiles.append(1) or real_compile(*a, **kw))
    args, grid = _conv_args("forward")
    conv._launch("forward", args, grid, conv.AUTOTUNE_MIN_WORK, "ieee")
    assert len(driver.launches) == 3  # each candidate timed, then the chosen one
    compiled = len(compiles)
    tuning.autotuner.best_config = None
    conv._launch("forward", args, grid, conv.AUTOTUNE_MIN_WORK, "ieee")
    assert len(driver.launches) == 4 and driver.launches[3] == driver.launches[2]
    assert len(compiles) == compiled  # the timing's kernel, not a recompile
    assert tuning.autotuner.best_config is tuning.autotuner.configs[0]
    _same(driver.arguments[2], driver.arguments[3])


@triton.jit(do_not_specialize=["offset"])
def _shifted(x, out, offset, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(out + i, tl.load(x + i) + offset)


def test_values_triton_does_not_specialize_on_share_a_launch(driver):
    # The dropout kernel's threshold and seed (do_not_specialize): a new seed every step must not
    # make every step's launch a first one.
    from kernels_triton import ewise

    a, out = torch.zeros(64), torch.zeros(64)
    kwargs = {"BLOCK": 64, "num_warps": 1}
    kernels = [launch(ewise._dropout_kernel, (1,), (a, out, 64, threshold, 2.0, seed), kwargs)
               for threshold, seed in ((5, 7), (6, 9), (1, 16))]
    assert len(launch_module._LAUNCHES[id(ewise._dropout_kernel)][1]) == 1
    assert kernels[0] is kernels[1] is kernels[2]
    assert [arguments[3:] for arguments in driver.arguments] == [
        (5, 2.0, 7, 64), (6, 2.0, 9, 64), (1, 2.0, 16, 64)]


def test_an_unspecialized_value_of_another_type_keys_a_launch_of_its_own(driver):
    x, out = torch.zeros(16), torch.zeros(16)
    offsets = (3, 1, 2 ** 31, 2 ** 40, -2 ** 31, 2 ** 63)
    kernels = [launch(_shifted, (1,), (x, out, offset), {"BLOCK": 16}) for offset in offsets]
    triton_kernels = [_shifted[(1,)](x, out, offset, BLOCK=16) for offset in offsets]
    assert kernels == triton_kernels
    assert len({id(kernel) for kernel in kernels}) == 3  # i32, i64, u64
    assert [arguments[2] for arguments in driver.arguments[:len(offsets)]] == list(offsets)



@triton.jit(do_not_specialize_on_alignment=["n"])
def _aligned_anyhow(x, out, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(out + i, tl.load(x + i, mask=i < n), mask=i < n)


def test_a_value_specialized_only_not_on_alignment_keeps_its_value(driver):
    # 1 still becomes a constant: a launch with 5 must not run the kernel made for 1.
    x, out = torch.zeros(16), torch.zeros(16)
    kernels = [launch(_aligned_anyhow, (1,), (x, out, n), {"BLOCK": 16}) for n in (1, 5, 1)]
    assert kernels[0] is kernels[2] is not kernels[1]
    assert kernels[1] is _aligned_anyhow[(1,)](x, out, 5, BLOCK=16)


def test_floats_bools_and_none_pass_as_triton_passes_them(driver):
    x, y, out = _buffers()
    for alpha in (0.5, 2.0, 0.5):
        launch(_axpy, (2,), (x, y, out, 64, alpha, 0), {"BLOCK": 32, "TWICE": True})
    assert len(launch_module._LAUNCHES[id(_axpy)][1]) == 1  # a float is not specialized on
    assert [arguments[4] for arguments in driver.arguments] == [0.5, 2.0, 0.5]


def test_a_planned_product_reports_a_short_buffer_in_full(driver):
    from bench.gpu_ir_probe import _device_modes

    size = 32
    a, b, out = (torch.zeros(size * size) for _ in range(3))
    with _device_modes("ieee", "never") as device:
        device.matmul(a, b, out, 1, size, size, size, 0, 0, size, 1, 0, 0, size, 1)
        with pytest.raises(ValueError, match=r"matmul a: view shape \(1, 32, 32\) .* outside a "
                                             r"buffer of 1023"):
            device.matmul(a[1:], b, out, 1, size, size, size, 0, 0, size, 1, 0, 0, size, 1)
        with pytest.raises(TypeError, match="matmul out: expected a contiguous 1-D float32"):
            device.matmul(a, b, out.double(), 1, size, size, size, 0, 0, size, 1, 0, 0, size, 1)
    assert len(driver.launches) == 1

