"""MNIST-format data: the IDX reader (gz or raw, validated), `MNISTDataset`, and the locator that
finds the files offline (argument, environment variable, user cache, system folder). Engine layer
(data); the download into the cache lives in download.py, the by-name entry point in catalog.py.
"""

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ENV_VARS = {"mnist": "MNIST_DIR", "fashion_mnist": "FASHION_MNIST_DIR"}
SYSTEM_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",)}


class IDXError(ValueError):
    """A file that is not a valid IDX file of the expected kind."""


def _read_bytes(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise IDXError(f"{path}: corrupt gzip stream ({error})") from error
    return raw


def read_idx(path, expected_magic, expected_rank):
    """The uint8 array stored in an IDX file, after checking its magic number and that its size
    matches the dimensions in its header."""
    raw = _read_bytes(path)
    header = 4 + 4 * expected_rank
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic != expected_magic:
        raise IDXError(f"{path}: magic number {magic}, expected {expected_magic} "
                       f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file)")
    if len(raw) < header:
        raise IDXError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    dims = struct.unpack(f">{expected_rank}i", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise IDXError(f"{path}: header promises dimensions {dims} ({expected} bytes) but the "
                       f"file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_images(path):
    """(N, rows * cols) float32 in [0, 1], and (rows, cols)."""
    images = read_idx(path, IMAGES_MAGIC, 3)
    n, rows, cols = images.shape
    return images.reshape(n, rows * cols).astype(np.float32) / 255.0, (rows, cols)


def read_labels(path):
    return read_idx(path, LABELS_MAGIC, 1).astype(np.int64)


class MNISTDataset(ArrayDataset):
    """needle's MNISTDataset: X (N, 784) float32 in [0, 1], y (N,) labels; transforms see each
    image as (28, 28, 1)."""

    def __init__(self, image_filename, label_filename, transforms=None, name="mnist",
                 split="all", num_classes=10):
        X, (rows, cols) = read_images(image_filename)
        y = read_labels(label_filename)
        if len(X) != len(y):
            raise IDXError(f"{image_filename} holds {len(X)} images but {label_filename} holds "
                           f"{len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise IDXError(f"{label_filename}: labels outside [0, {num_classes})")
        super().__init__(X, y, transforms, image_shape=(rows, cols, 1), name=name, split=split,
                         source=f"IDX files {image_filename}, {label_filename}",
                         num_classes=num_classes)


def cache_dir(name):
    """The per-user cache folder of dataset `name`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlsys-engine" / name


def candidate_dirs(name, root=None):
    """Folders to search, in order: `root`, the dataset's environment variable, the user cache,
    then system folders (Debian's dataset-fashion-mnist for fashion_mnist)."""
    dirs = []
    if root:
        dirs.append(Path(root))
    env = os.environ.get(ENV_VARS.get(name, ""), "")
    if env:
        dirs.append(Path(env))
    dirs.append(cache_dir(name))
    dirs.extend(Path(d) for d in SYSTEM_DIRS.get(name, ()))
    return dirs


def find_split_files(folder, split):
    """(images path, labels path) of `split` in `folder`, raw or .gz, or None."""
    found = []
    for stem in FILES[split]:
        for candidate in (Path(folder) / stem, Path(folder) / f"{stem}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return tuple(found)


def locate(name, root=None):
    """{'train': files or None, 'test': files or None, 'folder': Path} of the first folder that
    holds both splits, else of the first that holds the test split; None when nothing is found."""
    partial = None
    for folder in candidate_dirs(name, root):
        splits = {split: find_split_files(folder, split) for split in FILES}
        if splits["train"] and splits["test"]:
            return {**splits, "folder": folder}
        if splits["test"] and partial is None:
            partial = {**splits, "folder": folder}
    return partial
