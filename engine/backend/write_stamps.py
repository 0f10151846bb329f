"""When each device buffer was last written in place, on one process-wide clock that autograd also
stamps its nodes with. Backend layer: NDArray writes (setitem, fill) and optimizer steps stamp the
buffer, so every alias and view of it (`.data`, `detach()`, reshaped arrays) shows the change.
"""

import weakref


class _Clock:
    """Counts in-place writes; a graph node keeps the count it was made at. `last_write` is the
    count of the latest stamp."""

    now = 0
    last_write = 0


clock = _Clock()
# id(buffer) -> (weak reference to it, clock count of its last in-place write). The reference's
# callback drops the entry when the buffer is freed, before its id can name another buffer.
_stamps = {}


def stamp(handle):
    """Record an in-place write of `handle` (a device buffer) now."""
    clock.now += 1
    clock.last_write = clock.now
    key = id(handle)
    entry = _stamps.get(key)
    if entry is not None and entry[0]() is handle:
        _stamps[key] = (entry[0], clock.now)
    else:
        _stamps[key] = (weakref.ref(handle, lambda _, key=key: _stamps.pop(key, None)), clock.now)


def written_after(handle, count):
    """Whether `handle` was written in place after the clock read `count`."""
    entry = _stamps.get(id(handle))
    return entry is not None and entry[1] > count and entry[0]() is handle
