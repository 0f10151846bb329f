"""Triton optimizer update kernels (kernel layer) against the numpy spec: the block-to-parameter
search over many small blocks with empty parameters first, between and last, buffers that are
not 16-byte aligned, every compile-time variant, and handles the launcher refuses.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks(pytest.mark.filterwarnings("ignore::RuntimeWarning"))

# Empty parameters first, in a row, and last: they own no block, and the search must skip them.
SIZES = [0, 0, 17, 16, 0, 1, 33, 0, 0, 64, 5, 0]
BLOCK = 16  # small blocks: several per parameter, so the search crosses many borders


def _lists(device, host, misalign=False):
    """Device copies of the host arrays; `misalign`: each starts one element into its buffer,
    4 bytes past an aligned address."""
    if not misalign:
        return [[to_device(device, a) for a in arrays] for arrays in host]
    return [[to_device(device, np.concatenate([[np.float32(7)], a]))[1:] for a in arrays]
            for arrays in host]


def _host(count, seed):
    rng = np.random.default_rng(seed)
    lists = [[rng.standard_normal(n).astype(np.float32) for n in SIZES] for _ in range(count)]
    lists[-1] = [np.abs(a) for a in lists[-1]]
    return lists


def _read(device, lists):
    return [[read(device, h, n) for h, n in zip(handles, SIZES)] for handles in lists]


def _assert_close(got, want):
    for got_list, want_list in zip(got, want, strict=True):
        for got_array, want_array in zip(got_list, want_list, strict=True):
            np.testing.assert_allclose(got_array, want_array, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("momentum, decay, lookback", [
    (False, False, False), (False, True, False), (True, False, False), (True, True, True),
    (True, False, True)])
def test_sgd_over_many_small_blocks_matches_spec(cuda, momentum, decay, lookback, misalign):
    from kernels_triton import optim

    host = _host(3 if momentum else 2, 5)
    scalars = (0.02 if decay else 0.0, 0.9, 0.1, 0.3, 0.05 if lookback else 0.0)
    want_lists = _lists(spec, host)
    spec.sgd_update(*want_lists[:2], want_lists[2] if momentum else None, SIZES, *scalars)
    lists = _lists(cuda, host, misalign)
    optim.sgd_update(*lists[:2], lists[2] if momentum else None, SIZES, *scalars, block=BLOCK)
    _assert_close(_read(cuda, lists), _read(spec, want_lists))


@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("decay", [False, True], ids=["no_decay", "decay"])
def test_adam_over_many_small_blocks_matches_spec(cuda, decay, misalign):
    from kernels_triton import optim

    host = _host(4, 6)
    scalars = (0.1 if decay else 0.0, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.01)
    want_lists = _lists(spec, host)
    spec.adam_update(*want_lists, SIZES, *scalars)
    lists = _lists(cuda, host, misalign)
    optim.adam_update(*lists, SIZES, *scalars, block=BLOCK)
    _assert_close(_read(cuda, lists), _read(spec, want_lists))


def test_the_surroundings_of_each_parameter_stay_untouched(cuda):
    # Each buffer is a slice of a larger one: the elements around it must keep their values.
    from kernels_triton import optim

    sizes = [5, 16, 3]
    outer = [to_device(cuda, np.full(n + 2, 9.0, np.float32)) for n in sizes * 3]
    ws, gs, us = (outer[i * 3:(i + 1) * 3] for i in range(3))
    inner = [[handle[1:-1] for handle in group] for group in (ws, gs, us)]
    optim.sgd_update(*inner, sizes, 0.1, 0.9, 0.1, 0.5, 0.2, block=4)
    for handle, n in zip(outer, sizes * 3):
        values = read(cuda, handle, n + 2)
        assert values[0] == 9.0 and values[-1] == 9.0


@pytest.mark.parametrize("make, error, message", [
    (lambda c, h: ([np.ones(4, np.float32)], [h], None), TypeError, r"ws\[0\]: expected a torch"),
    (lambda c, h: ([h], [h.double()], None), TypeError, r"gs\[0\]"),
    (lambda c, h: ([h], [h], [h.reshape(2, 2)]), (TypeError, ValueError), r"us\[0\]"),
], ids=["numpy_handle", "float64_handle", "two_dimensional_state"])
def test_launcher_refuses_bad_handles_by_name(cuda, make, error, message):
    from kernels_triton import optim

    ws, gs, us = make(cuda, to_device(cuda, np.ones(4, np.float32)))
    with pytest.raises(error, match=message):
        optim.sgd_update(ws, gs, us, [4], 0.0, 0.9, 0.1, 0.1, 0.0)


def test_device_names_a_handle_that_is_no_tensor(cuda):
    with pytest.raises(TypeError, match="cuda device handles are torch tensors, got ndarray"):
        cuda.adam_update([np.ones(4)], [np.ones(4)], [np.ones(4)], [np.ones(4)], [4],
                         0.0, 0.9, 0.1, 0.9, 0.1, 1e-8, 0.1)


def test_a_table_is_reused_only_for_the_same_buffers_and_sizes(cuda):
    from kernels_triton import optim

    ws = [to_device(cuda, np.ones(8, np.float32)) for _ in range(2)]
    gs = [to_device(cuda, np.ones(8, np.float32)) for _ in range(2)]
    optim._TABLES.clear()
    optim.sgd_update(ws, gs, None, [8, 8], 0.0, 0.0, 0.0, 0.5, 0.0)
    optim.sgd_update(ws, gs, None, [8, 8], 0.0, 0.0, 0.0, 0.5, 0.0)
    assert len(optim._TABLES) == 1
    optim.sgd_update(ws, gs, None, [8, 4], 0.0, 0.0, 0.0, 0.5, 0.0)  # same buffers, new sizes
    assert len(optim._TABLES) == 2
    np.testing.assert_array_equal(read(cuda, ws[0], 8), [-0.5] * 8)
    np.testing.assert_array_equal(read(cuda, ws[1], 8), [-0.5] * 4 + [0.0] * 4)


class _Recorder:
    """Stands in for the launcher: records each launch's kernel, grid and compile-time flags."""

    def __init__(self):
        self.launches = []

    def __call__(self, kernel, grid, args, kwargs, token=None):
        self.launches.append((kernel, grid, kwargs))


