"""Convolution ops: flip, dilate/undilate, pad, and 2-D convolution (NHWC input, (KH, KW, C/groups,
K) weight; stride, zero padding, dilation, groups) with its two adjoints. Engine ops layer; the
arithmetic runs in the device's conv2d_forward / conv2d_backward_input / conv2d_backward_weight.

Convolution is bilinear, so its gradients are convolutions again: Conv, ConvBackwardInput and
ConvBackwardWeight are each other's derivatives, and gradients of gradients work to any order.
"""

import numbers
from dataclasses import dataclass

from ..autograd import TensorOp
from ..backend import NDArray
from .shape import _normalize_axes, get_item


class Flip(TensorOp):
    """Reverse `axes`: a negative-stride view (consumers compact it when they need dense data)."""

    def __init__(self, axes):
        self.axes = axes

    def compute(self, a):
        return a.flip(_normalize_axes(self.axes, a.ndim, "flip"))

    def gradient(self, out_grad, node):
        return flip(out_grad, self.axes)


def _dilation_index(ndim, axes, dilation):
    step = dilation + 1
    return tuple(slice(None, None, step) if i in axes else slice(None) for i in range(ndim))


def _check_dilation(dilation, what):
    if not isinstance(dilation, numbers.Integral) or dilation < 0:
        raise ValueError(f"{what}: dilation must be an integer >= 0 (0 = identity), got "
                         f"{dilation!r}")
    return int(dilation)


class Dilate(TensorOp):
    """needle's dilate: `dilation` zeros after every element along `axes`, so an axis of n becomes
    n * (dilation + 1); `shape` overrides the output shape (the adjoint of undilate needs it)."""

    def __init__(self, axes, dilation, shape=None):
        self.axes = axes
        self.dilation = _check_dilation(dilation, "dilate")
        self.shape = None if shape is None else tuple(shape)

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "dilate")
        shape = self.shape or tuple(n * (self.dilation + 1) if i in axes else n
                                    for i, n in enumerate(a.shape))
        out = a.device.full(shape, 0.0, a.dtype)
        out[_dilation_index(a.ndim, axes, self.dilation)] = a
        return out

    def gradient(self, out_grad, node):
        return undilate(out_grad, self.axes, self.dilation)


class Undilate(TensorOp):
    """The inverse of dilate: every (dilation + 1)-th element along `axes`, starting at 0."""

    def __init__(self, axes, dilation):
        self.axes = axes
        self.dilation = _check_dilation(dilation, "undilate")

    def compute(self, a):
        axes = _normalize_axes(self.axes, a.ndim, "undilate")
        return a[_dilation_index(a.ndim, axes, self.dilation)]

    def gradient(self, out_grad, node):
        # Back to the input's exact shape, which need not be a multiple of dilation + 1.
        return Dilate(self.axes, self.dilation, node.inputs[0].shape)(out_grad)


class Pad(TensorOp):
    """Constant padding by `axes` = ((before, after), ...), one pair per axis as in numpy;
    `value` fills the border (0 by default; max pooling pads with -inf)."""

    def __init__(self, axes, value=0.0):
        self.axes = tuple(tuple(int(p) for p in pair) for pair in axes)
        self.value = float(value)

    def _interior(self, shape):
        return tuple(slice(before, before + n)
                     for n, (before, _) in zip(shape, self.axes, strict=True))

    def compute(self, a):
        if len(self.axes) != a.ndim or any(len(p) != 2 or min(p) < 0 for p in self.axes):
            raise ValueError(f"pad: need one non-negative (before, after) pair per axis of "
                             f"shape {a.shape}, got {self.axes}")
        if self.value == 0.0:
            return a.pad(self.axes)
        shape = tuple(n + before + after
                      for n, (before, after) in zip(a.shape, self.axes, strict=True))
        out = a.device.full(shape, self.value, a.dtype)
        out[self._interior(a.shape)] = a
        return out

    def gradient(self, out_grad, node):
        return get_item(out_grad, self._interior(node.inputs[0].shape))


