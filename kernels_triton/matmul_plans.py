"""Kept launch plans for small matrix products (kernel layer; kernels_triton/matmul.py makes and
uses them): a small product, one of the host-bound ones, is keyed by everything that decides how
it launches but its buffers (precision, sizes, offsets, strides, which epilogues, the
multiprocessor count, the layout switches). A plan holds what matmul's checks and choices worked out
for one, so that a later call checks only its buffers and launches (bench/host_overhead.py). Also
the kernel's epilogue arguments, which both ways of launching pass.
"""

from .common import check_buffer
from .ewise import check_dropout, seed_bits
from .launch import kwargs_token, launch

# Bounded, since offsets vary with the views multiplied.
PLANS = {}
PLANS_LIMIT = 4096


def remember(key, kernel, needs, size, n, swapped, ints, grid, kwargs):
    """Keep the plan of a product `matmul` has just launched: the kernel, the elements A's and B's
    views need (`needs`), the result's size and columns, whether the operands trade places, the
    kernel's int arguments after the buffers, its grid and its keywords."""
    if len(PLANS) >= PLANS_LIMIT:
        PLANS.clear()
    PLANS[key] = (kernel, *needs, size, n, swapped, tuple(ints), grid, kwargs,
                  kwargs_token(kwargs))


def launch_planned(plan, a, b, out, gate, bias, dropout):
    """Launch a small product by its plan; False, launching nothing, when a buffer or the dropout
    arguments do not pass (`matmul` then reports it in full)."""
    kernel, a_needs, b_needs, size, n, swapped, ints, grid, kwargs, token = plan
    try:
        check_buffer("matmul a", a, a_needs)
        check_buffer("matmul b", b, b_needs)
        check_buffer("matmul out", out, size)
        if gate is not None:
            check_buffer("matmul gate", gate, size)
        if bias is not None:
            check_buffer("matmul bias", bias, n)
        if dropout is not None:
            check_dropout(size, *dropout)
    except (TypeError, ValueError):
        return False
    first, second = (b, a) if swapped else (a, b)
    launch(kernel, grid, (first, second, out, *ints, *epilogue_args(out, gate, bias, dropout, 0)),
           kwargs, token)
    return True


def epilogue_args(out, gate, bias, dropout, first):
    """The matmul kernel's gate, bias, threshold, scale, seed and first arguments: `out` stands in
    for a buffer not asked for (never read), and the seed travels as its int32 bit pattern."""
    threshold, scale, seed = (0, 1.0, 0) if dropout is None else dropout
    return (out if gate is None else gate, out if bias is None else bias, int(threshold),
            float(scale), seed_bits(int(seed)), int(first))
