"""The device protocol: the one flat list of functions every device implements.
Backend layer. The numpy device (`numpy_device.py`) is the executable specification; the cpu (C)
and cuda (Triton) devices implement exactly these names and signatures.

Conventions, for every function below:
- A *handle* is a device buffer of elements (cpu/cpu_numpy: a 1-D numpy array; cuda: a 1-D torch
  tensor). Sizes, offsets and strides are counted in elements, never bytes; strides may be 0
  (broadcast) or negative (flip).
- Functions write into a caller-allocated `out` and return None. They never allocate outputs.
- "compact" inputs start at element 0 of their handle and are dense row-major over `size` elements
  (a handle may be longer than the array it holds).
- Shapes and strides are tuples of Python ints of equal length (rank 0..8).

Memory
    alloc(size, dtype) -> handle          a new uninitialised buffer of `size` elements
    from_numpy(src, out)                  copy a compact host numpy array into `out`
    to_numpy(a, shape, strides, offset)   a new host numpy array holding the strided view
    fill(out, value, size)                out[0:size] = value

Strided access (the only gateway between strided views and dense data)
    compact(a, out, shape, strides, offset)
        out[i] = a[offset + sum_d idx_d(i) * strides[d]], i over row-major `shape`
    ewise_setitem(a, out, shape, strides, offset)
        out[offset + sum_d idx_d(i) * strides[d]] = a[i], `a` compact of prod(shape) elements
    scalar_setitem(size, value, out, shape, strides, offset)
        out[offset + sum_d idx_d(i) * strides[d]] = value, size == prod(shape)

Elementwise over compact data, `size` elements (`out` may be one of the inputs)
    ewise_add/mul/div/maximum/eq/ge/gt(a, b, out, size)      out = a OP b (comparisons give 0./1.)
    scalar_add/mul/div/power/maximum/eq/ge/gt(a, value, out, size)   out = a OP value
    scalar_rdiv(a, value, out, size)                          out = value / a
    ewise_neg/log/exp/tanh/relu/sigmoid/sqrt(a, out, size)    out = f(a)

Elementwise with a repeated row: `a` and `out` compact over `size` elements, `row` compact over
`period` elements (size a multiple of period, period >= 1): a broadcast bias or scale, read as
stored instead of copied out to `size` first; `out` may be `a`
    ewise_add_row/mul_row(a, row, out, size, period)          out[i] = a[i] OP row[i % period]

Fused elementwise over compact data: the training step's two commonest pairs of launches in one
pass each (the ReLU gradient; SGD, momentum and weight-decay updates); `out` may be an input
    ewise_relu_grad(g, x, out, size)           out = 0 where x <= 0 (whatever g holds), else g (so
                                               a NaN x passes g on: PyTorch's threshold_backward)
    ewise_add_scaled(a, b, value, out, size)   out = a + value * b, value rounded to the arrays'
                                               dtype first; one rounding (fused multiply-add) or two
    ewise_axpby(a, b, alpha, beta, out, size)  out = alpha * a + beta * b (moving averages:
                                               momentum, Adam's moments, running statistics),
                                               alpha and beta rounded to the dtype first; two
                                               roundings (one product fused) or three

Dropout over compact data, the mask drawn on the device from a counter-based hash, so every device
draws the same mask for a seed and the backward pass redraws it instead of storing it
    ewise_dropout(a, out, size, threshold, scale, seed)
        out[i] = a[i] * scale where (hash(seed, i) >> 8) >= threshold, else 0; scale rounded to
        the dtype, 0 <= threshold <= 2^24 (a keep probability of 1 - threshold / 2^24),
        0 <= seed < 2^32, size <= 2^32. hash(seed, i) = fmix32(((i * 0x9E3779B9) mod 2^32) XOR
        seed), fmix32 being MurmurHash3's 32-bit finalizer: x ^= x >> 16; x *= 0x85EBCA6B;
        x ^= x >> 13; x *= 0xC2B2AE35; x ^= x >> 16 (all mod 2^32)

Optimizer updates, a whole list of parameters in one call (one launch on a GPU for a model):
ws, gs and each state list (us; ms, vs) hold one compact handle per parameter, `sizes` their
element counts. Each w and its state are updated in place, every element reading and writing its
own index only; no written buffer overlaps another listed buffer. Scalars are rounded to the
dtype first, and any product may be fused into the sum that follows it. Below, per parameter,
d = g + weight_decay * w, or d = g when weight_decay (rounded) is 0.
    sgd_update(ws, gs, us, sizes, weight_decay, keep, take, step, lookback)
        us None (no momentum): w = w - step * d; otherwise u_old = u, u = keep * u + take * d,
        w = w - step * u, plus lookback * u_old when lookback (rounded) is not 0 (momentum,
        dampening, bias correction and Nesterov's look-ahead all fold into these four numbers)
    adam_update(ws, gs, ms, vs, sizes, weight_decay, keep1, take1, keep2, take2, eps, step)
        m = keep1 * m + take1 * d, v = keep2 * v + take2 * (d * d),
        w = w - step * (m / (sqrt(v) + eps))

Reductions over the last axis of compact data
    reduce_sum(a, out, reduce_size, out_size)   out[i] = sum_j a[i * reduce_size + j]
    reduce_max(a, out, reduce_size, out_size)   out[i] = max_j a[i * reduce_size + j]
    reduce_logsumexp(a, out, reduce_size, out_size)
        out[i] = log(sum_j exp(a[i * reduce_size + j])), without overflow (shifted by the row's
        finite maximum): -inf for an empty or all -inf row, inf with an inf, NaN with a NaN

Softmax cross-entropy over the last axis of compact logits z (rows, classes), with compact labels
(rows,) of z's dtype. A label is valid when 0 <= label < classes (NaN is not) and names class
int(label); an invalid one makes its row NaN, so a device never reads outside z (callers check
labels first and raise). lse_i below is reduce_logsumexp's value of row i.
    softmax_xent(z, labels, out, classes, rows)
        out[i] = lse_i - z[i, labels[i]]                      (the loss of row i)
    softmax_xent_grad(z, labels, g, out, classes, rows)
        out[i, j] = g[i] * (exp(z[i, j] - lse_i) - (j == labels[i]))   (its gradient, g compact)

Normalization over one axis (batch and layer norm), one pass per direction: the elements
x[i * group_stride + j * member_stride] for i < groups, j < members form group i (a compact
(rows, cols) array is normalized per row with (rows, cols, cols, 1), per column with
(cols, rows, 1, cols)); g, xhat and out are indexed the same way, stats is compact (2 * groups).
    norm_forward(x, out, stats, groups, members, group_stride, member_stride, eps)
        stats[i] = mean_i, stats[groups + i] = var_i (biased: the mean squared deviation from
        mean_i), out = (x - mean_i) / sqrt(var_i + eps); NaN statistics when members == 0
    norm_backward(g, xhat, stats, out, groups, members, group_stride, member_stride, eps)
        out = (g - mean_j(g) - xhat * mean_j(g * xhat)) / sqrt(var_i + eps): the gradient of
        norm_forward's out for the cotangent g, where xhat is that out (means over the group)
With a learned scale and shift (batch norm: one per group, per_member 0; layer norm: one per
member, per_member 1), p below is i or j accordingly and weight, bias, weight_grad and bias_grad
are compact with that many elements; out, weight_grad and bias_grad overlap no input:
    norm_affine_forward(x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                        eps, per_member, running=None, keep=1.0, take=0.0, relu=False)
        norm_forward's stats, out = weight[p] * xhat + bias[p], xhat norm_forward's out; with
        `running` (compact, 2 * groups elements, overlapping no other buffer: batch norm's running
        mean and variance), also running[k] = keep * running[k] + take * stats[k] for
        k < 2 * groups, in place, with ewise_axpby's roundings; with `relu`, out is then
        ewise_relu(out) (a normalization layer and its ReLU in one launch)
    norm_affine_backward(g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                         group_stride, member_stride, eps, per_member, gate=None)
        xhat = (x - mean_i) / sqrt(var_i + eps) from norm_affine_forward's stats, h = weight[p] * g;
        out = norm_backward's out for the cotangent h, weight_grad[p] = the sum of g * xhat over
        the elements of parameter p, bias_grad[p] = the sum of g over them (0 with none); with
        `gate` (indexed like g, overlapping no output), g is first ewise_relu_grad(g, gate): the
        backward of a normalization and the ReLU after it in one launch

Matrix multiply (strided operands: transposed and broadcast views need no copy)
    matmul(a, b, out, batch, m, k, n,
           a_offset, a_batch_stride, a_row_stride, a_col_stride,
           b_offset, b_batch_stride, b_row_stride, b_col_stride, gate=None, relu=False,
           bias=None, dropout=None)
        out[t, i, j] = sum_l A[t, i, l] * B[t, l, j] for t < batch, out compact (batch, m, n), where
        A[t, i, l] = a[a_offset + t*a_batch_stride + i*a_row_stride + l*a_col_stride] (B alike).
        Epilogues in the same pass, in this order, each exactly as its own kernel would compute
        it: with `bias` (compact, n elements) out = ewise_add_row(out, bias); with `dropout`
        (threshold, scale, seed) out = ewise_dropout(out, batch * m * n, threshold, scale, seed);
        with `gate` (compact like out) out = ewise_relu_grad(out, gate), the gradient that
        reaches a ReLU's output through a product, gated by the ReLU's input; with `relu`,
        out = ewise_relu(out). A layer's product, bias, ReLU and dropout are one launch (ReLU and
        dropout commute), and so is its backward product with dropout's and ReLU's gradients;
        gate and bias overlap no other buffer

Convolution (NHWC activations, (KH, KW, C/groups, K) weights; implicit zero padding)
    conv2d_forward(x, w, out, n, h, w_, c, k, kh, kw, oh, ow,
                   stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
        out (n, oh, ow, k) compact
    conv2d_backward_input(gy, w, gx, ...same sizes...)     gx (n, h, w_, c), overwritten
    conv2d_backward_weight(x, gy, gw, ...same sizes...)    gw (kh, kw, c/groups, k), overwritten
    max_pool2d_forward(x, out, n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w)
        out (n, oh, ow, c) compact: each window's maximum over the elements of x it covers (rows
        oh_i * stride_h - pad_h + r for r < kh, columns alike; padding is outside x and never
        wins, 2 * pad <= kernel), NaN if one is NaN
    max_pool2d_backward(x, out, gy, gx, ...same sizes...)
        gx (n, h, w_, c) overwritten: each window o sends gy[o] / ties_o to every element of x it
        covers that equals out[o] (ties_o of them), NaN to all it covers when none does (a NaN
        maximum); an element gets the sum of what its windows send (0 from none); gx overlaps
        no input
    avg_pool2d_forward(x, out, ...same sizes...)
        out (n, oh, ow, c) compact: each window's sum over the elements of x it covers, divided
        by kh * kw (padding counts as zeros: PyTorch's count_include_pad)
    avg_pool2d_backward(gy, gx, ...same sizes...)
        gx (n, h, w_, c) overwritten: each window sends gy[o] / (kh * kw) to every element of x
        it covers; an element gets the sum (0 from none); gx overlaps no input

Threads
    set_num_threads(n) / get_num_threads()   threads of the device's host work (cpu: its kernels;
        cuda: compiling autotune candidates); devices without threads accept and ignore n
"""

