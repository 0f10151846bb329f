"""The device protocol's repeated-row elementwise functions (ewise_add_row, ewise_mul_row): the
numpy spec against written values, then every enabled device against the spec, `out` aliasing
`a` included. Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from engine.backend.protocol import ROW_FUNCTIONS
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS


def run(device, name, a, row, alias=False):
    a_handle = to_device(device, a)
    out = a_handle if alias else device.alloc(max(a.size, 1), "float32")
    getattr(device, name)(a_handle, to_device(device, row), out, a.size, row.size)
    return read(device, out, a.size)


def test_spec_matches_written_values():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32)
    row = np.array([10.0, 20.0, 30.0], np.float32)
    np.testing.assert_array_equal(run(spec, "ewise_add_row", a, row),
                                  [11.0, 22.0, 33.0, 14.0, 25.0, 36.0])
    np.testing.assert_array_equal(run(spec, "ewise_mul_row", a, row[:2]),
                                  [10.0, 40.0, 30.0, 80.0, 50.0, 120.0])


# (rows, period): one element; one row; a bias over a batch; periods that do not divide a
# Triton block; more elements than the C threading grain.
SHAPES = [(1, 1), (1, 37), (100, 10), (7, 1000), (300, 129), (5000, 10)]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ROW_FUNCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("alias", [False, True], ids=["new_out", "out_is_a"])
def test_device_matches_spec(device, name, shape, alias):
    rng = np.random.default_rng(shape[0] * shape[1])
    a = rng.standard_normal(shape).astype(np.float32).reshape(-1)
    row = rng.standard_normal(shape[1]).astype(np.float32)
    row[0] = np.inf if shape[1] > 1 else row[0]
    want = run(spec, name, a, row)
    np.testing.assert_array_equal(run(device, name, a, row, alias), want)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ROW_FUNCTIONS)
def test_empty_input_writes_nothing(device, name):
    out = to_device(device, np.full(3, 7.0))
    getattr(device, name)(device.alloc(1, "float32"), to_device(device, np.ones(4)), out, 0, 4)
    np.testing.assert_array_equal(read(device, out, 3), [7.0] * 3)
