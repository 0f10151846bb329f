"""Dropout drawn on the device (ops.dropout, behind nn.Dropout): the mask the spec's hash gives,
the same mask on every device, its gradient against central differences, one kernel each way,
and bad arguments. Engine tests.
"""

import numpy as np
import pytest

import engine as ndl
from engine import nn
from engine.backend import count_launches
from engine.backend import numpy_device as spec
from tests.devices import DEVICE_PARAMS
from tests.op_check import check_op

P, SEED = 0.3, 123_456_789


def _expected(x, p=P, seed=SEED):
    """x * mask / (1 - p) with the protocol's mask, in float64."""
    hashes = spec.dropout_hash(seed, np.arange(x.size, dtype=np.uint64)).reshape(x.shape)
    keep = (hashes >> np.uint64(8)) >= round(p * 2**24)
    return np.where(keep, x / (1.0 - p), 0.0)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("view", ("compact", "permuted", "sliced"))
def test_dropout_value_and_gradient(device, view):
    check_op(lambda x: ndl.ops.dropout(x, P, SEED), _expected, (6, 7), device=device, view=view)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_every_device_draws_the_same_mask(device):
    x = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    out = ndl.ops.dropout(ndl.Tensor(x, device=device), 0.5, 7).numpy()
    reference = ndl.ops.dropout(ndl.Tensor(x, device=ndl.cpu_numpy()), 0.5, 7).numpy()
    np.testing.assert_array_equal(out == 0, reference == 0)
    np.testing.assert_allclose(out, reference, rtol=1e-6)


def test_dropout_layer_is_one_kernel_each_way_and_seeded_by_the_engine():
    device = ndl.cpu_numpy()
    layer = nn.Dropout(0.5)
    x = ndl.Tensor(np.ones((8, 16)), device=device, dtype="float32")
    ndl.manual_seed(3)
    with count_launches(device) as forward:
        y = layer(x)
    with count_launches(device) as backward:
        y.backward(ndl.Tensor(np.ones((8, 16)), device=device, dtype="float32"))
    assert dict(forward) == {"ewise_dropout": 1} and dict(backward) == {"ewise_dropout": 1}
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # the same mask both ways
    ndl.manual_seed(3)
    np.testing.assert_array_equal(layer(x).numpy(), y.numpy())


@pytest.mark.parametrize("p, seed, message", [
    (1.0, 0, r"p must lie in \[0, 1\), got 1.0"),
    (-0.1, 0, r"p must lie in \[0, 1\), got -0.1"),
    (0.5, -1, r"seed must lie in \[0, 2\^32\), got -1"),
    (0.5, 2**32, r"seed must lie in \[0, 2\^32\), got 4294967296"),
])
def test_bad_arguments_raise(p, seed, message):
    with pytest.raises(ValueError, match=message):
        ndl.ops.dropout(ndl.Tensor(np.ones(3), device=ndl.cpu_numpy()), p, seed)


def test_a_fractional_seed_is_rejected():
    with pytest.raises(TypeError):
        ndl.ops.dropout(ndl.Tensor(np.ones(3), device=ndl.cpu_numpy()), 0.5, 1.5)

