"""Operand staging for the cuda device (backend layer): before a large product, copy an operand into
the layout its multiply unit reads fastest. TF32 tensor cores (Hopper wgmma) take only K-major
shared tiles; an N-major tile is gathered 4 bytes at a time into a transposed layout instead of by
16-byte async copies (for the matmul, only when A and B are both misplaced). FMA (IEEE fp32) reads
MN-major tiles (A rows, B columns contiguous) with vector shared-memory loads and K-major ones
mostly element by element. `bench/gpu_ir_probe.py` shows both on the compiled code. TF32 products
have a copy-free alternative (one operand fed from registers, see
kernels_triton/matmul_layouts.py), so for them "auto" times both ways once per shape on the GPU.
"""

from kernels_triton import transpose as _transpose

from . import cuda_timed_store as timed_store

POLICIES = ("auto", "always", "never")
# "auto" stages when the kernel time saved outweighs one more launch: a Triton launch costs tens of
# microseconds of host time, and measured on an H100 (bench/gpu_overhead_probe.py) the transposes
# take 2-5 us of GPU time below 1024^2 but add 50-140 us of host time per call. 1024^3 products
# (2^30 multiply-adds) ran 2-3x slower staged, host-bound; 2048^3 (2^33) ran faster staged (TF32
# 1.8x, IEEE 1.06x). Every copied element must also serve this many output rows (or columns).
MIN_WORK = 1 << 31
MIN_REUSE = 256

_policy = "auto"
# TF32 products that "auto" would stage are decided by timing both ways, once per shape: which
# wins (a copy at memory bandwidth, or the kernel reading an operand as stored through registers)
# depends on the GPU and the shape. `timer(fn)` gives milliseconds; the cuda device sets it on a
# GPU, and without one (None) the size rule decides.
timer = None
_timed = {}
_stored = set()


def set_policy(policy):
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"unknown operand staging {policy!r}; choose one of {POLICIES}")
    _policy = policy


def policy():
    return _policy


def enabled():
    return _policy != "never"


def worth_it(work, reuse):
    """Whether the policy stages an operand of a product of `work` multiply-adds whose elements
    each serve `reuse` outputs."""
    if _policy == "never":
        return False
    return _policy == "always" or (work >= MIN_WORK and reuse >= MIN_REUSE)


def relayout(alloc, src, batch, rows, cols, offset, strides, cols_contiguous, round_tf32=False):
    """Copy the strided (batch, rows, cols) matrices at src[offset + t*strides[0] + i*strides[1] +
    j*strides[2]] into a new buffer laid out with cols (or rows) contiguous, each element rounded
    to nearest TF32 with `round_tf32`. Returns (buffer, offset, strides) of the copy; a broadcast
    batch (stride 0) is copied once and stays stride 0."""
    batch_stride, row_stride, col_stride = strides
    copies = 1 if batch_stride == 0 else batch
    dst = alloc(copies * rows * cols)
    size = 0 if batch_stride == 0 else rows * cols
    if cols_contiguous:  # the transpose of the (cols, rows) view is the (rows, cols) compact copy
        _transpose.transpose(src, dst, copies, cols, rows, offset, batch_stride, col_stride,
                             row_stride, round_tf32)
        return dst, 0, (size, cols, 1)
    _transpose.transpose(src, dst, copies, rows, cols, offset, batch_stride, row_stride,
                         col_stride, round_tf32)
    return dst, 0, (size, 1, rows)


def _misplaced(tensor_cores, a_strides, b_strides):
    """Which operands are not in the layout the multiply unit wants: A wants k contiguous (cols)
    for tensor cores, m (rows) for FMA; B the other way round."""
    return ((a_strides[2] if tensor_cores else a_strides[1]) != 1,
            (b_strides[1] if tensor_cores else b_strides[2]) != 1)


def _plan(tensor_cores, batch, m, k, n, a_strides, b_strides, stage=None):
    """(copy A, copy B) for this product: each when it is not in the layout the multiply unit
    wants and staging pays (`stage` True or False overrides the policy)."""
    work = batch * m * n * k
    if k < 2 or work == 0 or not (enabled() if stage is None else stage):
        return False, False
    a_misplaced, b_misplaced = _misplaced(tensor_cores, a_strides, b_strides)
    return (a_misplaced and (stage or worth_it(work, n)),
            b_misplaced and (stage or worth_it(work, m)))


def would_stage(tensor_cores, batch, m, k, n, a_strides, b_strides):
    """Whether the policy copies an operand of this product (see `matmul_operands`)."""
    return any(_plan(tensor_cores, batch, m, k, n, a_strides, b_strides))


def timed_choice(key, run_staged, run_direct, may_time=True):
    """Whether staging wins for the product `key`, timed once with `timer` (each way run once
    before, so autotuning is not timed) and remembered: the first call of a shape runs it
    several times, later ones only look it up, here or on disk (cuda_timed_store). Undecided and
    not `may_time` (a CUDA graph is being captured, where timing's synchronization is not
    allowed): None, the policy's rule."""
    if key not in _timed:
        def staged_wins():
            run_staged()
            run_direct()
            return bool(timer(run_staged) <= timer(run_direct))

        decided, elsewhere = timed_store.decide("staging", key, _is_decision, staged_wins,
                                                may_time)
        if decided is None:
            return None
        if elsewhere:
            _stored.add(key)
        _timed[key] = decided
    return _timed[key]


def _is_decision(value):
    return isinstance(value, bool)


def timed_choices():
    """The decisions `timed_choice` has made: {key: staged}."""
    return dict(_timed)


def stored_choices():
    """The keys among `timed_choices()` decided by an earlier process (found on disk)."""
    return set(_stored)


def matmul_operands(alloc, validate, tensor_cores, a, b, batch, m, k, n, a_offset, a_strides,
                    b_offset, b_strides, stage=None, round_tf32=False):
    """The operands of A (batch, m, k) @ B (batch, k, n), each relaid out when it is not in the
    layout the multiply unit wants (K-major for tensor cores, MN-major for FMA) and staging pays
    (`stage` True or False overrides the policy), rounded to TF32 on the way with `round_tf32`.
    `validate()` runs before any copy, so bad input is reported as the product's own error."""
    stage_a, stage_b = _plan(tensor_cores, batch, m, k, n, a_strides, b_strides, stage)
    if stage_a or stage_b:
        validate()
    if stage_a:
        a, a_offset, a_strides = relayout(alloc, a, batch, m, k, a_offset, a_strides,
                                          cols_contiguous=tensor_cores, round_tf32=round_tf32)
    if stage_b:
        b, b_offset, b_strides = relayout(alloc, b, batch, k, n, b_offset, b_strides,
                                          cols_contiguous=not tensor_cores, round_tf32=round_tf32)
    return a, a_offset, a_strides, b, b_offset, b_strides