@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
def test_launch_flags_follow_the_buffers_and_numbers(cuda, monkeypatch, misalign):
    # The interpreter ignores alignment hints, so the flags themselves are checked here: a wrong
    # ALIGNED would make a GPU read 16 bytes from a 4-byte-aligned address.
    from kernels_triton import optim

    recorder = _Recorder()
    monkeypatch.setattr(optim, "launch", recorder)
    host = _host(3, 7)
    lists = _lists(cuda, host, misalign)
    optim.sgd_update(*lists, SIZES, 1e-50, 0.9, 0.1, 0.3, 0.25, block=BLOCK)
    optim.sgd_update(*lists[:2], None, SIZES, 0.01, 0.0, 0.0, 0.3, 0.25, block=BLOCK)
    blocks = sum(-(-n // BLOCK) for n in SIZES)
    assert [(kernel, grid) for kernel, grid, _ in recorder.launches] == \
        [(optim._sgd_kernel, (blocks,))] * 2
    flags = [{key: value for key, value in launch.items() if key.isupper()}
             for _, _, launch in recorder.launches]
    assert flags == [
        # A weight decay that rounds to 0 in float32 is none.
        {"DECAY": False, "MOMENTUM": True, "LOOKBACK": True, "ALIGNED": not misalign,
         "BLOCK": BLOCK},
        {"DECAY": True, "MOMENTUM": False, "LOOKBACK": False, "ALIGNED": not misalign,
         "BLOCK": BLOCK}]
