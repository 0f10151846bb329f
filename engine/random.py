"""The engine's one source of randomness: a seeded numpy Generator behind every random draw
(parameter init, dropout masks, shuffling), so that a run's seed fixes all of them. Engine layer.
"""

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed every random draw of the engine (init, dropout, data shuffling)."""
    global _generator
    _generator = np.random.default_rng(int(seed))


def generator():
    return _generator
