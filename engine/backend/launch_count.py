"""Counting the kernels a piece of code runs on a device, by protocol function: on a GPU each launch
costs tens of microseconds of host time, so a small model's training step costs about its launch
count times that. Backend layer, a diagnostic for benchmarks, tests and the curious.
"""

import collections
import contextlib

from .protocol import ALL_FUNCTIONS, THREAD_FUNCTIONS

# Allocation, host transfers and thread settings run no kernel.
NOT_KERNELS = ("alloc", "from_numpy", "to_numpy") + THREAD_FUNCTIONS


@contextlib.contextmanager
def count_launches(device):
    """Within the block, count `device`'s kernel calls into the Counter it yields (name -> calls).
    Not thread-safe: it swaps the device's bound protocol functions for counting ones and puts the
    originals back on exit."""
    counter = collections.Counter()
    names = [name for name in ALL_FUNCTIONS
             if name not in NOT_KERNELS and callable(getattr(device.module, name, None))]
    saved = {name: device.__dict__.get(name) for name in names}
    for name in names:
        function = getattr(device, name)  # an enclosing count's wrapper, so counts nest

        def counted(*args, _name=name, _function=function, **kwargs):
            counter[_name] += 1
            return _function(*args, **kwargs)

        device.__dict__[name] = counted
    try:
        yield counter
    finally:
        for name, function in saved.items():
            if function is None:
                device.__dict__.pop(name, None)
            else:
                device.__dict__[name] = function
