"""NDArray arithmetic on layouts the kernels read as stored: a broadcast row (a bias, a scale)
in add and multiply, on either side of the operator, and permuted dense views (NHWC activations
seen as NCHW) in every elementwise op, whose result keeps the view's layout; one kernel and no
copy. Other views still compact. Tests of the backend layer.
"""

import numpy as np
import pytest

import engine as ndl
from engine.backend import NDArray, count_launches
from engine.backend.strides import canonical_strides, is_permuted_dense, repeated_row_period
from tests.devices import DEVICE_PARAMS

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("shape, strides, offset, period", [
    ((4, 10), (0, 1), 0, 10),            # a bias row over a batch
    ((2, 3, 3, 5), (0, 0, 0, 1), 0, 5),  # a channel bias over NHWC pixels
    ((4, 3, 5), (0, 5, 1), 0, 15),       # a repeated matrix
    ((4, 10), (0, 0), 0, 1),             # a broadcast scalar
    ((1, 10), (10, 1), 0, 10),           # a size-1 axis's stride does not matter
    ((4, 10), (0, 1), 3, 0),             # not at the start of its buffer
    ((4, 10), (1, 0), 0, 0),             # a column repeated along rows
    ((4, 10), (0, 2), 0, 0),             # a strided row
])
def test_repeated_row_period(shape, strides, offset, period):
    base = NDArray(np.zeros(64), device=ndl.cpu_numpy())
    assert repeated_row_period(base._like(shape, strides, offset)) == period


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("row_first", [False, True], ids=["dense_op_row", "row_op_dense"])
@pytest.mark.parametrize("shape, row_shape", [((6, 10), (1, 10)), ((2, 3, 4, 5), (1, 1, 1, 5)),
                                              ((6, 10), (1, 1))], ids=str)
def test_broadcast_row_is_one_kernel(device, op, row_first, shape, row_shape):
    dense_host = RNG.standard_normal(shape).astype(np.float32)
    row_host = RNG.standard_normal(row_shape).astype(np.float32)
    dense = NDArray(dense_host, device=device)
    row = NDArray(row_host, device=device).broadcast_to(shape)
    apply = (lambda a, b: a + b) if op == "add" else (lambda a, b: a * b)
    with count_launches(device) as launches:
        out = apply(row, dense) if row_first else apply(dense, row)
    assert dict(launches) == {f"ewise_{op}_row": 1}
    np.testing.assert_array_equal(out.numpy(), apply(dense_host, row_host))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_other_broadcasts_and_ops_still_compact(device):
    dense_host = RNG.standard_normal((4, 6)).astype(np.float32)
    column_host = RNG.standard_normal((4, 1)).astype(np.float32)
    dense = NDArray(dense_host, device=device)
    column = NDArray(column_host, device=device).broadcast_to((4, 6))
    with count_launches(device) as launches:
        total = dense + column
        quotient = dense / NDArray(column_host.T[:, :1], device=device).broadcast_to((4, 6))
    assert launches["compact"] == 2 and "ewise_add_row" not in launches
    np.testing.assert_array_equal(total.numpy(), dense_host + column_host)
    np.testing.assert_allclose(quotient.numpy(), dense_host / column_host.T[:, :1], rtol=1e-6)


def test_linear_layer_forward_with_bias_is_one_kernel():
    device = ndl.cpu_numpy()
    layer = ndl.nn.Linear(5, 3, device=device)
    x = ndl.Tensor(RNG.standard_normal((4, 5)), device=device, dtype="float32")
    with count_launches(device) as launches:
        layer(x)
    assert dict(launches) == {"matmul": 1}


def test_mixed_dtypes_follow_the_first_operand_whatever_the_layouts():
    device = ndl.cpu_numpy()
    narrow = NDArray(np.ones((3, 4)), device=device, dtype="float32")
    wide = NDArray(np.ones((4, 3)), device=device, dtype="float64")
    assert (narrow + wide.permute((1, 0))).dtype == "float32"
    assert (narrow * NDArray(np.ones(4), device=device, dtype="float64").broadcast_to((3, 4))
            ).dtype == "float32"


@pytest.mark.parametrize("shape, strides, dense", [
    ((2, 3, 4), (12, 4, 1), True),       # compact
    ((2, 4, 3), (12, 1, 4), True),       # a permute of a compact array
    ((2, 16, 5, 5), (400, 1, 80, 16), True),  # NHWC seen as NCHW
    ((3, 1, 4), (4, 99, 1), True),       # a size-1 axis's stride does not matter
    ((2, 3), (0, 1), False),             # broadcast
    ((2, 3), (6, 2), False),             # a gap (every other element)
    ((2, 3), (3, 2), False),             # overlapping
])
def test_is_permuted_dense(shape, strides, dense):
    assert is_permuted_dense(shape, strides) is dense


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", ["add", "mul", "relu", "scalar", "relu_grad"])
def test_permuted_views_are_one_kernel_and_keep_their_layout(device, op):
    nhwc = [RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(2)]
    a, b = (NDArray(h, device=device).permute((0, 3, 1, 2)) for h in nhwc)
    want_a, want_b = (np.transpose(h, (0, 3, 1, 2)) for h in nhwc)
    run, want = {
        "add": (lambda: a + b, want_a + want_b),
        "mul": (lambda: a * b, want_a * want_b),
        "relu": (lambda: a.relu(), np.maximum(want_a, 0)),
        "scalar": (lambda: a * 2.5, want_a * np.float32(2.5)),
        "relu_grad": (lambda: a.relu_grad(b), np.where(want_b > 0, want_a, 0)),
    }[op]
    with count_launches(device) as launches:
        out = run()
    assert sum(launches.values()) == 1 and "compact" not in launches
    assert out.strides == a.strides and out.shape == a.shape
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_views_of_different_layouts_still_compact(device):
    a = NDArray(RNG.standard_normal((3, 4)).astype(np.float32), device=device).permute((1, 0))
    b = NDArray(RNG.standard_normal((4, 3)).astype(np.float32), device=device)
    with count_launches(device) as launches:
        out = a + b
    assert launches["compact"] == 1 and out.is_compact()
    np.testing.assert_allclose(out.numpy(), a.numpy() + b.numpy(), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape, axes", [
    ((3, 1, 4, 5), (0, 2, 3, 1)),
    ((3, 4, 1, 1), (0, 2, 3, 1)),
], ids=["one_channel_image", "one_pixel_map"])
def test_views_already_in_order_are_compact(device, shape, axes):
    # A size-1 axis's stride never moves, so views that only permute size-1 axes (a one-channel
    # NCHW image seen as NHWC, a 1x1 feature map) are compact: no copy anywhere.
    host = RNG.standard_normal(shape).astype(np.float32)
    view = NDArray(host, device=device).permute(axes)
    assert view.is_compact()
    with count_launches(device) as launches:
        same = view.compact()
        flat = view.reshape((shape[0], -1))
        doubled = view + view
    assert same is view and flat.handle is view.handle
    assert dict(launches) == {"ewise_add": 1}
    np.testing.assert_array_equal(flat.numpy(), np.transpose(host, axes).reshape(shape[0], -1))
    np.testing.assert_array_equal(doubled.numpy(), 2 * np.transpose(host, axes))


def test_canonical_strides_only_touch_size_one_axes():
    assert canonical_strides((2, 1, 3), (3, 99, 1)) == (3, 3, 1)
    assert canonical_strides((2, 3), (1, 2)) == (1, 2)
    assert canonical_strides((4, 1), (0, 7)) == (0, 1)
