"""Datasets: `Dataset` (needle's base), `NDArrayDataset`, and `ArrayDataset`, an in-memory
(X, y) set that knows where it came from (source, size, sha256 for every run's record).
Engine layer (data).
"""

import hashlib

import numpy as np


class Dataset:
    """Base class: `__getitem__(index)` returns a tuple of arrays, `__len__` the example count."""

    def __init__(self, transforms=None):
        self.transforms = list(transforms) if transforms else []

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} does not define __getitem__ (a Dataset subclass "
                        "must)")

    def __len__(self):
        raise TypeError(f"{type(self).__name__} does not define __len__ (a Dataset subclass must)")

    def apply_transforms(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x


class NDArrayDataset(Dataset):
    """Tuples of equally long arrays, indexed along their first axis."""

    batch_indexing = True

    def __init__(self, *arrays):
        super().__init__()
        self.arrays = [np.asarray(a) for a in arrays]
        lengths = {len(a) for a in self.arrays}
        if len(lengths) > 1:
            raise ValueError(f"NDArrayDataset: arrays have different lengths "
                             f"{[len(a) for a in self.arrays]}")

    def __len__(self):
        return len(self.arrays[0]) if self.arrays else 0

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class ArrayDataset(Dataset):
    """Examples X (N, features) float32 and integer labels y (N,), plus provenance.

    `image_shape` (e.g. (28, 28, 1)) is the shape transforms see; X stays flat as in needle.
    Integer-array or slice indices return a whole batch at once (what DataLoader uses)."""

    batch_indexing = True

    def __init__(self, X, y, transforms=None, image_shape=None, name="arrays", split="all",
                 source="in-memory arrays", num_classes=None):
        super().__init__(transforms)
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y)
        if X.ndim < 1 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"ArrayDataset needs X (N, ...) and y (N,), got X {X.shape} and "
                             f"y {y.shape}")
        self.X, self.y = X, y
        self.image_shape = tuple(image_shape) if image_shape else None
        self.name, self.split, self.source = name, split, source
        self.num_classes = int(num_classes) if num_classes is not None else (
            int(y.max()) + 1 if len(y) else 0)
        self._sha256 = None

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        x, y = self.X[index], self.y[index]
        if not self.transforms:
            return x, y
        if x.ndim == self.X.ndim:
            return np.stack([self._transform_one(row) for row in x]), y
        return self._transform_one(x), y

    def _transform_one(self, row):
        shape = self.image_shape or row.shape
        return self.apply_transforms(row.reshape(shape)).reshape(row.shape)

    @property
    def sha256(self):
        """Checksum of the examples and labels as held in memory (after any split/subset)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for array in (self.X, self.y.astype(np.int64)):
                digest.update(str(array.shape).encode())
                digest.update(array.tobytes())
            self._sha256 = digest.hexdigest()
        return self._sha256

    def describe(self):
        """What goes into a run's record: name, split, source, size, checksum."""
        return {"name": self.name, "split": self.split, "source": self.source,
                "size": len(self), "num_classes": self.num_classes, "sha256": self.sha256}

    def subset(self, count):
        """The first `count` examples (deterministic), keeping provenance."""
        count = int(count)
        if not 0 < count <= len(self):
            raise ValueError(f"subset size must lie in [1, {len(self)}], got {count}")
        return ArrayDataset(self.X[:count], self.y[:count], self.transforms, self.image_shape,
                            self.name, self.split, f"{self.source}; first {count} examples",
                            self.num_classes)
