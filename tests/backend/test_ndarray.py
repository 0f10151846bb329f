"""NDArray semantics on every enabled device: views share the handle, compact() is the only copy,
operators and reductions match numpy, bad input names the shapes. Tests of the backend layer.
"""

import numpy as np
import pytest

from engine.backend import NDArray
from tests.devices import DEVICE_PARAMS

pytestmark = pytest.mark.parametrize("device", DEVICE_PARAMS)


def make(device, shape, seed=0):
    host = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return host, NDArray(host, device=device)


def test_views_share_the_handle_and_only_change_metadata(device):
    host, a = make(device, (4, 6))
    views = {
        "reshape": (a.reshape((2, 12)), host.reshape(2, 12)),
        "permute": (a.permute((1, 0)), host.T),
        "broadcast": (a[:1].broadcast_to((3, 6)), np.broadcast_to(host[:1], (3, 6))),
        "getitem": (a[1:4:2, ::-3], host[1:4:2, ::-3]),
        "flip": (a.flip((0,)), host[::-1]),
        "as_strided": (a.as_strided((3, 3), (7, 1)), np.lib.stride_tricks.as_strided(
            host, (3, 3), (28, 4))),
    }
    for name, (view, want) in views.items():
        assert view.handle is a.handle, name
        np.testing.assert_array_equal(view.numpy(), want, err_msg=name)
    assert a.permute((1, 0)).strides == (1, 6)
    assert a[:1].broadcast_to((3, 6)).strides == (0, 1)
    assert a[2:, 1:].offset == 13 and a[2:, 1:].strides == (6, 1)


def test_compact_copies_only_when_needed(device):
    _, a = make(device, (3, 5))
    assert a.compact() is a
    t = a.permute((1, 0))
    assert not t.is_compact()
    c = t.compact()
    assert c.is_compact() and c.handle is not a.handle
    np.testing.assert_array_equal(c.numpy(), a.numpy().T)


def test_writes_through_views_reach_the_base(device):
    host, a = make(device, (3, 4))
    a.flat[5:7] = NDArray(np.array([9.0, 8.0]), device=device)
    host.reshape(-1)[5:7] = [9.0, 8.0]
    a[:, 0] = 1.5
    host[:, 0] = 1.5
    a[1:, 2:] = NDArray(np.full((2, 2), -1.0), device=device)
    host[1:, 2:] = -1.0
    np.testing.assert_array_equal(a.numpy(), host)


def test_operators_reductions_and_matmul_match_numpy(device):
    x, a = make(device, (3, 4), 1)
    y, b = make(device, (3, 4), 2)
    np.testing.assert_allclose((a + b).numpy(), x + y, rtol=1e-6)
    np.testing.assert_allclose((a - b).numpy(), x - y, rtol=1e-6)
    np.testing.assert_allclose((a * 2.0).numpy(), x * 2.0, rtol=1e-6)
    np.testing.assert_allclose((1.0 / (abs(x) + 1) + 0).astype(np.float32),
                               (1.0 / (NDArray(abs(x) + 1, device=device))).numpy(), rtol=1e-6)
    np.testing.assert_array_equal((a >= b).numpy(), (x >= y).astype(np.float32))
    np.testing.assert_array_equal((a == a).numpy(), np.ones((3, 4), np.float32))
    np.testing.assert_allclose(a.maximum(b).numpy(), np.maximum(x, y))
    np.testing.assert_allclose(a.sum(axis=0).numpy(), x.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(a.sum().numpy(), x.sum(), rtol=1e-5)
    np.testing.assert_allclose(a.max(axis=(0, 1), keepdims=True).numpy(),
                               x.max(keepdims=True))
    np.testing.assert_allclose((a @ b.permute((1, 0))).numpy(), x @ y.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.relu_grad(b).numpy(), np.where(y > 0, x, 0))
    # Strided operands (a transposed view, a broadcast row) are compacted first.
    np.testing.assert_allclose(a.add_scaled(b.permute((1, 0)).permute((1, 0)), -0.5).numpy(),
                               x - 0.5 * y, rtol=1e-6)
    row = b[1:2, :].broadcast_to((3, 4))
    np.testing.assert_allclose(a.add_scaled(row, 2.0).numpy(), x + 2.0 * y[1:2], rtol=1e-6)
    np.testing.assert_allclose(a.axpby(0.9, row, 0.1).numpy(), 0.9 * x + 0.1 * y[1:2], rtol=1e-6)
    np.testing.assert_allclose(row.axpby(-2.0, a, 0.5).numpy(), -2.0 * y[1:2] + 0.5 * x,
                               rtol=1e-6)


def test_pad_and_fill(device):
    x, a = make(device, (2, 3))
    np.testing.assert_array_equal(a.pad(((1, 0), (2, 1))).numpy(),
                                  np.pad(x, ((1, 0), (2, 1))))
    a.fill(4.0)
    np.testing.assert_array_equal(a.numpy(), np.full((2, 3), 4.0))


@pytest.mark.parametrize("action,error,match", [
    (lambda a: a.reshape((5, 5)), ValueError, r"shape \(4, 6\).*\(5, 5\)"),
    (lambda a: a.reshape((-1, -1)), ValueError, "more than one -1"),
    (lambda a: a.permute((0, 0)), ValueError, "not a permutation"),
    (lambda a: a.broadcast_to((3, 6)), ValueError, r"broadcast shape \(4, 6\) to \(3, 6\)"),
    (lambda a: a[4], IndexError, "index 4 is out of bounds for axis 0 with size 4"),
    (lambda a: a[0, 0, 0], IndexError, "too many indices"),
    (lambda a: a + NDArray(np.ones((6, 4)), device=a.device), ValueError, r"\(4, 6\).*\(6, 4\)"),
    (lambda a: a @ a, ValueError, r"\(4, 6\) @ \(4, 6\)"),
    (lambda a: a.relu_grad(a[:2]), ValueError, r"\(4, 6\) and \(2, 6\)"),
    (lambda a: a.relu_grad(1.0), TypeError, "relu_grad needs an NDArray input, got float"),
    (lambda a: a.add_scaled(2.0, 0.5), TypeError, "add_scaled needs an NDArray to scale"),
    (lambda a: a.add_scaled(a, "x"), TypeError, "add_scaled needs a number to scale by, got str"),
    (lambda a: a.add_scaled(a.permute((1, 0)), 0.5), ValueError, r"\(4, 6\) and \(6, 4\)"),
    (lambda a: a.axpby(0.9, 2.0, 0.1), TypeError, "axpby needs an NDArray to add, got float"),
    (lambda a: a.axpby(0.9, a, None), TypeError, "axpby needs a number as beta, got NoneType"),
    (lambda a: a.axpby(0.9, a[:2], 0.1), ValueError, r"\(4, 6\) and \(2, 6\)"),
    (lambda a: a.sum(axis=3), ValueError, "axis 3 is out of range"),
    (lambda a: a["x"], TypeError, "unsupported index"),
    (lambda a: bool(a), TypeError, "ambiguous"),
])
def test_bad_input_raises_clear_errors(device, action, error, match):
    _, a = make(device, (4, 6))
    with pytest.raises(error, match=match):
        action(a)


def test_device_transfer_and_dtype(device):
    x, a = make(device, (2, 2))
    assert a.dtype == "float32"
    np.testing.assert_array_equal(a.to(device).numpy(), x)
    with pytest.raises(TypeError, match="dtypes"):
        NDArray(x, device=device, dtype="int32")
