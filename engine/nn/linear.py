"""`Linear`: y = x W + b with needle's layout (weight (in, out), bias (1, out)). Engine layer (nn).
Probes find it through `probe_weight`, the attribute naming the weight they measure.
"""

from .. import init, ops
from .module import Module, Parameter


def _resolve_init(rule, role):
    if rule is None or callable(rule):
        return rule
    if isinstance(rule, str) and callable(getattr(init, rule, None)):
        return getattr(init, rule)
    raise ValueError(f"Linear: {role} must be a callable or the name of an engine.init function, "
                     f"got {rule!r}")


class Linear(Module):
    """Fully connected layer. Default init as in needle: weight kaiming_uniform(in, out), bias
    kaiming_uniform(out, 1) reshaped to (1, out). `weight_init(fan_in, fan_out, device=, dtype=)`
    and `bias_init(out, 1, device=, dtype=)` replace them (e.g. `init.zeros` for a zero bias)."""

    probe_weight = "weight"

    def __init__(self, in_features, out_features, bias=True, device=None, dtype="float32",
                 weight_init=None, bias_init=None):
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError(f"Linear: feature sizes must be positive, got in_features="
                             f"{in_features}, out_features={out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self._weight_init = _resolve_init(weight_init, "weight_init") or init.kaiming_uniform
        self._bias_init = _resolve_init(bias_init, "bias_init") or init.kaiming_uniform
        self._device = device
        self._dtype = dtype
        self.weight = Parameter(self._draw_weight(), requires_grad=True)
        self.bias = Parameter(self._draw_bias(), requires_grad=True) if bias else None

    def _draw_weight(self):
        weight = self._weight_init(self.in_features, self.out_features, device=self._device,
                                   dtype=self._dtype)
        if tuple(weight.shape) != (self.in_features, self.out_features):
            raise ValueError(f"Linear: weight_init returned shape {tuple(weight.shape)}, expected "
                             f"{(self.in_features, self.out_features)}")
        return weight

    def _draw_bias(self):
        bias = self._bias_init(self.out_features, 1, device=self._device, dtype=self._dtype)
        return bias.reshape((1, self.out_features))

    def reset_parameters(self):
        self.weight.data = self._draw_weight()
        if self.bias is not None:
            self.bias.data = self._draw_bias()

    def forward(self, X, relu=False, dropout=None):
        """With `relu`, the ReLU after the layer runs in its kernel, and with `dropout` ((p, seed))
        the dropout after that (nn.Sequential asks)."""
        shape = X.shape
        if shape[-1] != self.in_features:
            raise ValueError(f"Linear expects input width {self.in_features}, got input of shape "
                             f"{tuple(shape)}")
        # One kernel for the product and the bias (ops.linear); leading axes fold into the rows.
        if len(shape) == 2:
            return ops.linear(X, self.weight, self.bias, relu, dropout)
        out = ops.linear(X.reshape((-1, self.in_features)), self.weight, self.bias, relu, dropout)
        return out.reshape(tuple(shape[:-1]) + (self.out_features,))

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"
