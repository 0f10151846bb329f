"""The cuda device: the device protocol (protocol.py) over 1-D float32 torch tensors, every
computation one of our Triton kernels (kernels_triton). Backend layer; torch only allocates and
moves bytes. With TRITON_INTERPRET=1 the handles are CPU tensors run by Triton's interpreter.
"""

import functools
import math
import os

import numpy as np

from .numpy_optim import check_update_lists
from .numpy_pool import check_pool_sizes
from .strides import compact_strides

try:
    import torch
    import triton

    from kernels_triton import compile_ahead as _compile_ahead
    from kernels_triton import conv as _conv
    from kernels_triton import ewise as _ewise
    from kernels_triton import loss as _loss
    from kernels_triton import matmul as _matmul
    from kernels_triton import memory as _memory
    from kernels_triton import norm as _norm
    from kernels_triton import optim as _optim
    from kernels_triton import pool as _pool
    from kernels_triton import pool_avg as _pool_avg
    from kernels_triton import reduce as _reduce
    from kernels_triton.common import AUTOTUNE_CACHE as _AUTOTUNE_CACHE
    from kernels_triton.common import interpreting as _interpreting

    from . import cuda_staging as _staging
    from . import cuda_timed_store as _timed_store
    from . import cuda_weight_grad_splits as _splits
except ImportError:  # no torch/triton: the module imports, enabled() is False
    torch = None
else:
    if not _interpreting():
        _staging.timer = lambda fn: _gpu_ms(fn)
        if _AUTOTUNE_CACHE and torch.cuda.is_available():  # beside the autotune choices
            _timed_store.enable(os.path.join(triton.knobs.cache.dir, "engine_timed_choices"),
                                lambda: _timed_store.gpu_identity(_torch_device()))

DTYPES = ("float32",)
_precision = "ieee"


def enabled():
    """True with a CUDA GPU, or in Triton's interpreter (TRITON_INTERPRET=1, CPU tensors)."""
    if torch is None:
        return False
    return _interpreting() or torch.cuda.is_available()


def set_matmul_precision(precision):
    """"ieee" (default: fp32 products), "tf32" (tensor cores, 10-bit mantissa inputs) or "tf32x3"
    (three tf32 products, close to fp32); applies to matmul and the convolutions."""
    global _precision
    if precision not in _matmul.PRECISIONS:
        raise ValueError(f"unknown matmul precision {precision!r}; choose one of "
                         f"{_matmul.PRECISIONS}")
    _precision = precision


def get_matmul_precision():
    return _precision


def set_operand_staging(policy):
    """Whether products first copy an operand into the layout their multiply unit reads fastest
    (see cuda_staging.py): "auto" (default: when the product is large enough to pay for the copy),
    "always" or "never" (every operand read in place)."""
    _staging.set_policy(policy)


def _tensor_cores():
    return _precision != "ieee"


def _staging_rounds():
    """Whether staging copies round to nearest TF32: the tensor cores truncate TF32 inputs, so a
    staged operand rounded first halves its share of the error (one operand that is not K-major
    is rounded in the kernel instead, see matmul_layouts.py). Not tf32x3, which splits each fp32
    value into a TF32 part and the remainder."""
    return _precision == "tf32"


@functools.lru_cache(maxsize=1)
def _torch_device():
    return torch.device("cpu" if _interpreting() else "cuda")


@functools.lru_cache(maxsize=1)
def _sm_count():
    if _interpreting():
        return 1
    return torch.cuda.get_device_properties(_torch_device()).multi_processor_count


# Memory
def alloc(size, dtype="float32"):
    # The string test first: np.dtype(...).name costs microseconds, and this runs once per op.
    if dtype != "float32" and np.dtype(dtype).name not in DTYPES:
        raise TypeError(f"device cuda supports dtypes {DTYPES}, got {dtype}")
    return torch.empty(int(size), dtype=torch.float32, device=_torch_device())


