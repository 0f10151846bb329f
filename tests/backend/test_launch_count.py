"""count_launches: counts a device's kernel calls by protocol function, nests, and always puts the
device's own functions back. Tests of the backend layer's diagnostic.
"""

import numpy as np
import pytest

import engine as ndl
from engine.backend import count_launches
from tests.devices import DEVICE_PARAMS


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_counts_kernels_not_transfers(device):
    a = ndl.NDArray(np.arange(6.0).reshape(2, 3), device=device)
    with count_launches(device) as launches:
        b = (a + 1.0) * a
        total = b.sum(axis=1)
        host = total.numpy()
    assert dict(launches) == {"scalar_add": 1, "ewise_mul": 1, "reduce_sum": 1}
    np.testing.assert_allclose(host, [0 + 2 + 6, 12 + 20 + 30])


def test_counts_nest_and_the_device_is_restored():
    device = ndl.cpu_numpy()
    a = ndl.NDArray(np.ones(4), device=device)
    before = device.ewise_add
    with count_launches(device) as outer:
        a + a
        with count_launches(device) as inner:
            a + a
        a + a
    assert outer["ewise_add"] == 3 and inner["ewise_add"] == 1
    assert device.ewise_add is before


def test_an_exception_still_restores_the_device():
    device = ndl.cpu_numpy()
    before = device.ewise_mul
    with pytest.raises(ValueError, match="shapes"):
        with count_launches(device):
            ndl.NDArray(np.ones(3), device=device) * ndl.NDArray(np.ones(4), device=device)
    assert device.ewise_mul is before
