"""Timed decisions of the cuda device kept on disk (backend layer): whether a TF32 product copies a
misplaced operand (cuda_staging) and how many slices a conv weight gradient uses
(cuda_weight_grad_splits). Both come from timing, which is noisy: two processes could decide
differently for one shape, and the ways round differently, so a run repeated with the same seed
could differ in its last bits. Kept beside Triton's autotune choices (a cache of the machine, like
Triton's, not a result of any run), the first decision made for a shape is every process's.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile

_place = {}  # "directory" and "identity" (a function) once the cuda device enables the store

# The host-side rules and kernels a decision depends on: an edit to any of them decides again.
_SOURCES = ("kernels_triton.common", "kernels_triton.matmul", "kernels_triton.matmul_layouts",
            "kernels_triton.conv", "kernels_triton.transpose", "engine.backend.cuda_staging",
            "engine.backend.cuda_weight_grad_splits")


def enable(directory, identity):
    """Keep decisions in `directory`, under the machine's `identity()`: a JSON-able value naming
    the GPU and the software that builds the kernels, asked for once, when first needed."""
    _place.clear()
    _place.update(directory=directory, identity=identity)


def disable():
    """Keep nothing on disk (the state without a GPU)."""
    _place.clear()


def gpu_identity(torch_device):
    """What a decision holds for: the GPU (name, compute capability, multiprocessors), Triton's
    own key of its build and CUDA's version, the sources of the rules and kernels a decision
    times, and the switches that change what the ways compared are."""
    import importlib

    import torch
    from triton.runtime.cache import triton_key

    from kernels_triton import matmul_layouts

    properties = torch.cuda.get_device_properties(torch_device)
    sources = hashlib.sha256()
    for name in _SOURCES:
        with open(importlib.import_module(name).__file__, "rb") as f:
            sources.update(f.read())
    return [properties.name, list(torch.cuda.get_device_capability(torch_device)),
            properties.multi_processor_count, triton_key(), torch.version.cuda,
            sources.hexdigest(),
            [matmul_layouts.REGISTER_A_ALLOWED, sorted(matmul_layouts.TMA_ALLOWED),
             matmul_layouts.WARP_SPECIALIZE_ALLOWED]]


def _path(kind, key):
    """The file of `key`, or None where the store is off or the machine cannot say what it is
    (the store then turns itself off: it saves time, it must never cost a run)."""
    if not _place:
        return None
    if "machine" not in _place:
        try:  # as JSON gives it back, to compare with what files hold
            _place["machine"] = json.loads(json.dumps(_place["identity"]()))
        except Exception:  # whatever the identity fails on only turns the store off
            disable()
            return None
    digest = hashlib.sha256(repr((_place["machine"], key)).encode()).hexdigest()[:32]
    return os.path.join(_place["directory"], f"{kind}-{digest}.json")


def load(kind, key, valid):
    """The decision stored for `key` (a tuple of plain values) if `valid(decision)`, else None:
    none stored, the store off, or a file that cannot be read or names another machine or key."""
    path = _path(kind, key)
    if path is None:
        return None
    try:
        with open(path) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if (not isinstance(entry, dict) or entry.get("key") != repr(key)
            or entry.get("machine") != _place.get("machine") or not valid(entry.get("value"))):
        return None
    return entry["value"]


def decide(kind, key, valid, time_it, may_time=True):
    """(the decision for `key`, whether another process made it): the one on disk, else
    `time_it()` settled on disk; (None, False) where none is stored and not `may_time`."""
    stored = load(kind, key, valid)
    if stored is not None:
        return stored, True
    if not may_time:
        return None, False
    return settle(kind, key, time_it(), valid)


def settle(kind, key, decision, valid):
    """(the decision for `key`, whether another process made it): `decision`, kept on disk,
    unless another process kept a valid one first, which then stands, so workers deciding a shape
    at once end up alike. The file is written aside and hard-linked into place, which only one
    writer wins; where that fails (a file that is not valid, a filesystem without links), a lock
    orders the writers: each loads what the one before left. Where nothing can be written,
    `decision` holds in this process alone."""
    path = _path(kind, key)
    if path is None:
        return decision, False
    directory = _place["directory"]
    try:
        os.makedirs(directory, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=directory, prefix=f"{kind}-", suffix=".tmp")
    except OSError:
        return decision, False
    try:
        with os.fdopen(handle, "w") as f:
            json.dump({"machine": _place["machine"], "key": repr(key), "value": decision}, f)
        try:
            os.link(partial, path)
            return decision, False
        except FileExistsError:
            stored = load(kind, key, valid)
            if stored is not None:
                return stored, True
        except OSError:
            pass
        with open(os.path.join(directory, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = load(kind, key, valid)
            if stored is not None:
                return stored, True
            os.replace(partial, path)
        return decision, False
    except (OSError, TypeError, ValueError):  # unwritable, or a decision JSON cannot hold
        return decision, False
    finally:
        with contextlib.suppress(OSError):
            os.remove(partial)