def from_numpy(src, out):
    host = np.ascontiguousarray(src, dtype=np.float32).reshape(-1)
    if out.numel() < host.size:
        raise ValueError(f"from_numpy: {host.size} elements into a buffer of {out.numel()}")
    out[: host.size].copy_(torch.from_numpy(host))


def to_numpy(a, shape, strides, offset):
    shape, strides = tuple(shape), tuple(strides)
    size = math.prod(shape)
    dense = a
    if not (offset == 0 and strides == compact_strides(tuple(shape))):
        dense = alloc(size)
        _memory.compact(a, dense, shape, strides, offset)
    host = dense[:size].cpu().numpy()
    # On the interpreter the handle is already host memory: copy so the result owns its data.
    return (host.copy() if dense.device.type == "cpu" else host).reshape(shape)


def fill(out, value, size):
    _memory.fill(out, value, size)


# Strided access
def compact(a, out, shape, strides, offset):
    _memory.compact(a, out, shape, strides, offset)


def ewise_setitem(a, out, shape, strides, offset):
    _memory.ewise_setitem(a, out, shape, strides, offset)


def scalar_setitem(size, value, out, shape, strides, offset):
    _memory.scalar_setitem(size, value, out, shape, strides, offset)


# Elementwise
def _binary(op):
    def ewise(a, b, out, size):
        _ewise.ewise(op, a, b, out, size)

    def scalar(a, value, out, size):
        _ewise.scalar(op, a, value, out, size)

    ewise.__name__, scalar.__name__ = f"ewise_{op}", f"scalar_{op}"
    return ewise, scalar


def _unary(op):
    def unary(a, out, size):
        _ewise.unary(op, a, out, size)

    unary.__name__ = f"ewise_{op}"
    return unary


ewise_add, scalar_add = _binary("add")
ewise_mul, scalar_mul = _binary("mul")
ewise_div, scalar_div = _binary("div")
ewise_maximum, scalar_maximum = _binary("maximum")
ewise_eq, scalar_eq = _binary("eq")
ewise_ge, scalar_ge = _binary("ge")
ewise_gt, scalar_gt = _binary("gt")
_, scalar_power = _binary("power")
_, scalar_rdiv = _binary("rdiv")

ewise_neg = _unary("neg")
ewise_log = _unary("log")
ewise_exp = _unary("exp")
ewise_tanh = _unary("tanh")
ewise_relu = _unary("relu")
ewise_sigmoid = _unary("sigmoid")
ewise_sqrt = _unary("sqrt")


def ewise_relu_grad(g, x, out, size):
    _ewise.ewise("relu_grad", g, x, out, size)


def ewise_add_scaled(a, b, value, out, size):
    _ewise.add_scaled(a, b, value, out, size)


def ewise_axpby(a, b, alpha, beta, out, size):
    _ewise.axpby(a, b, alpha, beta, out, size)


def ewise_dropout(a, out, size, threshold, scale, seed):
    _ewise.dropout(a, out, size, threshold, scale, seed)


def ewise_add_row(a, row, out, size, period):
    _ewise.row_op("add", a, row, out, size, period)


def ewise_mul_row(a, row, out, size, period):
    _ewise.row_op("mul", a, row, out, size, period)


# Optimizer updates
def _elements(handle):
    try:
        return handle.numel()
    except AttributeError:
        raise TypeError(f"cuda device handles are torch tensors, got "
                        f"{type(handle).__name__}") from None


def sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback):
    sizes = check_update_lists("sgd_update", {"ws": ws, "gs": gs, "us": us}, sizes, _elements)
    _optim.sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback)


def adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps, step):
    sizes = check_update_lists("adam_update", {"ws": ws, "gs": gs, "ms": ms, "vs": vs}, sizes,
                               _elements)
    _optim.adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps,
                       step)


# Reductions
def reduce_sum(a, out, reduce_size, out_size):
    _reduce.reduce("sum", a, out, reduce_size, out_size)


