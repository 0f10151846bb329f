"""How many slices the cuda device's conv weight gradient cuts its pixel reduction into (backend
layer): the launcher's rule of two programs per multiprocessor, or on a GPU the fastest of one, two
and four per multiprocessor, timed once per shape and remembered (on disk too, cuda_timed_store).
"""

from kernels_triton import conv as _conv

from . import cuda_timed_store as timed_store

PROGRAMS_PER_SM = (1, 2, 4)
# Smaller slices than the rule allows: on the H100 the benchmark layer's IEEE gradient ran fastest
# with 58 slices of 141 pixels.
MIN_PIXELS = 128
_timed = {}
_stored = set()


def slice_count(key, sizes, sm_count, run, timer, may_time=True):
    """The slice count for the weight gradient of `sizes` (n, oh, ow, c, k, kh, kw, groups), which
    `run(splits)` computes. Which count wins depends on the GPU, the precision and the operands'
    layout (bench/results/gpu_check_h100.txt), so with a GPU `timer` a product large enough to be
    autotuned times the candidates once per `key` (a decision on disk counts as made), unless
    there is only one; a small product takes the launcher's rule. Not `may_time` (a CUDA graph is
    being captured, where timing's synchronization is not allowed): an earlier decision, else the
    rule."""
    decided = _timed.get(key)
    if decided is not None:
        return decided
    n, oh, ow, c, k, kh, kw, groups = sizes
    rule = _conv.weight_grad_splits(*sizes, sm_count)
    if timer is None or n * oh * ow * k * kh * kw * (c // groups) < _conv.AUTOTUNE_MIN_WORK:
        return rule
    options = sorted({_conv.weight_grad_splits(*sizes, sm_count, per_sm, MIN_PIXELS)
                      for per_sm in PROGRAMS_PER_SM})
    if len(options) == 1:
        return options[0]

    def valid(value):
        return type(value) is int and value in options

    # The candidates are part of the key on disk: they follow the multiprocessors and the rules.
    decided, elsewhere = timed_store.decide("splits", (key, tuple(options)), valid,
                                            lambda: int(fastest(options, run, timer)), may_time)
    if decided is None:
        return rule
    if elsewhere:
        _stored.add(key)
    _timed[key] = decided
    return decided


def fastest(options, run, timer, rounds=2):
    """The slice count among `options` for which `run(splits)` is fastest by `timer(fn)`
    (milliseconds): each run once first, so that compiling and autotuning are not timed, then
    timed in `rounds` interleaved rounds, keeping each one's best (clocks still ramping up would
    otherwise count against whichever came first)."""
    for splits in options:
        run(splits)
    best = {}
    for _ in range(rounds):
        for splits in options:
            elapsed = timer(lambda splits=splits: run(splits))
            best[splits] = min(elapsed, best.get(splits, elapsed))
    return min(options, key=best.__getitem__)


def timed_splits():
    """The decisions made in this process: {key: splits}."""
    return dict(_timed)


def stored_splits():
    """The keys among `timed_splits()` decided by an earlier process (found on disk)."""
    return set(_stored)