def int_pair(value, name, minimum, what="conv"):
    """(h, w) from an int or a pair of ints, each >= minimum; ValueError naming `what` otherwise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                       for v in value)):
        raise ValueError(f"{what}: {name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{what}: {name} must be >= {minimum}, got {tuple(value)}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class ConvParams:
    """Stride, padding, dilation (1 = dense, as in PyTorch) as (h, w) pairs, and groups."""

    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @staticmethod
    def make(stride=1, padding=0, dilation=1, groups=1):
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"conv: groups must be an integer >= 1, got {groups!r}")
        return ConvParams(int_pair(stride, "stride", 1), int_pair(padding, "padding", 0),
                          int_pair(dilation, "dilation", 1), int(groups))


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one convolution, checked; `sizes()` is the protocol's argument tail."""

    n: int
    h: int
    w: int
    c: int
    k: int
    kh: int
    kw: int
    oh: int
    ow: int
    params: ConvParams

    @property
    def input_shape(self):
        return (self.n, self.h, self.w, self.c)

    @property
    def weight_shape(self):
        return (self.kh, self.kw, self.c // self.params.groups, self.k)

    @property
    def output_shape(self):
        return (self.n, self.oh, self.ow, self.k)

    def sizes(self):
        p = self.params
        return (self.n, self.h, self.w, self.c, self.k, self.kh, self.kw, self.oh, self.ow,
                *p.stride, *p.padding, *p.dilation, p.groups)


def conv_geometry(x_shape, w_shape, params):
    """The checked geometry of conv(x, w): ValueError naming the shapes when they do not fit."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        raise ValueError(f"conv: input must be NHWC of rank 4, got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"conv: weight must be (kh, kw, c_in/groups, c_out) of rank 4, got shape "
                         f"{w_shape}")
    n, h, w, c = x_shape
    kh, kw, c_per_group, k = w_shape
    groups = params.groups
    if min(kh, kw, c_per_group, k) < 1:
        raise ValueError(f"conv: weight shape {w_shape} has an empty axis")
    if c % groups or k % groups:
        raise ValueError(f"conv: groups={groups} must divide the input channels {c} (input shape "
                         f"{x_shape}) and the output channels {k} (weight shape {w_shape})")
    if c_per_group * groups != c:
        raise ValueError(f"conv: channel mismatch: input shape {x_shape} has {c} channels but "
                         f"weight shape {w_shape} with groups={groups} expects "
                         f"{c_per_group * groups}")
    (sh, sw), (ph, pw), (dh, dw) = params.stride, params.padding, params.dilation
    extent = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    padded = (h + 2 * ph, w + 2 * pw)
    if extent[0] > padded[0] or extent[1] > padded[1]:
        raise ValueError(f"conv: kernel extent {extent[0]}x{extent[1]} (weight shape {w_shape}, "
                         f"dilation {params.dilation}) is larger than the padded input "
                         f"{padded[0]}x{padded[1]} (input shape {x_shape}, padding "
                         f"{params.padding})")
    oh = conv_output_size(h, kh, sh, ph, dh)
    ow = conv_output_size(w, kw, sw, pw, dw)
    return ConvGeometry(n, h, w, c, k, kh, kw, oh, ow, params)


def _check_operands(what, expected_shape, got_shape, a, b):
    if tuple(got_shape) != tuple(expected_shape):
        raise ValueError(f"{what}: expected an operand of shape {tuple(expected_shape)}, got "
                         f"{tuple(got_shape)}")
    if a.device != b.device:
        raise ValueError(f"{what}: operands on different devices {a.device} and {b.device}")
    if a.dtype != b.dtype:
        raise ValueError(f"{what}: operands of different dtypes {a.dtype} and {b.dtype}")


def _device_function(device, name):
    try:
        return getattr(device, name)
    except AttributeError:
        raise NotImplementedError(f"device {device.name} does not implement the protocol's "
                                  f"{name}") from None


def _empty_like(a, shape):
    return NDArray.make(shape, device=a.device, dtype=a.dtype)


class Conv(TensorOp):
    """y[n, i, j, o] = sum over (r, s, c in o's group) of
    x_padded[n, i*sh + r*dh, j*sw + s*dw, c] * w[r, s, c, o]."""

    def __init__(self, params):
        self.params = params

    def compute(self, x, w):
        geometry = conv_geometry(x.shape, w.shape, self.params)
        _check_operands("conv", geometry.weight_shape, w.shape, x, w)
        out = _empty_like(x, geometry.output_shape)
        _device_function(x.device, "conv2d_forward")(
            x.compact().handle, w.compact().handle, out.handle, *geometry.sizes())
        return out

    def gradient(self, out_grad, node):
        x, w = node.inputs
        return (ConvBackwardInput(self.params, x.shape)(out_grad, w),
                ConvBackwardWeight(self.params, w.shape)(x, out_grad))


class ConvBackwardInput(TensorOp):
    """(gy, w) -> the gradient of <conv(x, w), gy> with respect to x (x of `input_shape`)."""

    def __init__(self, params, input_shape):
        self.params = params
        self.input_shape = tuple(input_shape)

    def compute(self, gy, w):
        geometry = conv_geometry(self.input_shape, w.shape, self.params)
        _check_operands("conv backward input", geometry.output_shape, gy.shape, gy, w)
        out = _empty_like(gy, geometry.input_shape)
        _device_function(gy.device, "conv2d_backward_input")(
            gy.compact().handle, w.compact().handle, out.handle, *geometry.sizes())
        return out

    def gradient(self, out_grad, node):
        # <ConvBackwardInput(gy, w), v> = <gy, conv(v, w)>: linear in gy and in w.
        gy, w = node.inputs
        return (Conv(self.params)(out_grad, w),
                ConvBackwardWeight(self.params, w.shape)(out_grad, gy))


class ConvBackwardWeight(TensorOp):
    """(x, gy) -> the gradient of <conv(x, w), gy> with respect to w (w of `weight_shape`)."""

    def __init__(self, params, weight_shape):
        self.params = params
        self.weight_shape = tuple(weight_shape)

    def compute(self, x, gy):
        geometry = conv_geometry(x.shape, self.weight_shape, self.params)
        _check_operands("conv backward weight", geometry.output_shape, gy.shape, x, gy)
        out = _empty_like(x, geometry.weight_shape)
        _device_function(x.device, "conv2d_backward_weight")(
            x.compact().handle, gy.compact().handle, out.handle, *geometry.sizes())
        return out

    def gradient(self, out_grad, node):
        # <ConvBackwardWeight(x, gy), u> = <gy, conv(x, u)>: linear in x and in gy.
        x, gy = node.inputs
        return (ConvBackwardInput(self.params, x.shape)(gy, out_grad),
                Conv(self.params)(x, out_grad))


def flip(a, axes):
    return Flip(axes)(a)


def dilate(a, axes, dilation):
    return Dilate(axes, dilation)(a)


def undilate(a, axes, dilation):
    return Undilate(axes, dilation)(a)


def pad(a, axes, value=0.0):
    return Pad(axes, value)(a)


def conv(a, b, stride=1, padding=0, dilation=1, groups=1):
    """Convolution of NHWC `a` with (kh, kw, c_in/groups, c_out) `b` (needle's `conv`, plus
    PyTorch-style `dilation` and `groups`); a symmetric zero `padding` on H and W."""
    params = ConvParams.make(stride, padding, dilation, groups)
    conv_geometry(a.shape, b.shape, params)
    return Conv(params)(a, b)


__all__ = ["flip", "dilate", "undilate", "pad", "conv"]
