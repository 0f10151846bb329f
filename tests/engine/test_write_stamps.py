"""A graph whose inputs' buffers were written after it was built refuses to differentiate, through
every alias of the buffer (`.data`, `detach()`, NDArray views), and a replaced `.data` too. Engine
tests of autograd's update clock (engine/backend/write_stamps.py).
"""

import gc

import numpy as np
import pytest

import engine as ndl
from engine import nn, optim
from engine.backend import write_stamps

DEVICE = ndl.cpu_numpy()
STALE = r"changed .* after the graph this backward runs through was built"


def _weight():
    return nn.Parameter(ndl.Tensor(np.arange(6.0).reshape(3, 2) / 6, device=DEVICE,
                                   dtype="float64"))


def _input():
    return ndl.Tensor(np.ones((4, 3)), device=DEVICE, dtype="float64", requires_grad=True)


@pytest.mark.parametrize("alias", ["detach", "data", "tensor"])
def test_a_step_reaches_graphs_built_on_an_alias(alias):
    weight = _weight()
    shared = {"detach": weight.detach, "data": lambda: weight.data,
              "tensor": lambda: ndl.Tensor(weight, requires_grad=False)}[alias]()
    x = _input()
    stale = ndl.matmul(x, shared).sum()  # x's gradient reads the alias's values
    weight.grad = ndl.Tensor(np.ones((3, 2)), device=DEVICE, dtype="float64")
    optim.SGD([weight], lr=0.5).step()
    with pytest.raises(RuntimeError, match=STALE):
        stale.backward()
    assert x.grad is None


def test_a_write_through_an_array_view_is_seen():
    weight = _weight()
    x = _input()
    stale = ndl.matmul(x, weight).sum()
    weight.realize_cached_data().reshape((6,))[2:4] = 0.0
    with pytest.raises(RuntimeError, match=STALE):
        stale.backward()


def test_a_new_data_array_is_seen():
    weight = _weight()
    x = _input()
    stale = ndl.matmul(x, weight).sum()
    weight.data = ndl.Tensor(np.zeros((3, 2)), device=DEVICE, dtype="float64")
    with pytest.raises(RuntimeError, match=STALE):
        stale.backward()


def test_writes_before_the_graph_or_to_other_buffers_are_fine():
    weight, other = _weight(), _weight()
    weight.realize_cached_data()[0, 0] = 5.0
    x = _input()
    loss = ndl.matmul(x, weight).sum()
    other.realize_cached_data()[0, 0] = 5.0
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.tile(weight.numpy().sum(axis=1), (4, 1)))


def test_stamps_of_freed_buffers_are_dropped():
    gc.collect()
    before = len(write_stamps._stamps)
    arrays = [ndl.NDArray(np.zeros(3), device=DEVICE) for _ in range(50)]
    for array in arrays:
        array[0] = 1.0
    assert len(write_stamps._stamps) == before + 50
    del arrays, array
    gc.collect()
    assert len(write_stamps._stamps) == before


def test_a_write_into_an_output_its_node_differentiates_through_is_seen():
    # exp's gradient reads its own output (so does a ReLU layer's, ops.linear).
    weight = _weight()
    x = _input()
    out = ndl.exp(ndl.matmul(x, weight))
    out.detach().realize_cached_data()[:, :] = 0.0
    loss = out.sum()
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()


def test_a_training_step_takes_the_quick_check(monkeypatch):
    # Its writes (the optimizer's) come before the graph: no buffer is looked up.
    weight = _weight()
    optimizer = optim.SGD([weight], lr=0.1)
    looked_up = []
    real = write_stamps.written_after
    monkeypatch.setattr(write_stamps, "written_after",
                        lambda *args: looked_up.append(1) or real(*args))
    for _ in range(2):
        optimizer.zero_grad()
        ndl.matmul(_input(), weight).sum().backward()
        optimizer.step()
    assert not looked_up
