"""Optimizer update kernels (kernel layer): SGD (momentum, dampening, Nesterov's look-ahead) and
Adam over a whole list of parameters in one launch, in place. The launch takes one int64 table
of buffer addresses, sizes and block offsets, copied to the GPU without a sync (and kept for the
next step with the same buffers); each program finds its parameter by binary search over the
block offsets, so no program idles.
"""

import collections

import numpy as np
import torch
import triton
import triton.language as tl

from .common import check_buffers
from .launch import launch
from .memory import block_config


@triton.jit
def _parameter_of(block_starts, count, pid):
    # The last t with block_starts[t] <= pid: parameters of no elements own no block, so their
    # equal starts never stop the search short of the one that owns pid.
    low = pid * 0
    high = low + count
    while high - low > 1:
        middle = (low + high) // 2
        below = tl.load(block_starts + middle) <= pid
        low = tl.where(below, middle, low)
        high = tl.where(below, high, middle)
    return low


@triton.jit
def _slot(table, row, count, t, ALIGNED: tl.constexpr):
    # Row `row` of the (rows, count) table of addresses, read as a float32 pointer. Told that
    # the address is 16-byte aligned (every fresh allocation is), the compiler loads 4 floats at
    # once.
    pointer = tl.load(table + row * count + t).to(tl.pointer_type(tl.float32))
    if ALIGNED:
        pointer = tl.multiple_of(pointer, 16)
    return pointer


@triton.jit
def _span(table, lists: tl.constexpr, count, BLOCK: tl.constexpr):
    """(parameter, offsets, size, whether the block is full) of this program's block. The
    table's rows after the `lists` rows of addresses are the sizes and the count + 1 block
    starts."""
    pid = tl.program_id(0)
    sizes = table + lists * count
    block_starts = sizes + count
    t = _parameter_of(block_starts, count, pid)
    first = (pid - tl.load(block_starts + t)).to(tl.int64) * BLOCK
    size = tl.load(sizes + t)
    return t, first + tl.arange(0, BLOCK), size, first + BLOCK <= size


# A parameter's full blocks go unmasked: a mask against a size read from memory would keep the
# compiler from loading 4 floats at once, and only the last block needs one.
@triton.jit
def _load(pointer, offs, size, FULL: tl.constexpr):
    if FULL:
        value = tl.load(pointer + offs)
    else:
        value = tl.load(pointer + offs, mask=offs < size, other=0.0)
    return value


@triton.jit
def _store(pointer, offs, size, value, FULL: tl.constexpr):
    if FULL:
        tl.store(pointer + offs, value)
    else:
        tl.store(pointer + offs, value, mask=offs < size)


@triton.jit
def _decayed(g, w, weight_decay, DECAY: tl.constexpr):
    # A select at compile time, not a multiply by 0: an inf weight must not reach the gradient.
    if DECAY:
        g = g + weight_decay * w
    return g


@triton.jit
def _sgd_block(w_ptr, g_ptr, u_ptr, offs, size, weight_decay, keep, take, step, lookback,
               DECAY: tl.constexpr, MOMENTUM: tl.constexpr, LOOKBACK: tl.constexpr,
               FULL: tl.constexpr):
    w = _load(w_ptr, offs, size, FULL)
    d = _decayed(_load(g_ptr, offs, size, FULL), w, weight_decay, DECAY)
    if MOMENTUM:
        previous = _load(u_ptr, offs, size, FULL)
        moved = keep * previous + take * d
        _store(u_ptr, offs, size, moved, FULL)
        w = w - step * moved
        if LOOKBACK:
            w = w + lookback * previous
    else:
        w = w - step * d
    _store(w_ptr, offs, size, w, FULL)


@triton.jit
def _sgd_kernel(table, count, weight_decay, keep, take, step, lookback, DECAY: tl.constexpr,
                MOMENTUM: tl.constexpr, LOOKBACK: tl.constexpr, ALIGNED: tl.constexpr,
                BLOCK: tl.constexpr):
    t, offs, size, full = _span(table, 3 if MOMENTUM else 2, count, BLOCK)
    w_ptr = _slot(table, 0, count, t, ALIGNED)
    g_ptr = _slot(table, 1, count, t, ALIGNED)
    u_ptr = _slot(table, 2, count, t, ALIGNED) if MOMENTUM else w_ptr
    scalars = (weight_decay, keep, take, step, lookback)
    if full:
        _sgd_block(w_ptr, g_ptr, u_ptr, offs, size, *scalars, DECAY, MOMENTUM, LOOKBACK, True)
    else:
        _sgd_block(w_ptr, g_ptr, u_ptr, offs, size, *scalars, DECAY, MOMENTUM, LOOKBACK, False)


