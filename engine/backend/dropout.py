"""Dropout on NDArrays: scale the kept elements by 1 / (1 - p) and zero the others, the mask drawn
on the device from a seed (the protocol's ewise_dropout), so one seed gives one mask on every
device and a backward pass redraws it. Backend layer, beside ndarray.py; engine.ops builds on it.
"""

import math
import operator

# The protocol draws 24-bit uniforms and indexes elements with 32 bits.
UNIFORM_BITS = 24
MAX_SIZE = 2**32


def protocol_arguments(p, seed):
    """(threshold, scale, seed) of the protocol's ewise_dropout for probability p and `seed`,
    both checked."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must lie in [0, 1), got {p}")
    seed = operator.index(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"dropout seed must lie in [0, 2^32), got {seed}")
    return round(p * 2**UNIFORM_BITS), 1.0 / (1.0 - p), seed


def dropout(array, p, seed):
    """`array` with each element kept with probability 1 - p (to within 2^-24) and scaled by
    1 / (1 - p), the rest 0; the mask depends only on `seed` and the element's position."""
    threshold, scale, seed = protocol_arguments(p, seed)
    size = math.prod(array.shape)
    if size > MAX_SIZE:
        raise ValueError(f"dropout draws its mask for at most 2^32 elements, got shape "
                         f"{array.shape}")
    a = array.compact()
    out = a._new(a.shape)
    a.device.ewise_dropout(a.handle, out.handle, size, threshold, scale, seed)
    return out
