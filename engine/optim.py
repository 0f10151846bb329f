"""Optimizers (SGD with the lectures' momentum variants, Adam) with each update rule written out.
Engine layer, above autograd. A step updates every parameter in place with one device call
(`engine/backend/parameter_update.py`, one kernel on a GPU for the whole model), so no graph is
built or kept alive, and `.grad` is only read, never modified.
"""

import math

from .autograd import Tensor, mark_changed_in_place
from .backend import parameter_update


def _check_hyper(name, value, low, high=None, open_high=False):
    value = float(value)
    too_high = high is not None and (value >= high if open_high else value > high)
    if value < low or too_high:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"{name} must lie in {bound if high is not None else f'>= {low}'}, "
                         f"got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters and a per-parameter state dict created on first use.

    Updates are in place, as in PyTorch: a parameter's array keeps its identity, so a Tensor
    sharing it (`param.data`) sees the new values; a graph built before a step and
    differentiated after it raises in backward instead of mixing old and new values. A parameter
    whose array is a view, or shares its buffer with an earlier parameter's, gets a copy of its
    own first. A step checks every parameter before it changes any, so a step that raises leaves
    them all as they were."""

    # Names of the per-parameter state arrays a subclass's update keeps (zeros at first).
    state_arrays = ()

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        seen = {}
        for i, param in enumerate(self.params):
            if not isinstance(param, Tensor):
                raise TypeError(f"parameter {i} is a {type(param).__name__}, not a Tensor")
            if id(param) in seen:
                raise ValueError(f"parameter {i} is parameter {seen[id(param)]} listed again")
            seen[id(param)] = i
        self.state = {}

    def _state(self, index):
        return self.state.setdefault(index, {})

    def _step_count_matters(self):
        """Whether the update depends on each parameter's step count (bias corrections)."""
        return True

    def _checked(self):
        """(index, param, weight, grad) of the parameters that have a gradient, after checking
        everything a step could trip on, so that no error comes after the first change."""
        checked = []
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad.realize_cached_data()
            weight = param.realize_cached_data()
            if grad.shape != weight.shape:
                raise ValueError(f"parameter {i}: gradient shape {grad.shape} != weight shape "
                                 f"{weight.shape}")
            if grad.device != weight.device:
                raise ValueError(f"parameter {i}: gradient on {grad.device}, weight on "
                                 f"{weight.device}")
            for name, array in self.state.get(i, {}).items():
                if name in self.state_arrays and (array.device, array.dtype, array.shape) != (
                        weight.device, weight.dtype, weight.shape):
                    raise ValueError(
                        f"parameter {i}: its optimizer state {name!r} is {array.dtype} "
                        f"{array.shape} on {array.device}, the weight {weight.dtype} "
                        f"{weight.shape} on {weight.device} (the weight was replaced since the "
                        f"last step; make a new optimizer)")
            checked.append((i, param, weight, grad))
        return checked

    def _update_groups(self):
        """The parameters that have a gradient, counting this step, grouped for one device call
        each: {(device, dtype, step count or None): [(index, weight, grad, state arrays)]}. A
        step count is per parameter (one without a gradient skips a step)."""
        checked = self._checked()
        weights = {id(weight.handle) for _, _, weight, _ in checked}
        groups, owned, changed = {}, set(), []
        for i, param, weight, grad in checked:
            if not weight.is_compact() or id(weight.handle) in owned:
                weight = param.cached_data = weight.copy()
            owned.add(id(weight.handle))
            # Weights change in place: a gradient reading another weight's buffer must not see
            # that weight's update.
            if id(grad.handle) in weights and grad.handle is not weight.handle:
                grad = grad.copy()
            grad = grad.astype(weight.dtype).compact()
            changed.append(param)
            state = self._state(i)
            state["step"] = state.get("step", 0) + 1
            arrays = [self._buffer(i, name, weight) for name in self.state_arrays]
            key = (weight.device, weight.dtype,
                   state["step"] if self._step_count_matters() else None)
            groups.setdefault(key, []).append((i, weight, grad, arrays))
        # A graph built before this step and differentiated after it would read the new weights.
        mark_changed_in_place(changed)
        return groups

    def _buffer(self, index, name, weight):
        """The state array `name` of parameter `index`, zeros of the weight's shape at first."""
        state = self._state(index)
        if name not in state:
            state[name] = weight.device.full(weight.shape, 0.0, weight.dtype)
        return state[name]

    def step(self):
        raise TypeError(f"{type(self).__name__} does not define step (an Optimizer subclass must)")

    def zero_grad(self):
        for param in self.params:
            param.grad = None

    reset_grad = zero_grad  # needle's name


