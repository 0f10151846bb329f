"""Convolutional models of the `convnet` model option: a small ConvNet for 28x28 digits and needle's
ResNet9 shape, built from a run's config. Harness layer: harness.models imports this module only
when a run asks for model.name=convnet, so the driver never loads the engine for it.
"""

import math

from engine import init, nn
from engine.nn.conv import Conv
from engine.nn.norm2d import BatchNorm2d
from engine.nn.pooling import MaxPool2d
from harness.models import weight_init


def image_shape(in_features, in_channels):
    """(C, H, W) of a flattened square image of `in_features` values with `in_channels`."""
    side = math.isqrt(in_features // in_channels) if in_features % in_channels == 0 else 0
    if side == 0 or in_channels * side * side != in_features:
        raise ValueError(f"model.name=convnet needs square images: {in_features} input features "
                         f"are not {in_channels} channel(s) of a square image (use image data "
                         "such as mnist or fashion_mnist)")
    return in_channels, side, side


def conv_output_side(side, kernel, stride, padding):
    return (side + 2 * padding - kernel) // stride + 1


def build_convnet(cfg, in_features, num_classes, device=None):
    """The ConvNet of `cfg` (model, init, norm, dropout sections): inputs may be flat (N, C*H*W) or
    NCHW. Weights follow the init option and biases start at zero, as for the MLPs."""
    model_cfg, norm_cfg, p = cfg["model"], cfg["norm"], float(cfg["dropout"]["p"])
    if norm_cfg["name"] not in ("none", "batchnorm"):
        raise ValueError(f"model.name=convnet supports norm=none or norm=batchnorm (BatchNorm2d), "
                         f"got norm={norm_cfg['name']}")
    shape = image_shape(in_features, int(model_cfg["in_channels"]))
    bias, draw = bool(model_cfg["bias"]), weight_init(cfg["init"])

    def conv_block(c_in, c_out, kernel, stride):
        layers = [Conv(c_in, c_out, kernel, stride=stride, bias=bias, device=device,
                          weight_init=draw, bias_init=init.zeros)]
        if norm_cfg["name"] == "batchnorm":
            layers.append(BatchNorm2d(c_out, eps=norm_cfg["eps"],
                                         momentum=norm_cfg["momentum"], device=device))
        return layers + [nn.ReLU()]

    def linear(fan_in, fan_out):
        return nn.Linear(fan_in, fan_out, bias=bias, device=device, weight_init=draw,
                         bias_init=init.zeros)

    dropout = [nn.Dropout(p)] if p > 0 else []
    arch = model_cfg["arch"]
    if arch == "small":
        layers, channels, side = [], shape[0], shape[1]
        for width in model_cfg["channels"]:
            layers += conv_block(channels, width, model_cfg["kernel_size"], 1)
            layers.append(MaxPool2d(2))
            channels, side = width, side // 2
        if side < 1:
            raise ValueError(f"model.channels: {len(model_cfg['channels'])} pooling stages "
                             f"shrink a {shape[1]}x{shape[2]} image to nothing")
        hidden = model_cfg["hidden"]
        head = [nn.Flatten(), linear(channels * side * side, hidden), nn.ReLU(), *dropout,
                linear(hidden, num_classes)]
        return nn.Sequential(ImageView(shape), *layers, *head)
    if arch == "resnet9":
        return _resnet9(shape, num_classes, conv_block, linear, dropout, ImageView(shape))
    raise ValueError(f"model.arch: unknown convnet architecture {arch!r}; choose small or resnet9")


def _resnet9(shape, num_classes, conv_block, linear, dropout, view):
    """needle's ResNet9 (hw4) with the input's channel count: ConvBN(c,16,7,4), ConvBN(16,32,3,2),
    Residual(2 x ConvBN(32,32,3,1)), ConvBN(32,64,3,2), ConvBN(64,128,3,2),
    Residual(2 x ConvBN(128,128,3,1)), Flatten, Linear(., 128), ReLU, Linear(128, classes)."""
    side = shape[1]
    for kernel, stride in ((7, 4), (3, 2), (3, 2), (3, 2)):
        side = conv_output_side(side, kernel, stride, (kernel - 1) // 2)
    return nn.Sequential(
        view,
        *conv_block(shape[0], 16, 7, 4), *conv_block(16, 32, 3, 2),
        nn.Residual(nn.Sequential(*conv_block(32, 32, 3, 1), *conv_block(32, 32, 3, 1))),
        *conv_block(32, 64, 3, 2), *conv_block(64, 128, 3, 2),
        nn.Residual(nn.Sequential(*conv_block(128, 128, 3, 1), *conv_block(128, 128, 3, 1))),
        nn.Flatten(), linear(128 * side * side, 128), nn.ReLU(), *dropout,
        linear(128, num_classes))


class ImageView(nn.Module):
    """(N, C*H*W) -> (N, C, H, W); NCHW input passes through unchanged."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        if tuple(x.shape[1:]) == self.shape:
            return x
        return x.reshape((x.shape[0], *self.shape))

    def extra_repr(self):
        return f"{self.shape}"
