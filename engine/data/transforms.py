"""Data augmentations on one (H, W, C) image, needle's names. Engine layer (data).
Random choices come from engine.random.generator().
"""

import numpy as np

from .. import random as _random


class Transform:
    """Base of the data transforms: a callable from one example's array to another."""

    def __call__(self, x):
        raise TypeError(f"{type(self).__name__} does not define __call__ (a Transform must)")


class RandomFlipHorizontal(Transform):
    """Mirror the image left-right with probability p."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlipHorizontal: p must lie in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        if _random.generator().random() < self.p:
            return np.ascontiguousarray(img[:, ::-1, :])
        return img


class RandomCrop(Transform):
    """Shift the image by up to `padding` pixels along each axis, filling with zeros (zero-pad by
    `padding`, then crop the original size at a random offset)."""

    def __init__(self, padding=3):
        if int(padding) < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)

    def __call__(self, img):
        if img.ndim != 3:
            raise ValueError(f"RandomCrop expects an (H, W, C) image, got shape {img.shape}")
        p = self.padding
        shift_x, shift_y = _random.generator().integers(-p, p + 1, size=2)
        h, w = img.shape[:2]
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        return padded[p + shift_x:p + shift_x + h, p + shift_y:p + shift_y + w, :]
