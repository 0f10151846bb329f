"""`Conv`: 2-D convolution layer on NCHW tensors (needle's layout); stride, dilation, groups.
Engine layer (nn). Probes find it through `probe_weight`, like Linear.
"""

import math
import numbers

from .. import init
from ..ops.conv import conv, int_pair
from .module import Module, Parameter


def same_padding(kernel, dilation):
    """Padding that keeps H and W for odd kernels at stride 1: dilation * (k - 1) // 2 per axis."""
    dilation = (dilation, dilation) if isinstance(dilation, numbers.Integral) else dilation
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))


class Conv(Module):
    """NCHW in, NCHW out; the weight is (kh, kw, in_channels/groups, out_channels) as in needle.

    Default init as in needle: weight kaiming_uniform with fan_in = in_channels/groups * kh * kw
    and fan_out = out_channels * kh * kw; bias uniform on +-1/sqrt(fan_in). `padding=None` keeps
    the spatial size for odd kernels. `weight_init(fan_in, fan_out, shape=, device=, dtype=)` and
    `bias_init(out_channels, device=, dtype=)` replace the defaults (e.g. `init.zeros`)."""

    probe_weight = "weight"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None,
                 dilation=1, groups=1, bias=True, device=None, dtype="float32",
                 weight_init=None, bias_init=None):
        super().__init__()
        if min(int(in_channels), int(out_channels), int(groups)) < 1:
            raise ValueError(f"Conv: in_channels, out_channels and groups must be positive, got "
                             f"{in_channels}, {out_channels}, {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = int_pair(kernel_size, "kernel_size", 1, "Conv")
        self.stride, self.dilation, self.groups = stride, dilation, int(groups)
        self.padding = same_padding(self.kernel_size, dilation) if padding is None else padding
        self._weight_init = weight_init or init.kaiming_uniform
        self._bias_init = bias_init
        self._device, self._dtype = device, dtype
        self.weight = Parameter(self._draw_weight())
        self.bias = Parameter(self._draw_bias()) if bias else None

    @property
    def fan_in(self):
        return self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    @property
    def fan_out(self):
        return self.out_channels * self.kernel_size[0] * self.kernel_size[1]

    def _draw_weight(self):
        shape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        weight = self._weight_init(self.fan_in, self.fan_out, shape=shape, device=self._device,
                                   dtype=self._dtype)
        if tuple(weight.shape) != shape:
            raise ValueError(f"Conv: weight_init returned shape {tuple(weight.shape)}, expected "
                             f"{shape}")
        return weight

    def _draw_bias(self):
        if self._bias_init is not None:
            bias = self._bias_init(self.out_channels, device=self._device, dtype=self._dtype)
            return bias.reshape((self.out_channels,))
        bound = 1.0 / math.sqrt(self.fan_in)
        return init.rand(self.out_channels, low=-bound, high=bound, device=self._device,
                         dtype=self._dtype)

    def reset_parameters(self):
        self.weight.data = self._draw_weight()
        if self.bias is not None:
            self.bias.data = self._draw_bias()

    def forward(self, x):
        if len(x.shape) != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv expects NCHW input with {self.in_channels} channels, got "
                             f"shape {tuple(x.shape)}")
        out = conv(x.permute((0, 2, 3, 1)), self.weight, stride=self.stride,
                   padding=self.padding, dilation=self.dilation, groups=self.groups)
        if self.bias is not None:
            out = out + self.bias.reshape((1, 1, 1, self.out_channels)).broadcast_to(out.shape)
        return out.permute((0, 3, 1, 2))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")
