"""`BatchNorm2d`: batch normalization of NCHW feature maps, one mean and variance per channel over
(N, H, W). Engine layer (nn); the statistics and running estimates are BatchNorm1d's.
"""

from .norm import BatchNorm1d


class BatchNorm2d(BatchNorm1d):
    """BatchNorm1d applied to the (N*H*W, C) matrix of pixels, as needle does: the same biased
    batch variance, the same running-estimate rule, the same train/eval switch."""

    def forward(self, x, relu=False):
        if len(x.shape) != 4 or x.shape[1] != self.dim:
            raise ValueError(f"BatchNorm2d({self.dim}) expects NCHW input with {self.dim} "
                             f"channels, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        pixels = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
        return super().forward(pixels, relu).reshape((n, h, w, c)).permute((0, 3, 1, 2))