MEMORY_FUNCTIONS = ("alloc", "from_numpy", "to_numpy", "fill")
STRIDED_FUNCTIONS = ("compact", "ewise_setitem", "scalar_setitem")
BINARY_OPS = ("add", "mul", "div", "maximum", "eq", "ge", "gt")
EWISE_FUNCTIONS = tuple(f"ewise_{op}" for op in BINARY_OPS)
SCALAR_FUNCTIONS = tuple(f"scalar_{op}" for op in BINARY_OPS + ("power", "rdiv"))
UNARY_OPS = ("neg", "log", "exp", "tanh", "relu", "sigmoid", "sqrt")
UNARY_FUNCTIONS = tuple(f"ewise_{op}" for op in UNARY_OPS)
ROW_FUNCTIONS = ("ewise_add_row", "ewise_mul_row")
FUSED_FUNCTIONS = ("ewise_relu_grad", "ewise_add_scaled", "ewise_axpby")
RANDOM_FUNCTIONS = ("ewise_dropout",)
OPTIM_FUNCTIONS = ("sgd_update", "adam_update")
REDUCE_FUNCTIONS = ("reduce_sum", "reduce_max", "reduce_logsumexp")
LOSS_FUNCTIONS = ("softmax_xent", "softmax_xent_grad")
NORM_FUNCTIONS = (
    "norm_forward", "norm_backward", "norm_affine_forward", "norm_affine_backward",
)
MATMUL_FUNCTIONS = ("matmul",)
CONV_FUNCTIONS = (
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d_forward",
    "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
)
THREAD_FUNCTIONS = ("set_num_threads", "get_num_threads")

CORE_FUNCTIONS = (
    MEMORY_FUNCTIONS
    + STRIDED_FUNCTIONS
    + EWISE_FUNCTIONS
    + SCALAR_FUNCTIONS
    + UNARY_FUNCTIONS
    + ROW_FUNCTIONS
    + FUSED_FUNCTIONS
    + RANDOM_FUNCTIONS
    + OPTIM_FUNCTIONS
    + REDUCE_FUNCTIONS
    + LOSS_FUNCTIONS
    + NORM_FUNCTIONS
    + MATMUL_FUNCTIONS
    + THREAD_FUNCTIONS
)
ALL_FUNCTIONS = CORE_FUNCTIONS + CONV_FUNCTIONS


def missing_functions(module, names=CORE_FUNCTIONS):
    """The protocol names a device module does not define (empty when it is complete)."""
    return [name for name in names if not callable(getattr(module, name, None))]