def reduce_max(a, out, reduce_size, out_size):
    _reduce.reduce("max", a, out, reduce_size, out_size)


def reduce_logsumexp(a, out, reduce_size, out_size):
    _reduce.reduce("logsumexp", a, out, reduce_size, out_size)


# Softmax cross-entropy
def softmax_xent(z, labels, out, classes, rows):
    _loss.softmax_xent(z, labels, out, classes, rows)


def softmax_xent_grad(z, labels, g, out, classes, rows):
    _loss.softmax_xent_grad(z, labels, g, out, classes, rows)


# Normalization (batch and layer norm)
def norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps):
    _norm.norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps)


def norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps):
    _norm.norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps)


def norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                        eps, per_member, running=None, keep=1.0, take=0.0, relu=False):
    _norm.norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride,
                              member_stride, eps, per_member, running, keep, take, relu)


def norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                         group_stride, member_stride, eps, per_member, gate=None):
    _norm.norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                               group_stride, member_stride, eps, per_member, gate)


# Matmul and convolution
def matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, gate=None, relu=False,
           bias=None, dropout=None):
    a_strides = (a_batch_stride, a_row_stride, a_col_stride)
    b_strides = (b_batch_stride, b_row_stride, b_col_stride)
    product = (a, b, out, batch, m, k, n, a_offset, a_strides, b_offset, b_strides, gate, relu,
               bias, dropout)
    stage = None
    # TF32 reads a misplaced operand as stored through registers (kernels_triton/matmul_layouts.py):
    # whether the copy still pays is measured (see cuda_staging.timer).
    if (_precision == "tf32" and _staging.timer is not None and _staging.policy() == "auto"
            and _staging.would_stage(True, batch, m, k, n, a_strides, b_strides)):
        _matmul.check_args(*product[:12], bias)
        stage = _staging.timed_choice((batch, m, k, n, a_strides, b_strides),
                                      lambda: _staged_matmul(*product, stage=True),
                                      lambda: _staged_matmul(*product, stage=False),
                                      may_time=not _capturing())
    _staged_matmul(*product, stage=stage)


def _staged_matmul(a, b, out, batch, m, k, n, a_offset, a_strides, b_offset, b_strides, gate,
                   relu, bias, dropout, stage=None):
    """The product with its operands staged by the policy (or as `stage` says)."""
    a, a_offset, a_strides, b, b_offset, b_strides = _staging.matmul_operands(
        alloc, lambda: _matmul.check_args(a, b, out, batch, m, k, n, a_offset, a_strides,
                                          b_offset, b_strides, gate, bias),
        _tensor_cores(), a, b, batch, m, k, n, a_offset, a_strides, b_offset, b_strides,
        stage=stage, round_tf32=_staging_rounds())
    _matmul.matmul(a, b, out, batch, m, k, n, a_offset, *a_strides, b_offset, *b_strides,
                   gate=gate, relu=relu, bias=bias, dropout=dropout, precision=_precision,
                   sm_count=_sm_count())


def _capturing():
    """Whether the current stream is being captured into a CUDA graph (never without a GPU)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _gpu_ms(fn):
    """Median milliseconds of fn() on the GPU (the staging timer)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median")


def _valid_groups(groups):
    return isinstance(groups, int) and groups > 0


