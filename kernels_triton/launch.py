"""Launching a Triton kernel again the way Triton did the first time, without its per-call argument
binding: Triton's `kernel[grid](...)` specializes every argument and hashes a cache key on each
call (about 11 of the 15 us a 100x100 product's launch took on a 2-core host), where a training
step of small layers is nothing but launches (bench/host_overhead.py). Kernel layer.
"""

import itertools
import os

from triton import knobs
from triton.runtime import driver

from .common import interpreting, parse_on_off

# "off" sends every launch through Triton (a way out should a later Triton launch differently;
# bench/host_overhead.py compares the two).
DIRECT_LAUNCH_SWITCH = "ENGINE_DIRECT_LAUNCH"
DIRECT_LAUNCH = parse_on_off(DIRECT_LAUNCH_SWITCH, os.environ.get(DIRECT_LAUNCH_SWITCH, "on"))
# Per kernel, by id (a JITFunction hashes its source under a lock), next to the kernel itself so
# that a reused id is never taken for it: {id: (kernel, {key: (compiled, grid, tail)}, positions
# not specialized on)}. Bounded: keys hold sizes and offsets, which vary with the views an op is
# given.
_LAUNCHES = {}
_LAUNCHES_LIMIT = 4096


def _argument_key(args, unspecialized=None):
    """What Triton specializes a launch on, per positional argument: an int's value (its type,
    and whether it is 1 or divisible by 16), a tensor's dtype and 16-byte alignment, a float's
    type (passed as it is); anything else by type and value, more than Triton looks at (None is
    a constant). Ints at the `unspecialized` positions (a kernel's do_not_specialize: a dropout
    seed that changes every step) count by type only."""
    key = [arg if type(arg) is int
           else float if type(arg) is float
           else (arg.dtype, arg.data_ptr() & 15 == 0) if hasattr(arg, "data_ptr")
           else (type(arg), arg) for arg in args]
    if unspecialized is not None:
        for i in unspecialized:
            if i < len(key) and type(key[i]) is int:
                key[i] = _int_type(key[i])
    return tuple(key)


def _int_type(value):
    # The type Triton gives an int it does not specialize on: the value's range alone.
    return "i32" if -2 ** 31 <= value < 2 ** 31 else "u64" if value >= 2 ** 63 else "i64"


def _unspecialized(fn):
    """Positions of `fn`'s parameters Triton does not specialize on, None when there are none.
    (Those it only does not specialize on alignment still become constants when 1: their values
    stay in the key.)"""
    positions = tuple(param.num for param in fn.params if param.do_not_specialize)
    return positions or None


# Tokens standing for keyword sets in launch keys (see `kwargs_token`); drawn from a counter, so
# two threads adding keyword sets at once never share one.
_TOKENS = {}
_NEXT_TOKEN = itertools.count()


def kwargs_token(kwargs):
    """A small int that stands for `kwargs` in launch keys, the same for equal keyword sets: a
    launcher that keeps its keywords pays for hashing them once, not on every launch."""
    items = tuple(kwargs.items())
    token = _TOKENS.get(items)
    if token is None:
        token = _TOKENS.setdefault(items, next(_NEXT_TOKEN))
    return token


def launch(fn, grid, args, kwargs, token=None):
    """fn[grid](*args, **kwargs) for a JITFunction `fn`, a grid tuple, positional runtime
    arguments and keyword constexprs and options. The first launch of a key goes through Triton
    (which compiles when it must); later ones call the compiled kernel's launcher directly with
    the same arguments Triton would pass it: the positional ones, then each later parameter's
    keyword value or default. `token`, when given, is `kwargs_token(kwargs)`. Returns the
    compiled kernel (what Triton returns, in the interpreter). Not repeated per launch: Triton's
    check that the globals a kernel read when it was compiled are unchanged (ours read none)."""
    if not DIRECT_LAUNCH or interpreting() or fn.pre_run_hooks:
        return fn[grid](*args, **kwargs)
    active = driver.active
    device = active.get_current_device()
    own = _LAUNCHES.get(id(fn))
    if own is None or own[0] is not fn:
        own = _LAUNCHES[id(fn)] = (fn, {}, _unspecialized(fn))
    _, launches, unspecialized = own
    # Triton reads its debug and instrumentation switches on every launch: a change compiles anew.
    key = (device, grid, kwargs_token(kwargs) if token is None else token,
           _argument_key(args, unspecialized), knobs.runtime.debug,
           knobs.compilation.instrumentation_mode)
    entry = launches.get(key)
    if entry is None:
        kernel = fn[grid](*args, **kwargs)
        if hasattr(kernel, "result"):  # compiled under an AsyncCompileMode
            kernel = kernel.result()
        if kernel is not None:
            if len(launches) >= _LAUNCHES_LIMIT:
                launches.clear()
            tail = tuple(kwargs[param.name] if param.name in kwargs else param.default
                         for param in fn.params[len(args):])
            launches[key] = (kernel, (*grid, 1, 1)[:3], tail)
        return kernel
    kernel, (grid_0, grid_1, grid_2), tail = entry
    stream = active.get_current_stream(device)
    values = (*args, *tail)
    kernel.run(grid_0, grid_1, grid_2, stream, kernel.function, kernel.packed_metadata,
               kernel.launch_metadata(grid, stream, *values), knobs.runtime.launch_enter_hook,
               knobs.runtime.launch_exit_hook, *values)
    return kernel
