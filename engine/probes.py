"""Per-layer probes: for every weight layer of any model (Linear; Conv once it opts in), the norms
the init/normalization experiments plot, recorded through forward hooks without touching model
code. Engine layer, above nn.

A layer is probed when its class is registered with `register_probed_type` or it carries a
`probe_weight` attribute naming its weight. Its "nonlinearity" is the next module, in definition
order, marked `is_activation` (ReLU, Tanh, Sigmoid) before the next probed layer; a layer with none
(the output layer) reports its pre-activation norm as post-activation (identity).
"""

import math

import numpy as np

from . import random as _random
from .autograd import Tensor, enable_grad

_PROBED_TYPES = {}


def _values(buffer):
    """A copy of a Tensor buffer's values (None for anything else)."""
    return buffer.realize_cached_data().copy() if isinstance(buffer, Tensor) else None


def register_probed_type(cls, weight_attr="weight"):
    """Probe every instance of `cls` through its weight attribute `weight_attr`."""
    _PROBED_TYPES[cls] = weight_attr


def probed_weight_attr(module):
    for cls, attr in _PROBED_TYPES.items():
        if isinstance(module, cls):
            return attr
    return getattr(module, "probe_weight", None)


def fan_in_of(weight_shape):
    """Inputs feeding one output unit: `in` of an (in, out) weight, k*k*c_in of a conv weight."""
    return int(math.prod(weight_shape[:-1]))


class _ProbedLayer:
    def __init__(self, name, module, weight_attr, activation_name, activation):
        self.name = name
        self.module = module
        self.weight_attr = weight_attr
        self.activation_name = activation_name
        self.activation = activation
        self.initial_weight = self.weight().numpy().astype(np.float64)

    def weight(self):
        return getattr(self.module, self.weight_attr)


class LayerProbe:
    """Attach to `model`; call `snapshot(step, x, y, loss_fn)` at initialization and at chosen
    steps. The snapshot runs one extra forward and backward on the batch and then restores
    everything it touched (gradients, the engine's random state, buffers such as BatchNorm's
    running statistics), so a run with probes trains exactly like one without."""

    def __init__(self, model):
        self.model = model
        self.layers = []
        self._recording = False
        self._squares = {}
        modules = list(model.named_modules())
        for index, (name, module) in enumerate(modules):
            weight_attr = probed_weight_attr(module)
            if weight_attr is None:
                continue
            activation_name, activation = None, None
            for later_name, later in modules[index + 1:]:
                if probed_weight_attr(later) is not None:
                    break
                if getattr(later, "is_activation", False):
                    activation_name, activation = later_name, later
                    break
            self.layers.append(_ProbedLayer(name or type(module).__name__, module, weight_attr,
                                            activation_name, activation))
        if not self.layers:
            raise ValueError(f"LayerProbe: {type(model).__name__} has no probed layers (Linear, "
                             "or modules with a `probe_weight` attribute)")
        self._handles = []

    def _attach(self):
        """Hook the probed layers for one snapshot. Only then: a hooked layer runs apart from
        its ReLU (one kernel otherwise, see nn.Sequential), so training steps between snapshots
        keep the fused kernels."""
        for layer in self.layers:
            self._handles.append(layer.module.register_forward_hook(
                self._recorder(("pre", layer.name))))
            if layer.activation is not None:
                self._handles.append(layer.activation.register_forward_hook(
                    self._recorder(("post", layer.name))))

    def _recorder(self, key):
        def hook(module, inputs, output):
            if self._recording:
                values = output.numpy().astype(np.float64)
                # Summed over calls, so a module applied twice counts both outputs.
                self._squares[key] = self._squares.get(key, 0.0) + float(np.sum(values * values))
        return hook

    def close(self):
        """Detach the hooks (a snapshot detaches its own; this is for one that raised)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def weight_stats(self):
        """The statistics that need no forward pass: per layer fan_in, ||W - W0|| / ||W0||,
        fan_in * Var(W)."""
        stats = []
        for layer in self.layers:
            weight = layer.weight().numpy().astype(np.float64)
            fan_in = fan_in_of(weight.shape)
            initial_norm = float(np.linalg.norm(layer.initial_weight))
            change = float(np.linalg.norm(weight - layer.initial_weight))
            stats.append({"name": layer.name, "fan_in": fan_in,
                          "weight_rel_change": change / initial_norm if initial_norm else
                          (0.0 if change == 0.0 else math.inf),
                          "fan_in_var": fan_in * float(weight.var())})
        return stats

    def snapshot(self, step, x_batch, y_batch, loss_fn):
        """{"step", "loss", "layers": [{name, fan_in, activation, pre_act_norm, post_act_norm,
        weight_grad_norm, weight_rel_change, fan_in_var}, ...]} as plain floats."""
        params = self.model.parameters()
        saved_grads = [param.grad for param in params]
        # The buffers and a copy of their values: a layer may update a buffer in place (batch
        # norm's running estimates move inside its forward's kernel).
        saved_buffers = [(module, name, getattr(module, name))
                         for _, module in self.model.named_modules()
                         for name in module._buffer_names]
        saved_values = [_values(buffer) for _, _, buffer in saved_buffers]
        generator = _random.generator()
        saved_rng = generator.bit_generator.state
        self._squares = {}
        self._recording = True
        self._attach()
        try:
            for param in params:
                param.grad = None
            with enable_grad():
                loss = loss_fn(self.model(x_batch), y_batch)
                loss.backward()
            grad_norms = []
            for layer in self.layers:
                grad = layer.weight().grad
                grad_norms.append(float(np.linalg.norm(grad.numpy().astype(np.float64)))
                                  if grad is not None else 0.0)
            loss_value = float(loss.numpy())
        finally:
            self._recording = False
            self.close()
            for param, grad in zip(params, saved_grads, strict=True):
                param.grad = grad
            for (module, name, buffer), values in zip(saved_buffers, saved_values, strict=True):
                setattr(module, name, buffer)
                if values is not None:
                    array = buffer.realize_cached_data()
                    array[tuple(slice(None) for _ in array.shape)] = values
            generator.bit_generator.state = saved_rng
        records = []
        rows = zip(self.layers, self.weight_stats(), grad_norms, strict=True)
        for layer, stats, grad_norm in rows:
            pre = math.sqrt(self._squares.get(("pre", layer.name), 0.0))
            post = math.sqrt(self._squares[("post", layer.name)]) \
                if ("post", layer.name) in self._squares else pre
            records.append({"name": stats["name"], "fan_in": stats["fan_in"],
                            "activation": type(layer.activation).__name__
                            if layer.activation is not None else None,
                            "pre_act_norm": pre, "post_act_norm": post,
                            "weight_grad_norm": grad_norm,
                            "weight_rel_change": stats["weight_rel_change"],
                            "fan_in_var": stats["fan_in_var"]})
        return {"step": int(step), "loss": loss_value, "layers": records}
