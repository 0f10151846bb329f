"""Reference checks of the whole stack on real MNIST digits available offline ($MNIST_DIR): the
course's homework-0 setups (softmax regression; 2-layer ReLU MLP without biases), sequential
batches of 100, lr 0.2. Engine layer tests (nn + optim + data end to end)."""

import os
import warnings

import numpy as np
import pytest

import engine as ndl
from engine import init, nn, optim
from engine.data import DataLoader, load_dataset

pytestmark = pytest.mark.skipif(not os.environ.get("MNIST_DIR"),
                                reason="MNIST_DIR is not set: no real MNIST digits offline")


def mnist_split(split):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test-set-only fallback warns; expected here
        return load_dataset("mnist", split=split, download=False)


def error_rate(model, dataset):
    logits = model(ndl.Tensor(dataset.X, dtype="float32", requires_grad=False)).numpy()
    return float(np.mean(logits.argmax(axis=1) != dataset.y))


def train(model, dataset, epochs, lr=0.2, batch_size=100):
    optimizer = optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.SoftmaxLoss()
    for _ in range(epochs):
        for x, y in DataLoader(dataset, batch_size=batch_size):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    return model


def softmax_regression():
    return nn.Linear(784, 10, bias=False, weight_init=init.zeros)


def two_layer_mlp(hidden=100):
    """Homework 0's init: W1 ~ N(0, 1/hidden), W2 ~ N(0, 1/classes)."""
    def scaled_normal(fan_in, fan_out, **kwargs):
        return init.randn(fan_in, fan_out, std=1.0 / np.sqrt(fan_out), **kwargs)

    return nn.Sequential(nn.Linear(784, hidden, bias=False, weight_init=scaled_normal),
                         nn.ReLU(),
                         nn.Linear(hidden, 10, bias=False, weight_init=scaled_normal))


def test_softmax_regression_two_epochs_fast():
    train_set, test_set = mnist_split("train"), mnist_split("test")
    model = train(softmax_regression(), train_set, epochs=2)
    train_error, test_error = error_rate(model, train_set), error_rate(model, test_set)
    assert train_error < 0.14 and test_error < 0.11, (train_error, test_error)


@pytest.mark.slow
def test_softmax_regression_reaches_homework_error():
    train_set, test_set = mnist_split("train"), mnist_split("test")
    model = train(softmax_regression(), train_set, epochs=10)
    train_error, test_error = error_rate(model, train_set), error_rate(model, test_set)
    assert train_error < 0.10 and test_error < 0.09, (train_error, test_error)


@pytest.mark.slow
def test_two_layer_mlp_reaches_homework_error():
    ndl.manual_seed(0)
    train_set, test_set = mnist_split("train"), mnist_split("test")
    model = train(two_layer_mlp(), train_set, epochs=10)
    train_error, test_error = error_rate(model, train_set), error_rate(model, test_set)
    assert train_error < 0.05 and test_error < 0.07, (train_error, test_error)