@triton.jit
def _adam_block(w_ptr, g_ptr, m_ptr, v_ptr, offs, size, weight_decay, keep1, take1, keep2, take2,
                eps, step, DECAY: tl.constexpr, FULL: tl.constexpr):
    w = _load(w_ptr, offs, size, FULL)
    d = _decayed(_load(g_ptr, offs, size, FULL), w, weight_decay, DECAY)
    m = keep1 * _load(m_ptr, offs, size, FULL) + take1 * d
    v = keep2 * _load(v_ptr, offs, size, FULL) + take2 * (d * d)
    _store(m_ptr, offs, size, m, FULL)
    _store(v_ptr, offs, size, v, FULL)
    # IEEE square root and division: the approximate ones differ from the other devices.
    _store(w_ptr, offs, size, w - step * tl.div_rn(m, tl.sqrt_rn(v) + eps), FULL)


@triton.jit
def _adam_kernel(table, count, weight_decay, keep1, take1, keep2, take2, eps, step,
                 DECAY: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    t, offs, size, full = _span(table, 4, count, BLOCK)
    pointers = (_slot(table, 0, count, t, ALIGNED), _slot(table, 1, count, t, ALIGNED),
                _slot(table, 2, count, t, ALIGNED), _slot(table, 3, count, t, ALIGNED))
    scalars = (weight_decay, keep1, take1, keep2, take2, eps, step)
    if full:
        _adam_block(*pointers, offs, size, *scalars, DECAY, True)
    else:
        _adam_block(*pointers, offs, size, *scalars, DECAY, False)


# Launch tables by content: a model's buffers (its weights and optimizer state updated in place,
# its gradients from the caching allocator in the same order) mostly repeat their addresses step
# after step, and a table found here costs no copy at all.
_TABLES = collections.OrderedDict()
TABLE_CACHE_SIZE = 16


def _table(addresses, sizes, block, device):
    """The launch's int64 table on `device`, its grid, and whether every address is 16-byte
    aligned: the rows of `addresses` (one per list), the sizes, then each parameter's first block
    and the total."""
    key = (tuple(addresses), tuple(sizes), block, str(device))
    found = _TABLES.get(key)
    if found is not None:
        _TABLES.move_to_end(key)
        return found
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + -(-size // block))
    host = torch.tensor(addresses + list(sizes) + starts, dtype=torch.int64)
    if device.type == "cuda":
        # From pinned memory the copy runs in stream order without the host waiting; torch's
        # pinned allocator keeps the block until the copy is done.
        host = host.pin_memory()
    found = _TABLES[key] = (host.to(device, non_blocking=True), starts[-1],
                            all(address % 16 == 0 for address in addresses))
    if len(_TABLES) > TABLE_CACHE_SIZE:
        _TABLES.popitem(last=False)
    return found


def _nonzero(value):
    """Whether `value` rounded to float32 (as the kernel receives it) is not 0."""
    return bool(np.float32(value) != 0)


def _launch(kernel, names, lists, sizes, scalars, flags, block=None):
    for name, handles in zip(names, lists):
        check_buffers(name, handles, sizes)
    block, warps = (block, 4) if block else block_config()
    if not sizes or not any(sizes):
        return
    addresses = [handle.data_ptr() for handles in lists for handle in handles]
    table, blocks, aligned = _table(addresses, sizes, block, lists[0][0].device)
    launch(kernel, (blocks,), (table, len(sizes), *[float(value) for value in scalars]),
           {**flags, "ALIGNED": aligned, "BLOCK": block, "num_warps": warps})


def sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback, block=None):
    """The protocol's sgd_update: every parameter of the lists in one launch, in place (sizes
    already checked against the lists' lengths). `block` overrides the block size (tests)."""
    names, lists = ("ws", "gs", "us"), [ws, gs] if us is None else [ws, gs, us]
    flags = {"DECAY": _nonzero(weight_decay), "MOMENTUM": us is not None,
             "LOOKBACK": us is not None and _nonzero(lookback)}
    _launch(_sgd_kernel, names, lists, sizes, (weight_decay, keep, take, step, lookback), flags,
            block)


def adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps, step,
                block=None):
    """The protocol's adam_update: every parameter of the lists in one launch, in place."""
    scalars = (weight_decay, keep1, take1, keep2, take2, eps, step)
    _launch(_adam_kernel, ("ws", "gs", "ms", "vs"), [ws, gs, ms, vs], sizes, scalars,
            {"DECAY": _nonzero(weight_decay)}, block)
