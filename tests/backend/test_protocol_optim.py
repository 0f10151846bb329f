"""The device protocol's optimizer updates (sgd_update, adam_update): the spec against the
protocol's formulas in float64, every enabled device against the spec over lists of parameters
(empty ones, one past the C threading grain, many small ones), special values, and bad lists.
Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS

SGD_CASES = {
    "plain": dict(momentum=False, weight_decay=0.0, keep=0.0, take=0.0, step=0.1, lookback=0.0),
    "decay": dict(momentum=False, weight_decay=0.05, keep=0.0, take=0.0, step=0.1, lookback=0.0),
    "momentum": dict(momentum=True, weight_decay=0.0, keep=0.9, take=0.1, step=0.05,
                     lookback=0.0),
    "nesterov_decay": dict(momentum=True, weight_decay=0.01, keep=0.8, take=1.0, step=0.2,
                           lookback=0.07),
}
ADAM_CASES = {
    "adam": dict(weight_decay=0.0, keep1=0.9, take1=0.1, keep2=0.999, take2=0.001, eps=1e-3,
                 step=0.01),
    "adam_decay": dict(weight_decay=0.1, keep1=0.8, take1=0.2, keep2=0.99, take2=0.01, eps=1e-8,
                       step=0.003),
}
# 70_001: past the C kernels' threading grain; 40 sizes: many parameters, some empty.
SIZE_LISTS = {
    "none": [],
    "empty": [0],
    "one": [1],
    "mixed": [5, 0, 37, 1],
    "large": [70_001, 3],
    "many": [int(n) for n in np.random.default_rng(3).integers(0, 300, 40)],
}


def _host_lists(sizes, count, seed, positive=()):
    """`count` lists of random float32 arrays of `sizes`; lists in `positive` hold |values|
    (Adam's second moments)."""
    rng = np.random.default_rng(seed)
    lists = [[rng.standard_normal(n).astype(np.float32) for n in sizes] for _ in range(count)]
    for index in positive:
        lists[index] = [np.abs(a) for a in lists[index]]
    return lists


def _run(device, name, host, sizes, scalars, optional_absent=False):
    """Runs update `name` on copies of `host` on `device`; returns every list read back."""
    lists = [[to_device(device, a, a.dtype.name) for a in arrays] for arrays in host]
    if name == "sgd_update":
        us = None if optional_absent else lists[2]
        device.sgd_update(lists[0], lists[1], us, sizes, *scalars)
    else:
        device.adam_update(*lists, sizes, *scalars)
    return [[read(device, h, n) for h, n in zip(handles, sizes)] for handles in lists]


def test_spec_sgd_follows_its_formula():
    sizes = [7, 3]
    host = _host_lists(sizes, 3, 0)
    wd, keep, take, step, lookback = 0.01, 0.9, 0.3, 0.2, 0.05
    got = _run(spec, "sgd_update", [[a.astype(np.float64) for a in arrays] for arrays in host],
               sizes, (wd, keep, take, step, lookback))
    for t in range(len(sizes)):
        w, g, u = (host[k][t].astype(np.float64) for k in range(3))
        moved = keep * u + take * (g + wd * w)
        np.testing.assert_array_equal(got[2][t], moved)
        np.testing.assert_array_equal(got[0][t], w - step * moved + lookback * u)


def test_spec_adam_follows_its_formula():
    sizes = [9, 2]
    host = _host_lists(sizes, 4, 1, positive=(3,))
    wd, keep1, take1, keep2, take2, eps, step = 0.1, 0.9, 0.1, 0.99, 0.01, 1e-3, 0.05
    got = _run(spec, "adam_update", [[a.astype(np.float64) for a in arrays] for arrays in host],
               sizes, (wd, keep1, take1, keep2, take2, eps, step))
    for t in range(len(sizes)):
        w, g, m, v = (host[k][t].astype(np.float64) for k in range(4))
        d = g + wd * w
        m, v = keep1 * m + take1 * d, keep2 * v + take2 * d * d
        np.testing.assert_array_equal(got[2][t], m)
        np.testing.assert_array_equal(got[3][t], v)
        np.testing.assert_array_equal(got[0][t], w - step * (m / (np.sqrt(v) + eps)))


def test_spec_plain_sgd_leaves_no_state_and_skips_a_zero_decay():
    # With no weight decay an infinite weight must not turn the gradient into NaN.
    w = np.array([np.inf, 1.0], np.float32)
    got = _run(spec, "sgd_update", [[w], [np.array([1.0, 2.0], np.float32)]], [2],
               (0.0, 0.0, 0.0, 0.5, 0.0), optional_absent=True)
    np.testing.assert_array_equal(got[0][0], [np.inf, 0.0])


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("sizes", SIZE_LISTS.values(), ids=SIZE_LISTS.keys())
@pytest.mark.parametrize("case", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_device_sgd_matches_spec(device, sizes, case):
    absent = not case["momentum"]
    host = _host_lists(sizes, 2 if absent else 3, len(sizes))
    scalars = [case[k] for k in ("weight_decay", "keep", "take", "step", "lookback")]
    want = _run(spec, "sgd_update", host, sizes, scalars, absent)
    got = _run(device, "sgd_update", host, sizes, scalars, absent)
    for got_list, want_list in zip(got, want, strict=True):
        for got_array, want_array in zip(got_list, want_list, strict=True):
            # Devices may fuse a product into its sum: one rounding fewer.
            np.testing.assert_allclose(got_array, want_array, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("sizes", SIZE_LISTS.values(), ids=SIZE_LISTS.keys())
@pytest.mark.parametrize("case", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_device_adam_matches_spec(device, sizes, case):
    host = _host_lists(sizes, 4, len(sizes), positive=(3,))
    scalars = tuple(case.values())
    want = _run(spec, "adam_update", host, sizes, scalars)
    got = _run(device, "adam_update", host, sizes, scalars)
    for got_list, want_list in zip(got, want, strict=True):
        for got_array, want_array in zip(got_list, want_list, strict=True):
            np.testing.assert_allclose(got_array, want_array, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_device_special_values_follow_the_spec(device):
    # NaN and inf in gradients, weights and state; zero weight decay keeps an inf weight's
    # gradient finite on every device.
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, 1e-30, 2.0], np.float32)
    rolled = [np.roll(special, k) for k in range(4)]
    sizes = [special.size]
    for name, host, scalars, absent in (
            ("sgd_update", [[rolled[0]], [rolled[1]], [rolled[2]]], (0.0, 0.9, 0.1, 0.5, 0.2),
             False),
            # A weight decay and a look-back that round to 0 in float32 count as none.
            ("sgd_update", [[rolled[0]], [rolled[1]], [rolled[2]]],
             (1e-50, 0.9, 0.1, 0.5, 1e-50), False),
            ("adam_update", [[rolled[0]], [rolled[1]], [rolled[2]], [np.abs(rolled[3])]],
             (1e-50, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.01), False),
            ("sgd_update", [[rolled[0]], [rolled[1]]], (0.0, 0.0, 0.0, 0.5, 0.0), True),
            ("adam_update", [[rolled[0]], [rolled[1]], [rolled[2]], [np.abs(rolled[3])]],
             (0.0, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.01), False)):
        want = _run(spec, name, host, sizes, scalars, absent)
        got = _run(device, name, host, sizes, scalars, absent)
        for got_list, want_list in zip(got, want, strict=True):
            np.testing.assert_allclose(got_list[0], want_list[0], rtol=1e-6, err_msg=name)


BAD_LISTS = [
    (lambda h, s: (h[:1], h, h, s), ValueError, r"ws holds 1 buffers for 2 sizes"),
    (lambda h, s: (h, h, h[:1], s), ValueError, r"holds 1 buffers for 2 sizes"),
    (lambda h, s: (h, h, h, [4, 9]), ValueError, r"ws\[1\] holds 4 elements, fewer than its "
                                                 r"size 9"),
    (lambda h, s: (h, h, h, [4, -1]), ValueError, r"sizes\[1\] is negative"),
    (lambda h, s: (h, h, h, [4, 1.5]), TypeError, r"sizes must be a sequence of integers"),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["sgd_update", "adam_update"])
@pytest.mark.parametrize("make, error, message", BAD_LISTS,
                         ids=["short_ws", "short_state", "small_buffer", "negative", "float"])
def test_device_refuses_bad_lists_by_name(device, name, make, error, message):
    handles = [to_device(device, np.ones(4, np.float32)) for _ in range(2)]
    ws, gs, state, sizes = make(handles, [4, 4])
    before = [read(device, h, 4) for h in handles]
    with pytest.raises(error, match=message):
        if name == "sgd_update":
            device.sgd_update(ws, gs, state, sizes, 0.0, 0.9, 0.1, 0.1, 0.0)
        else:
            device.adam_update(ws, gs, state, state, sizes, 0.0, 0.9, 0.1, 0.9, 0.1, 1e-8, 0.1)
    for handle, values in zip(handles, before):
        np.testing.assert_array_equal(read(device, handle, 4), values)
