"""Data: IDX reading and validation, MNISTDataset, the offline locator and its fallbacks, the
checksummed download (against a local HTTP server only), DataLoader, transforms, synthetic sets.
Engine layer tests (data)."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading

import numpy as np
import pytest

import engine as ndl
from engine.data import (
    ArrayDataset,
    DataLoader,
    IDXError,
    MNISTDataset,
    NDArrayDataset,
    RandomCrop,
    RandomFlipHorizontal,
    load_dataset,
)
from engine.data import mnist as mnist_module


def idx_bytes(array, magic):
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.tobytes()


def write_split(folder, split, count, seed=0, compress=True):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28))
    labels = rng.integers(0, 10, size=count)
    images_name, labels_name = mnist_module.FILES[split]
    paths = []
    for name, payload in ((images_name, idx_bytes(images, 2051)),
                          (labels_name, idx_bytes(labels, 2049))):
        path = folder / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(payload) if compress else payload)
        paths.append(path)
    return paths, images, labels


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No MNIST env vars, an empty user cache, no package fallback."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("engine.data.catalog._from_package", lambda name, split: None)
    monkeypatch.setattr("engine.data.mnist.SYSTEM_DIRS", {})
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_dataset_reads_gz_and_raw_idx(tmp_path, compress):
    (images_path, labels_path), images, labels = write_split(tmp_path, "train", 7,
                                                             compress=compress)
    dataset = MNISTDataset(images_path, labels_path)
    assert len(dataset) == 7 and dataset.X.shape == (7, 784) and dataset.X.dtype == np.float32
    np.testing.assert_allclose(dataset.X, images.reshape(7, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(dataset.y, labels)
    x, y = dataset[2]
    assert x.shape == (784,) and y == labels[2]


def test_transforms_see_28_28_1_images(tmp_path):
    (images_path, labels_path), _, _ = write_split(tmp_path, "train", 3)
    shapes = []
    dataset = MNISTDataset(images_path, labels_path,
                           transforms=[lambda img: shapes.append(img.shape) or img])
    x, _ = dataset[np.array([0, 2])]
    assert x.shape == (2, 784) and shapes == [(28, 28, 1)] * 2


@pytest.mark.parametrize("corrupt, message", [
    (lambda raw: struct.pack(">i", 1234) + raw[4:], "magic number 1234, expected 2051"),
    (lambda raw: raw[:-10], "header promises"),
    (lambda raw: raw[:6], "too short"),
])
def test_corrupt_idx_files_give_clear_errors(tmp_path, corrupt, message):
    (images_path, labels_path), _, _ = write_split(tmp_path, "train", 4, compress=False)
    images_path.write_bytes(corrupt(images_path.read_bytes()))
    with pytest.raises(IDXError, match=message):
        MNISTDataset(images_path, labels_path)


def test_missing_file_broken_gzip_and_count_mismatch(tmp_path):
    (images_path, labels_path), _, _ = write_split(tmp_path, "train", 4)
    with pytest.raises(FileNotFoundError, match="nowhere.idx"):
        MNISTDataset(tmp_path / "nowhere.idx", labels_path)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(images_path.read_bytes()[:40])
    with pytest.raises(IDXError, match="corrupt gzip"):
        MNISTDataset(broken, labels_path)
    (_, other_labels), _, _ = write_split(tmp_path, "test", 5)
    with pytest.raises(IDXError, match="4 images but .* 5 labels"):
        MNISTDataset(images_path, other_labels)
    with pytest.raises(IDXError, match="magic number 2049, expected 2051"):
        MNISTDataset(labels_path, labels_path)


def test_locator_prefers_argument_then_env_then_cache(isolated_env, monkeypatch):
    root, env, cache = (isolated_env / name for name in ("root", "env", "cache/dlsys-engine/mnist"))
    for seed, folder in enumerate((root, env, cache)):
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            write_split(folder, split, 5 + seed, seed=seed)
    monkeypatch.setenv("MNIST_DIR", str(env))
    assert len(load_dataset("mnist", root=root, download=False)) == 5
    assert len(load_dataset("mnist", download=False)) == 6
    monkeypatch.delenv("MNIST_DIR")
    described = load_dataset("mnist", split="test", download=False).describe()
    assert described["size"] == 7 and str(cache) in described["source"]


def test_test_set_only_is_split_deterministically_with_a_warning(isolated_env, monkeypatch):
    monkeypatch.setattr("engine.data.catalog.TEST_ONLY_TRAIN_SIZE", 8)
    write_split(isolated_env, "test", 10)
    with pytest.warns(UserWarning, match="60k train files not found"):
        train = load_dataset("mnist", root=isolated_env, split="train", download=False)
    with pytest.warns(UserWarning):
        test = load_dataset("mnist", root=isolated_env, split="test", download=False)
    assert (len(train), len(test)) == (8, 2)
    full = MNISTDataset(*mnist_module.find_split_files(isolated_env, "test"))
    np.testing.assert_array_equal(np.concatenate([train.y, test.y]), full.y)
    assert train.describe()["sha256"] != test.describe()["sha256"]


def test_nothing_found_names_the_searched_folders(isolated_env):
    with pytest.raises(FileNotFoundError, match="MNIST_DIR"):
        load_dataset("mnist", root=isolated_env / "empty", download=False)


@contextlib.contextmanager
def local_http_server(folder):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_local_server_verifies_sha256(isolated_env):
    served = isolated_env / "served"
    served.mkdir()
    paths = write_split(served, "train", 6)[0] + write_split(served, "test", 3, seed=1)[0]
    checksums = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    with local_http_server(served) as url:
        bad = {**checksums, paths[0].name: "sha256:" + "0" * 64}
        with pytest.warns(UserWarning, match="checksum"):
            with pytest.raises(FileNotFoundError):
                load_dataset("mnist", root=isolated_env / "none", mirrors=[url], checksums=bad)
        cache = mnist_module.cache_dir("mnist")
        assert not (cache / paths[0].name).exists()
        dead = "http://127.0.0.1:9/"  # a closed port: the loader moves on to the next mirror
        dataset = load_dataset("mnist", root=isolated_env / "none", mirrors=[dead, url],
                               checksums=checksums)
    assert len(dataset) == 6 and str(cache) in dataset.source
    assert sorted(os.listdir(cache)) == sorted(checksums)


def test_dataloader_order_batches_and_drop_last():
    dataset = NDArrayDataset(np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10))
    batches = list(DataLoader(dataset, batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(10))
    assert all(isinstance(t, ndl.Tensor) and not t.requires_grad for b in batches for t in b)
    assert len(DataLoader(dataset, batch_size=4, drop_last=True)) == 2
    assert [b[0].shape[0] for b in DataLoader(dataset, batch_size=4, drop_last=True)] == [4, 4]


def test_dataloader_shuffle_is_reproducible_from_a_seed_and_changes_per_epoch():
    dataset = NDArrayDataset(np.arange(50, dtype=np.float32).reshape(50, 1), np.arange(50))

    def epoch(loader):
        return np.concatenate([b[1].numpy() for b in loader])

    first, second = DataLoader(dataset, 8, shuffle=True, seed=3), DataLoader(dataset, 8,
                                                                             shuffle=True, seed=3)
    a1, a2 = epoch(first), epoch(first)
    np.testing.assert_array_equal(a1, epoch(second))
    assert sorted(a1) == list(range(50)) and not np.array_equal(a1, a2)
    ndl.manual_seed(4)
    b1 = epoch(DataLoader(dataset, 8, shuffle=True))
    ndl.manual_seed(4)
    np.testing.assert_array_equal(b1, epoch(DataLoader(dataset, 8, shuffle=True)))


def test_dataloader_collates_scalar_index_datasets():
    class Squares(ndl.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i], dtype=np.float32), i * i

    (x, y), = list(DataLoader(Squares(), batch_size=5))
    np.testing.assert_array_equal(y.numpy(), [0, 1, 4, 9, 16])


def test_dataloader_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(NDArrayDataset(np.zeros(3)), batch_size=0)


def test_transforms():
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    np.testing.assert_array_equal(RandomFlipHorizontal(p=1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(RandomFlipHorizontal(p=0.0)(img), img)
    ndl.manual_seed(0)
    crops = [RandomCrop(padding=1)(img) for _ in range(20)]
    assert all(c.shape == img.shape for c in crops)
    assert any(not np.array_equal(c, img) for c in crops)
    np.testing.assert_array_equal(RandomCrop(padding=0)(img), img)


@pytest.mark.parametrize("kind", ["spiral", "blobs", "teacher"])
def test_synthetic_sets_are_seeded_and_split(kind):
    train = load_dataset("synthetic", kind=kind, samples=200, seed=5)
    again = load_dataset("synthetic", kind=kind, samples=200, seed=5)
    test = load_dataset("synthetic", kind=kind, split="test", samples=200, seed=5)
    assert train.sha256 == again.sha256 and (len(train), len(test)) == (160, 40)
    assert load_dataset("synthetic", kind=kind, samples=200, seed=6).sha256 != train.sha256
    assert train.num_classes >= 2 and kind in train.describe()["source"]


def test_unknown_names_and_splits_are_errors():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="split"):
        load_dataset("synthetic", split="val")
    with pytest.raises(ValueError, match="unknown synthetic kind"):
        load_dataset("synthetic", kind="moons")


def test_array_dataset_subset_keeps_provenance():
    dataset = ArrayDataset(np.zeros((10, 2)), np.arange(10) % 3, source="unit")
    small = dataset.subset(4)
    assert len(small) == 4 and "first 4" in small.source and small.num_classes == 3
    with pytest.raises(ValueError, match="subset size"):
        dataset.subset(11)


@pytest.mark.skipif(not os.environ.get("MNIST_DIR"), reason="MNIST_DIR not set (real MNIST)")
def test_real_mnist_test_set_from_env():
    with pytest.warns(UserWarning):
        dataset = load_dataset("mnist", split="test", download=False)
    assert len(dataset) in (2000, 10000) and dataset.X.max() <= 1.0
    assert set(np.unique(dataset.y)) == set(range(10))
