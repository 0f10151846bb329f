"""Optimizers (SGD with the lectures' momentum variants, Adam) with each update rule written out.
Engine layer, above autograd. Updates run on the parameters' NDArrays, so no graph is built or
kept alive, and `.grad` is only read, never modified. Every `x + c * y` is one fused kernel
(`NDArray.add_scaled`) and every moving average `a x + b y` another (`NDArray.axpby`), where
NDArray arithmetic would launch two or three.
"""

import math

from .autograd import Tensor


def _check_hyper(name, value, low, high=None, open_high=False):
    value = float(value)
    too_high = high is not None and (value >= high if open_high else value > high)
    if value < low or too_high:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"{name} must lie in {bound if high is not None else f'>= {low}'}, "
                         f"got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters and a per-parameter state dict created on first use."""

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for i, param in enumerate(self.params):
            if not isinstance(param, Tensor):
                raise TypeError(f"parameter {i} is a {type(param).__name__}, not a Tensor")
        self.state = {}

    def _state(self, index):
        return self.state.setdefault(index, {})

    def _gradients(self):
        """(index, parameter, weight NDArray, gradient NDArray) of params that have a gradient."""
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad.realize_cached_data()
            weight = param.realize_cached_data()
            if grad.shape != weight.shape:
                raise ValueError(f"parameter {i}: gradient shape {grad.shape} != weight shape "
                                 f"{weight.shape}")
            yield i, param, weight, grad

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
    - bias_correction=True:    s_t = u_t / (1 - b^t)   (the "unbiased" momentum; assumes d = b)
    - nesterov=True:           the gradient is taken at the look-ahead point. The model holds
      the look-ahead parameters phi_t = theta_t - lr * s_t, so g = grad f(phi_t) is what backward
      gives, and theta_{t+1} = theta_t - lr * s_{t+1} becomes
      phi_{t+1} = phi_t + lr * s_t - 2 * lr * s_{t+1}   (s_0 = 0; after training, the parameters
      are the last look-ahead point).

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

    def step(self):
        lr, b = self.lr, self.momentum
        for i, param, w, g in self._gradients():
            if self.weight_decay:
                g = g.add_scaled(w, self.weight_decay)
            if b == 0.0:
                param.cached_data = w.add_scaled(g, -lr)
                continue
            state = self._state(i)
            t = state.get("step", 0) + 1
            state["step"] = t
            u = state.get("u")
            u = g * (1.0 - self.dampening) if u is None else u.axpby(b, g, 1.0 - self.dampening)
            state["u"] = u
            correction = 1.0 - b ** t if self.bias_correction else 1.0
            if not self.nesterov:
                # The bias correction folds into the step's scale: one kernel, not two.
                param.cached_data = w.add_scaled(u, -lr / correction)
                continue
            s = u / correction if self.bias_correction else u
            previous = state.get("s")
            lookahead_shift = s * (2.0 * lr) if previous is None else \
                s.axpby(2.0 * lr, previous, -lr)
            state["s"] = s
            param.cached_data = w - lookahead_shift


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

    def step(self):
        b1, b2 = self.beta1, self.beta2
        for i, param, w, g in self._gradients():
            if self.weight_decay:
                g = g.add_scaled(w, self.weight_decay)
            state = self._state(i)
            t = state.get("step", 0) + 1
            state["step"] = t
            m = state.get("m")
            v = state.get("v")
            m = g * (1.0 - b1) if m is None else m.axpby(b1, g, 1.0 - b1)
            v = (g * g) * (1.0 - b2) if v is None else v.axpby(b2, g * g, 1.0 - b2)
            state["m"], state["v"] = m, v
            # m^ / (sqrt(v^) + eps) = (sqrt(c2) / c1) * m / (sqrt(v) + eps sqrt(c2)) with the
            # corrections c = 1 - beta^t folded into two scalars: 4 kernels instead of 6.
            c1, c2 = (1.0 - b1 ** t, 1.0 - b2 ** t) if self.bias_correction else (1.0, 1.0)
            root_c2 = math.sqrt(c2)
            ratio = m / (v.sqrt() + self.eps * root_c2)
            param.cached_data = w.add_scaled(ratio, -self.lr * root_c2 / c1)
