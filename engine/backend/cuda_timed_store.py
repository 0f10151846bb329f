"""Timed decisions of the cuda device kept on disk (backend layer): whether a TF32 product copies a
misplaced operand (cuda_staging) and how many slices a conv weight gradient uses
(cuda_weight_grad_splits). Both come from timing, which is noisy: two processes could decide
differently for one shape, and the ways round differently, so a run repeated with the same seed
could differ in its last bits. Kept beside Triton's autotune choices (a cache of the machine, like
Triton's, not a result of any run), the first decision made for a shape is every process's.
"""

import contextlib
import hashlib
import json
import os
import tempfile

_place = {}  # "directory" and "identity" (a function) once the cuda device enables the store


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
    own key of its build and CUDA's version, the source keys of the kernels a decision times, and
    the switches that change what the ways compared are. A change to any of them decides again."""
    import torch
    from triton.runtime.cache import triton_key

    from kernels_triton import conv, matmul, matmul_layouts, transpose

    properties = torch.cuda.get_device_properties(torch_device)
    kernels = (matmul._matmul_kernel, transpose._transpose_kernel, conv._weight_grad_kernel,
               conv._sum_splits_kernel)
    return [properties.name, list(torch.cuda.get_device_capability(torch_device)),
            properties.multi_processor_count, triton_key(), torch.version.cuda,
            [kernel.cache_key for kernel in kernels],
            [matmul_layouts.REGISTER_A_ALLOWED, sorted(matmul_layouts.TMA_ALLOWED),
             matmul_layouts.WARP_SPECIALIZE_ALLOWED]]


def _machine():
    if "machine" not in _place:  # as JSON gives it back, to compare with what files hold
        _place["machine"] = json.loads(json.dumps(_place["identity"]()))
    return _place["machine"]


def _path(kind, key):
    digest = hashlib.sha256(repr((_machine(), key)).encode()).hexdigest()[:32]
    return os.path.join(_place["directory"], f"{kind}-{digest}.json")


def load(kind, key, valid):
    """The decision stored for `key` (a tuple of plain values) if `valid(decision)`, else None:
    none stored, the store disabled, or a file that cannot be read or names another machine or
    key."""
    if not _place:
        return None
    try:
        with open(_path(kind, key)) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if (not isinstance(entry, dict) or entry.get("key") != repr(key)
            or entry.get("machine") != _machine() or not valid(entry.get("value"))):
        return None
    return entry["value"]


def settle(kind, key, decision, valid):
    """The decision for `key`: `decision`, kept on disk, unless another process kept one first,
    which then stands (workers deciding a shape at once end up alike). The file is written whole
    under another name and then linked into place, which succeeds for one writer only. Where
    nothing can be written, `decision` holds in this process alone."""
    if not _place:
        return decision
    path = _path(kind, key)
    try:
        os.makedirs(_place["directory"], exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=_place["directory"], prefix=f"{kind}-",
                                           suffix=".tmp")
    except OSError:
        return decision
    try:
        with os.fdopen(handle, "w") as f:
            json.dump({"machine": _machine(), "key": repr(key), "value": decision}, f)
        try:
            os.link(partial, path)
        except FileExistsError:
            stored = load(kind, key, valid)
            if stored is not None:
                return stored
            os.replace(partial, path)  # an unreadable or foreign file: ours takes its place
        return decision
    except OSError:
        return decision
    finally:
        with contextlib.suppress(OSError):
            os.remove(partial)
