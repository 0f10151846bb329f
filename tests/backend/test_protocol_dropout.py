"""The device protocol's dropout (ewise_dropout): the spec's hash against a plain-integer
transcription of its definition, the mask's statistics, and every enabled device drawing exactly
the spec's mask. Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS

WORD = 0xFFFFFFFF


def reference_hash(seed, index):
    """The protocol's hash, written with Python integers."""
    x = ((index * 0x9E3779B9) & WORD) ^ seed
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & WORD
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & WORD
    return x ^ (x >> 16)


def run(device, a, threshold, scale, seed, alias=False):
    handle = to_device(device, a)
    out = handle if alias else device.alloc(max(a.size, 1), "float32")
    device.ewise_dropout(handle, out, a.size, threshold, scale, seed)
    return read(device, out, a.size)


@pytest.mark.parametrize("seed", [0, 1, 0x7FFFFFFF, 0x80000000, WORD])
def test_spec_hash_matches_its_definition(seed):
    index = [0, 1, 2, 3, 1000, 2**31, WORD]
    got = spec.dropout_hash(seed, np.array(index, np.uint64))
    assert [int(value) for value in got] == [reference_hash(seed, i) for i in index]


def test_spec_keeps_and_scales_by_the_threshold():
    a = np.arange(1.0, 9.0, dtype=np.float32)
    hashes = [reference_hash(7, i) >> 8 for i in range(8)]
    threshold = sorted(hashes)[3]  # keeps exactly the 5 largest
    out = run(spec, a, threshold, 2.0, 7)
    np.testing.assert_array_equal(out, [2.0 * v if h >= threshold else 0.0
                                        for v, h in zip(a, hashes, strict=True)])
    assert (out != 0).sum() == 5
    np.testing.assert_array_equal(run(spec, a, 0, 1.5, 7), a * np.float32(1.5))
    np.testing.assert_array_equal(run(spec, a, 2**24, 1.5, 7), np.zeros(8))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_spec_mask_statistics(p):
    # The dropped fraction within 5 standard deviations, for two seeds; masks of different seeds
    # agree no more than independent draws would.
    size = 200_000
    threshold = round(p * 2**24)
    masks = [run(spec, np.ones(size, np.float32), threshold, 1.0, seed) == 0 for seed in (3, 4)]
    sigma = np.sqrt(p * (1 - p) / size)
    for mask in masks:
        assert abs(mask.mean() - p) < 5 * sigma
    both = (masks[0] & masks[1]).mean()
    assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / size)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("size", [1, 37, 70_001])  # 70_001: past the C threading grain
@pytest.mark.parametrize("seed", [0, 0x80000001, WORD])
@pytest.mark.parametrize("alias", [False, True], ids=["new_out", "out_is_a"])
def test_device_draws_the_spec_mask(device, size, seed, alias):
    a = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    if size > 4:
        a[:4] = [np.nan, np.inf, -np.inf, -0.0]
    threshold, scale = round(0.3 * 2**24), 1.0 / 0.7
    want = run(spec, a, threshold, scale, seed)
    np.testing.assert_array_equal(run(device, a, threshold, scale, seed, alias), want)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_empty_input_writes_nothing(device):
    out = to_device(device, np.full(3, 7.0))
    device.ewise_dropout(device.alloc(1, "float32"), out, 0, 100, 2.0, 5)
    np.testing.assert_array_equal(read(device, out, 3), [7.0] * 3)
