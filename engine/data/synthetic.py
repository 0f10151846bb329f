"""Synthetic classification data generated in code, for fast tests and demos: the spiral of
Lecture 3, Gaussian blobs, and labels from a random teacher network. Engine layer (data).
Each generator takes its own `seed`, so the data stay fixed while a run's seed varies the init.
"""

import numpy as np


def spiral(samples=600, classes=3, noise=0.2, seed=0):
    """`classes` interleaved 2-D spiral arms (Lecture 3): arm k at angle t + 2 pi k / classes,
    radius r in [0, 1], angle t = 4 r plus Gaussian noise of std `noise`."""
    rng = np.random.default_rng(seed)
    per_class = -(-samples // classes)
    radius = np.tile(np.linspace(0.0, 1.0, per_class), classes)
    labels = np.repeat(np.arange(classes), per_class)
    angle = 4.0 * radius + 2.0 * np.pi * labels / classes
    angle = angle + rng.standard_normal(angle.shape) * noise
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return X[:samples].astype(np.float32), labels[:samples].astype(np.int64)


def blobs(samples=600, classes=3, features=2, spread=1.0, separation=4.0, seed=0):
    """Isotropic Gaussian clusters of std `spread` around centers drawn with std `separation`."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * separation
    labels = rng.integers(0, classes, size=samples)
    X = centers[labels] + rng.standard_normal((samples, features)) * spread
    return X.astype(np.float32), labels.astype(np.int64)


def teacher(samples=1000, classes=10, features=20, hidden=50, seed=0):
    """X ~ N(0, I); y = argmax of a random ReLU network features -> hidden -> classes."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((features, hidden)) * np.sqrt(2.0 / features)
    w2 = rng.standard_normal((hidden, classes)) * np.sqrt(1.0 / hidden)
    X = rng.standard_normal((samples, features))
    labels = np.argmax(np.maximum(X @ w1, 0.0) @ w2, axis=1)
    return X.astype(np.float32), labels.astype(np.int64)


GENERATORS = {"spiral": spiral, "blobs": blobs, "teacher": teacher}
