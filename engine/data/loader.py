"""`DataLoader`: batches of a dataset as tuples of Tensors, optionally shuffled each epoch.
Engine layer (data). Shuffling draws from engine.random (or from its own seed when given).
"""

import numpy as np

from .. import random as _random
from ..autograd import Tensor


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size`.

    shuffle: a fresh permutation every epoch, drawn from the engine's generator, or from a private
    generator seeded with `seed` (so two loaders with the same seed give the same order).
    drop_last: skip a final batch smaller than batch_size.
    Each batch is a tuple of float32 Tensors (requires_grad=False; labels too, as in needle) on
    `device` (the default device if None). Datasets with `batch_indexing = True` are asked for a
    whole batch at once; others are collated example by example.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 device=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = self._rng if self._rng is not None else _random.generator()
        return rng.permutation(n)

    def _fetch(self, indices):
        if getattr(self.dataset, "batch_indexing", False):
            return self.dataset[indices]
        # A dataset that only takes scalar indices: collate examples one by one.
        examples = [self.dataset[int(i)] for i in indices]
        return tuple(np.stack([np.asarray(e[k]) for e in examples])
                     for k in range(len(examples[0])))

    def __iter__(self):
        order = self._order()
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            indices = order[start:start + self.batch_size]
            yield tuple(Tensor(np.asarray(part), device=self.device, dtype="float32",
                                requires_grad=False)
                        for part in self._fetch(indices))