def conv2d_forward(x, w, out, n, h, w_, c, k, kh, kw, oh, ow,
                   stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    # The arithmetic guard keeps a bad `groups` for check_pass to report; the pass is checked
    # before a copy only when one is made (a second check costs host time on every launch).
    taps = kh * kw * (c // groups) if _valid_groups(groups) else 0
    staged = _tensor_cores() and _staging.worth_it(n * oh * ow * k * taps, n * oh * ow)
    if staged:  # weights as (k, kh, kw, c/groups): K-major for the tensor cores
        _conv.check_pass("forward", x, w, out, n, h, w_, c, k, kh, kw, oh, ow, stride_h,
                         stride_w, pad_h, pad_w, dil_h, dil_w, groups)
        w, _, _ = _staging.relayout(alloc, w, 1, taps, k, 0, (0, k, 1), cols_contiguous=False,
                                    round_tf32=_staging_rounds())
    _conv.conv2d_forward(x, w, out, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                         pad_h, pad_w, dil_h, dil_w, groups, precision=_precision,
                         w_transposed=staged)


def conv2d_backward_input(gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow,
                          stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    work = n * h * w_ * c * kh * kw * (k // groups) if _valid_groups(groups) else 0
    staged = not _tensor_cores() and _staging.worth_it(work, n * h * w_)
    if staged:  # weights as (kh, kw, k, c/groups): input channels contiguous for FMA
        _conv.check_pass("input", gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                         pad_h, pad_w, dil_h, dil_w, groups)
        cg = c // groups
        w, _, _ = _staging.relayout(alloc, w, kh * kw, cg, k, 0, (cg * k, k, 1),
                                    cols_contiguous=False)
    _conv.conv2d_backward_input(gy, w, gx, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                                pad_h, pad_w, dil_h, dil_w, groups, precision=_precision,
                                w_tap_major=staged)


def conv2d_backward_weight(x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow,
                           stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups):
    _conv.check_pass("weight", x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w, dil_h, dil_w, groups)
    work = n * oh * ow * k * kh * kw * (c // groups)
    # The reduction runs over pixels, the outer dimension of both NHWC operands: channel-major
    # copies make both K-major for the tensor cores.
    staged = _tensor_cores() and _staging.worth_it(work, kh * kw * min(c // groups, k // groups))
    if staged:
        x, _, _ = _staging.relayout(alloc, x, 1, n * h * w_, c, 0, (0, c, 1),
                                    cols_contiguous=False, round_tf32=_staging_rounds())
        gy, _, _ = _staging.relayout(alloc, gy, 1, n * oh * ow, k, 0, (0, k, 1),
                                     cols_contiguous=False, round_tf32=_staging_rounds())
    # The slices' partial sums need scratch memory; the device (not the launcher) allocates it,
    # once per slice count tried.
    workspaces = {}

    def run(splits):
        if splits > 1 and splits not in workspaces:
            workspaces[splits] = alloc(splits * kh * kw * (c // groups) * k)
        _conv.conv2d_backward_weight(x, gy, gw, n, h, w_, c, k, kh, kw, oh, ow, stride_h,
                                     stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                                     precision=_precision, splits=splits,
                                     workspace=workspaces.get(splits), x_channel_major=staged,
                                     gy_channel_major=staged, checked=True)

    key = (n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
           _precision, staged)
    timer = _staging.timer
    run(_splits.slice_count(key, (n, oh, ow, c, k, kh, kw, groups), _sm_count(), run, timer,
                            may_time=timer is None or not _capturing()))


# Max pooling
def max_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("max_pool2d_forward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    _pool.max_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                             pad_w)


def max_pool2d_backward(x, out, gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                        pad_w):
    check_pool_sizes("max_pool2d_backward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    _pool.max_pool2d_backward(x, out, gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                              pad_h, pad_w)


# Average pooling
def avg_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("avg_pool2d_forward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    _pool_avg.avg_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                                 pad_w)


def avg_pool2d_backward(gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w):
    check_pool_sizes("avg_pool2d_backward", n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w,
                     pad_h, pad_w)
    _pool_avg.avg_pool2d_backward(gy, gx, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h,
                                  pad_w)


# Threads: the host's share of the work is compiling, where an autotuner's candidates compile in
# parallel (kernels_triton/compile_ahead.py).
def set_num_threads(n):
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    if torch is not None:
        _compile_ahead.set_compile_threads(n)


def get_num_threads():
    return _compile_ahead.compile_threads() if torch is not None else 1
