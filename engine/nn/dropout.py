"""`Dropout`: inverted dropout; each mask is drawn on the device from a seed that the engine's
seeded generator gives (one draw per call), so a run's seed fixes every mask. Engine layer (nn).
"""

from .. import ops
from .. import random as _random
from .module import Module


class Dropout(Module):
    """Training: keep each element with probability 1-p and scale the kept ones by 1/(1-p), so the
    expected output equals the input. Evaluation: identity. One kernel each way
    (ops.dropout), with the same mask on every device for a given seed."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout probability p must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, self.draw_seed())

    def draw_seed(self):
        """This call's mask seed, from the engine's generator (nn.Sequential draws it the same way
        when the layer before runs the dropout in its own kernel)."""
        return int(_random.generator().integers(0, 2**32))

    def extra_repr(self):
        return f"p={self.p}"