class SGD(Optimizer):
    """Stochastic gradient descent, the lectures' variants. With g = grad + weight_decay * w
    (weight decay as L2 added to the gradient), t = 1, 2, ... the step count, u_0 = 0, and
    d = dampening (defaults to momentum, giving the lectures' exponential average):

    - plain (momentum = 0):    w <- w - lr * g   (so w <- (1 - lr * wd) w - lr * grad)
    - momentum b:              u_t = b u_{t-1} + (1 - d) g,      w <- w - lr * s_t,  s_t = u_t
    - bias_correction=True:    s_t = u_t / c_t, c_t = 1 - b^t  (the "unbiased" momentum; assumes
      d = b)
    - nesterov=True:           the gradient is taken at the look-ahead point. The model holds
      the look-ahead parameters phi_t = theta_t - lr * s_t, so g = grad f(phi_t) is what backward
      gives, and theta_{t+1} = theta_t - lr * s_{t+1} becomes
      phi_{t+1} = phi_t - 2 lr s_{t+1} + lr s_t   (s_0 = 0; after training, the parameters
      are the last look-ahead point). With s = u / c that is
      phi_{t+1} = phi_t - (2 lr / c_{t+1}) u_{t+1} + (lr / c_t) u_t, so only u is kept.

    Note: dampening=0 and no bias correction is PyTorch's momentum (u_1 = g).
    """

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False,
                 dampening=None, bias_correction=False):
        super().__init__(params)
        self.lr = _check_hyper("lr", lr, 0.0)
        self.momentum = _check_hyper("momentum", momentum, 0.0, 1.0, open_high=True)
        self.weight_decay = _check_hyper("weight_decay", weight_decay, 0.0)
        self.dampening = self.momentum if dampening is None else _check_hyper(
            "dampening", dampening, 0.0, 1.0)
        if (nesterov or bias_correction) and self.momentum == 0.0:
            raise ValueError("nesterov and bias_correction need momentum > 0")
        self.nesterov = bool(nesterov)
        self.bias_correction = bool(bias_correction)
        self.state_arrays = ("u",) if self.momentum else ()

    def _correction(self, t):
        return 1.0 - self.momentum ** t if self.bias_correction else 1.0

    def _step_count_matters(self):
        return self.bias_correction or self.nesterov

    def step(self):
        lr, b = self.lr, self.momentum
        for (_, _, t), entries in self._update_groups().items():
            weights = [weight for _, weight, _, _ in entries]
            grads = [grad for _, _, grad, _ in entries]
            if b == 0.0:
                parameter_update.sgd_update(weights, grads, None, self.weight_decay, 0.0, 1.0,
                                            lr, 0.0)
                continue
            momenta = [arrays[0] for _, _, _, arrays in entries]
            # The bias correction folds into the step's scale (t is None when nothing uses it).
            step, lookback = (lr / self._correction(t) if self.bias_correction else lr), 0.0
            if self.nesterov:
                step = 2.0 * step
                lookback = lr / self._correction(t - 1) if t > 1 else 0.0
            parameter_update.sgd_update(weights, grads, momenta, self.weight_decay, b,
                                        1.0 - self.dampening, step, lookback)


class Adam(Optimizer):
    """Adam. With g = grad + weight_decay * w, t = 1, 2, ..., m_0 = v_0 = 0:

        m_t = beta1 m_{t-1} + (1 - beta1) g
        v_t = beta2 v_{t-1} + (1 - beta2) g^2
        m^ = m_t / (1 - beta1^t),  v^ = v_t / (1 - beta2^t)   (m^ = m_t, v^ = v_t without
                                                             bias_correction)
        w <- w - lr * m^ / (sqrt(v^) + eps)
    """

    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 bias_correction=True):
        super().__init__(params)
        self.lr = _check_hyper("lr", lr, 0.0)
        self.beta1 = _check_hyper("beta1", beta1, 0.0, 1.0, open_high=True)
        self.beta2 = _check_hyper("beta2", beta2, 0.0, 1.0, open_high=True)
        self.eps = _check_hyper("eps", eps, 0.0)
        self.weight_decay = _check_hyper("weight_decay", weight_decay, 0.0)
        self.bias_correction = bool(bias_correction)

    state_arrays = ("m", "v")

    def _step_count_matters(self):
        return self.bias_correction

    def step(self):
        b1, b2 = self.beta1, self.beta2
        for (_, _, t), entries in self._update_groups().items():
            # m^ / (sqrt(v^) + eps) = (sqrt(c2) / c1) * m / (sqrt(v) + eps sqrt(c2)) with the
            # corrections c = 1 - beta^t folded into the step and eps.
            c1, c2 = (1.0 - b1 ** t, 1.0 - b2 ** t) if self.bias_correction else (1.0, 1.0)
            root_c2 = math.sqrt(c2)
            parameter_update.adam_update(
                [weight for _, weight, _, _ in entries], [grad for _, _, grad, _ in entries],
                [arrays[0] for _, _, _, arrays in entries],
                [arrays[1] for _, _, _, arrays in entries],
                self.weight_decay, b1, 1.0 - b1, b2, 1.0 - b2, self.eps * root_c2,
                self.lr * root_c2 / c1)
