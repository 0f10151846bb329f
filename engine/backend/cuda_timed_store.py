"""Timed decisions of the cuda device kept on disk (backend layer): whether a TF32 product copies a
misplaced operand (cuda_staging) and how many slices a conv weight gradient uses
(cuda_weight_grad_splits). Both come from timing, which is noisy: two processes could decide
differently for one shape, and the ways round differently, so a run repeated with the same seed
could differ in its last bits. Kept beside Triton's autotune choices, every process on the machine
decides alike and times nothing already decided.
"""

import contextlib
import hashlib
import json
import os

_place = {}  # "directory" and "identity" (a function) once the cuda device enables the store


def enable(directory, identity):
    """Keep decisions in `directory`, under the machine's `identity()`: a JSON-able value naming
    the GPU and the software that built the kernels, asked for once, when first needed."""
    _place.clear()
    _place.update(directory=directory, identity=identity)


def disable():
    _place.clear()


def gpu_identity(torch_device):
    """What a timed decision holds for: the GPU and the software that builds and runs kernels."""
    import torch
    import triton

    return [torch.cuda.get_device_name(torch_device), triton.__version__, torch.version.cuda]


def _machine():
    if "machine" not in _place:
        _place["machine"] = _place["identity"]()
    return _place["machine"]


def _path(kind, key):
    digest = hashlib.sha256(repr((_machine(), key)).encode()).hexdigest()[:32]
    return os.path.join(_place["directory"], f"{kind}-{digest}.json")


def load(kind, key):
    """The decision stored for `key` (a tuple of plain values), or None: none stored, the store
    disabled, or a file that cannot be read or names another machine or key."""
    if not _place:
        return None
    try:
        with open(_path(kind, key)) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != repr(key) or (
            entry.get("machine") != json.loads(json.dumps(_machine()))):
        return None
    return entry.get("value")


def store(kind, key, value):
    """Keep `value` (JSON-able) for `key`. The file is written whole and then renamed, so a process
    reading it concurrently finds the old one or the new one, never half of one. A store that
    cannot be written is skipped: the decision still holds in this process."""
    if not _place:
        return
    path = _path(kind, key)
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(_place["directory"], exist_ok=True)
        with open(partial, "w") as f:
            json.dump({"machine": _machine(), "key": repr(key), "value": value}, f)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(partial)
