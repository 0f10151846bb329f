"""matmul's epilogues, on every enabled device against the numpy device: `gate` (the product and
ReLU's gradient in one kernel) and `relu` (a layer's product and activation). Tests of the backend
layer (the protocol's matmul).
"""

import numpy as np
import pytest

from engine.backend import numpy_device as spec
from tests.backend.test_protocol import MATMUL_CASES
from tests.device_buffers import read, to_device
from tests.devices import DEVICE_PARAMS

RNG = np.random.default_rng(7)

# The plain product's cases (rank 1 up, transposed views, a broadcast batch), then a transposed
# B and a Linear layer's input gradient.
GATED_CASES = MATMUL_CASES[:4] + [
    (2, 33, 20, 40, (33 * 20, 20, 1), (20 * 40, 1, 20)),
    (1, 100, 100, 100, (0, 1, 100), (0, 100, 1)),
]


def _gate(size):
    """A gate with every kind of value the rule distinguishes: negative, -0, +0, tiny positive,
    positive, NaN, inf and -inf."""
    gate = RNG.standard_normal(size).astype(np.float32)
    special = np.array([-0.0, 0.0, 1e-38, np.nan, np.inf, -np.inf], dtype=np.float32)
    gate[RNG.integers(0, size, size // 3 + 1)] = RNG.choice(special, size // 3 + 1)
    return gate


def _operands(batch, m, k, n, a_strides, b_strides):
    a_size = (batch - 1) * a_strides[0] + (m - 1) * a_strides[1] + (k - 1) * a_strides[2] + 1
    b_size = (batch - 1) * b_strides[0] + (k - 1) * b_strides[1] + (n - 1) * b_strides[2] + 1
    return (RNG.standard_normal(a_size + 3).astype(np.float32),
            RNG.standard_normal(b_size + 2).astype(np.float32))


@pytest.mark.parametrize("case", GATED_CASES, ids=str)
def test_spec_gates_its_own_product(case):
    batch, m, k, n, a_strides, b_strides = case
    a, b = _operands(batch, m, k, n, a_strides, b_strides)
    size = batch * m * n
    gate = _gate(size)
    plain, gated = spec.alloc(size, "float32"), spec.alloc(size, "float32")
    spec.matmul(a, b, plain, batch, m, k, n, 3, *a_strides, 2, *b_strides)
    spec.matmul(a, b, gated, batch, m, k, n, 3, *a_strides, 2, *b_strides, gate=gate)
    np.testing.assert_array_equal(gated, np.where(gate <= 0, np.float32(0), plain))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", GATED_CASES, ids=str)
def test_gated_product_is_the_device_product_gated(device, case):
    # Exactly the device's own product with ewise_relu_grad after it (the gate changes the
    # epilogue only), and close to the spec's.
    batch, m, k, n, a_strides, b_strides = case
    a, b = _operands(batch, m, k, n, a_strides, b_strides)
    size = batch * m * n
    gate = _gate(size)
    a_handle, b_handle, gate_handle = (to_device(device, v) for v in (a, b, gate))
    plain, gated = device.alloc(size, "float32"), device.alloc(size, "float32")
    device.matmul(a_handle, b_handle, plain, batch, m, k, n, 3, *a_strides, 2, *b_strides)
    device.matmul(a_handle, b_handle, gated, batch, m, k, n, 3, *a_strides, 2, *b_strides,
                  gate=gate_handle)
    separate = device.alloc(size, "float32")
    device.ewise_relu_grad(plain, gate_handle, separate, size)
    got = read(device, gated, size)
    np.testing.assert_array_equal(got, read(device, separate, size))
    want = spec.alloc(size, "float32")
    spec.matmul(a, b, want, batch, m, k, n, 3, *a_strides, 2, *b_strides, gate=gate)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.all(got[gate <= 0] == 0)
    np.testing.assert_array_equal(read(device, gate_handle, size), gate)  # read only


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_gate_shorter_than_the_product_is_refused(device):
    batch, m, k, n = 2, 3, 4, 5
    a = to_device(device, RNG.standard_normal(batch * m * k).astype(np.float32))
    b = to_device(device, RNG.standard_normal(batch * k * n).astype(np.float32))
    out = to_device(device, np.full(batch * m * n, 7.0, dtype=np.float32))
    short = to_device(device, np.ones(batch * m * n - 1, dtype=np.float32))
    with pytest.raises(ValueError, match="matmul"):
        device.matmul(a, b, out, batch, m, k, n, 0, m * k, k, 1, 0, k * n, n, 1, gate=short)
    np.testing.assert_array_equal(read(device, out, batch * m * n), 7.0)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in numpy's product
@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", GATED_CASES, ids=str)
def test_relu_product_is_the_device_product_then_relu(device, case):
    # Exactly the device's ewise_relu after its own product; infinities in `a` make some products
    # NaN and infinite, which ReLU keeps and passes or zeroes as the elementwise kernel does.
    batch, m, k, n, a_strides, b_strides = case
    a, b = _operands(batch, m, k, n, a_strides, b_strides)
    a[RNG.integers(0, a.size, a.size // 10 + 1)] = np.inf
    b[RNG.integers(0, b.size, b.size // 10 + 1)] = 0.0
    size = batch * m * n
    a_handle, b_handle = to_device(device, a), to_device(device, b)
    plain, fused = device.alloc(size, "float32"), device.alloc(size, "float32")
    device.matmul(a_handle, b_handle, plain, batch, m, k, n, 3, *a_strides, 2, *b_strides)
    device.matmul(a_handle, b_handle, fused, batch, m, k, n, 3, *a_strides, 2, *b_strides,
                  relu=True)
    separate = device.alloc(size, "float32")
    device.ewise_relu(plain, separate, size)
    got = read(device, fused, size)
    np.testing.assert_array_equal(got, read(device, separate, size))
    want = spec.alloc(size, "float32")
    spec.matmul(a, b, want, batch, m, k, n, 3, *a_strides, 2, *b_strides, relu=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.all(got[np.isfinite(got)] >= 0)


DROPOUT = (round(0.3 * 2**24), 1.0 / 0.7, 0x9E3779B)  # threshold, scale, seed: p = 0.3


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("case", GATED_CASES[1:], ids=str)
@pytest.mark.parametrize("epilogues", [("bias",), ("bias", "relu"), ("bias", "gate"),
                                       ("bias", "gate", "relu"), ("dropout",),
                                       ("bias", "dropout", "relu"), ("dropout", "gate")],
                         ids="+".join)
def test_epilogues_run_in_order_as_their_own_kernels(device, case, epilogues):
    # bias, dropout, gate, relu: exactly ewise_add_row, ewise_dropout (its mask indexed over the
    # whole result), ewise_relu_grad and ewise_relu in turn.
    batch, m, k, n, a_strides, b_strides = case
    a, b = _operands(batch, m, k, n, a_strides, b_strides)
    size = batch * m * n
    bias, gate = RNG.standard_normal(n).astype(np.float32), _gate(size)
    handles = {"bias": to_device(device, bias), "gate": to_device(device, gate)}
    a_handle, b_handle = to_device(device, a), to_device(device, b)
    plain, fused = device.alloc(size, "float32"), device.alloc(size, "float32")
    device.matmul(a_handle, b_handle, plain, batch, m, k, n, 3, *a_strides, 2, *b_strides)
    asked = {name: handles[name] for name in ("bias", "gate") if name in epilogues}
    if "dropout" in epilogues:
        asked["dropout"] = DROPOUT
    device.matmul(a_handle, b_handle, fused, batch, m, k, n, 3, *a_strides, 2, *b_strides,
                  relu="relu" in epilogues, **asked)
    if "bias" in epilogues:
        device.ewise_add_row(plain, handles["bias"], plain, size, n)
    if "dropout" in epilogues:
        device.ewise_dropout(plain, plain, size, *DROPOUT)
    if "gate" in epilogues:
        device.ewise_relu_grad(plain, handles["gate"], plain, size)
    if "relu" in epilogues:
        device.ewise_relu(plain, plain, size)
    got = read(device, fused, size)
    np.testing.assert_array_equal(got, read(device, plain, size))
    if "dropout" in epilogues:
        assert 0 < np.mean(got == 0) < 1  # the mask drops a share, not all or nothing
    np.testing.assert_array_equal(read(device, handles["bias"], n), bias)  # read only


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_bias_shorter_than_a_row_is_refused(device):
    m, k, n = 3, 4, 5
    a = to_device(device, RNG.standard_normal(m * k).astype(np.float32))
    b = to_device(device, RNG.standard_normal(k * n).astype(np.float32))
    out = to_device(device, np.full(m * n, 7.0, dtype=np.float32))
    with pytest.raises(ValueError, match="matmul"):
        device.matmul(a, b, out, 1, m, k, n, 0, 0, k, 1, 0, 0, n, 1,
                      bias=to_device(device, np.ones(n - 1, dtype=np.float32)))
    np.testing.assert_array_equal(read(device, out, m * n), 7.0)
