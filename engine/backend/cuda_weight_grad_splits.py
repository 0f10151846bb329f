"""How many slices the cuda device's conv weight gradient cuts its pixel reduction into (backend
layer): the launcher's rule of two programs per multiprocessor, or on a GPU the fastest of one, two
and four per multiprocessor, timed once per shape and remembered.
"""

from kernels_triton import conv as _conv

PROGRAMS_PER_SM = (1, 2, 4)
# Smaller slices than the rule allows: on the H100 the benchmark layer's IEEE gradient ran fastest
# with 58 slices of 141 pixels.
MIN_PIXELS = 128
_timed = {}


def slice_count(key, sizes, sm_count, run, timer):
    """The slice count for the weight gradient of `sizes` (n, oh, ow, c, k, kh, kw, groups), which
    `run(splits)` computes. Which count wins depends on the GPU, the precision and the operands'
    layout (bench/results/gpu_check_h100.txt), so with a GPU `timer` a product large enough to be
    autotuned times the candidates once per `key`; otherwise (or small) the launcher's rule."""
    n, oh, ow, c, k, kh, kw, groups = sizes
    work = n * oh * ow * k * kh * kw * (c // groups)
    timed = timer is not None and work >= _conv.AUTOTUNE_MIN_WORK
    if not timed:
        return _conv.weight_grad_splits(*sizes, sm_count)
    options = [_conv.weight_grad_splits(*sizes, sm_count, per_sm, MIN_PIXELS)
               for per_sm in PROGRAMS_PER_SM]
    return choose(key, options, run, timer)


def choose(key, options, run, timer):
    """The slice count among `options` for which `run(splits)` is fastest by `timer(fn)`
    (milliseconds), each run once first so that compiling and autotuning are not timed. Decided
    once per `key`; later calls only look it up. With one option there is nothing to time."""
    options = sorted(set(options))
    if len(options) == 1:
        return options[0]
    if key not in _timed:
        for splits in options:
            run(splits)
        timings = {splits: timer(lambda splits=splits: run(splits)) for splits in options}
        _timed[key] = min(options, key=timings.__getitem__)
    return _timed[key]


def timed_splits():
    """The decisions `choose` has made: {key: splits}."""
    return dict(_timed)
