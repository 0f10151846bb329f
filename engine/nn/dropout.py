"""`Dropout`: inverted dropout; masks come from the engine's seeded generator. Engine layer (nn)."""

from .. import init
from .module import Module


class Dropout(Module):
    """Training: keep each element with probability 1-p and scale the kept ones by 1/(1-p), so the
    expected output equals the input. Evaluation: identity."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout probability p must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        mask = init.randb(*x.shape, p=1.0 - self.p, device=x.device, dtype=x.dtype)
        return x * (mask / (1.0 - self.p))

    def extra_repr(self):
        return f"p={self.p}"
