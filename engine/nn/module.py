"""`Module` and `Parameter`: the base of every layer. Engine layer (nn), above autograd.
Parameters are found by walking attributes in definition order (modules, and lists, tuples and
dicts of them), so that names and order are reproducible; buffers are registered explicitly.
"""

import itertools

import numpy as np

from ..autograd import Tensor

_hook_ids = itertools.count()


class Parameter(Tensor):
    """A tensor that a Module owns as a trainable parameter (needle's marker subclass)."""


def _walk(value, prefix):
    """(dotted name, value) of every Parameter and Module reachable from `value` (lists, tuples and
    dicts included), in definition order; modules are yielded, not entered."""
    if isinstance(value, (Parameter, Module)):
        yield prefix, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{prefix}.{i}" if prefix else str(i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{prefix}.{key}" if prefix else str(key))


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class: `forward` does the work, `__call__` runs it and then the forward hooks.

    Subclasses assign Parameters, Modules (or containers of them) as attributes; buffers (state
    that is saved but not trained, e.g. BatchNorm's running statistics) go through
    `register_buffer`. `training` switches behaviour of Dropout and BatchNorm.
    """

    # Class-level defaults, so that subclasses which skip super().__init__() (common in course
    # code) still work; instances get their own containers on first use.
    training = True
    _buffer_names = ()
    _forward_hooks = None

    def __init__(self):
        self.training = True

    # structure
    def _own_members(self):
        for name, value in vars(self).items():
            if not name.startswith("_"):
                yield from _walk(value, name)

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs of this module and its children, in definition order;
        a parameter shared by two modules is listed once, under its first name."""
        seen = set()
        for name, param in self._named_parameters(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _named_parameters(self, prefix):
        for name, value in self._own_members():
            if isinstance(value, Parameter):
                yield _join(prefix, name), value
            else:
                yield from value._named_parameters(_join(prefix, name))

    def parameters(self):
        return [param for _, param in self.named_parameters()]

    def named_children(self):
        return [(name, value) for name, value in self._own_members() if isinstance(value, Module)]

    def children(self):
        return [module for _, module in self.named_children()]

    def named_modules(self, prefix=""):
        """This module and every descendant, depth first in definition order (iterative)."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            stack.extend(reversed([(_join(name, child_name), child)
                                   for child_name, child in module.named_children()]))

    def modules(self):
        return [module for _, module in self.named_modules()]

    # buffers
    def register_buffer(self, name, tensor):
        """Keep `tensor` as saved, untrained state under attribute `name`."""
        if not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor, got {type(tensor).__name__}")
        if "_buffer_names" not in vars(self):
            self._buffer_names = list(self._buffer_names)
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, tensor)

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name in module._buffer_names:
                yield _join(module_name, name), getattr(module, name)

    # state
    def state_dict(self):
        """Dotted name -> numpy copy of every parameter and buffer."""
        state = {name: param.numpy().copy() for name, param in self.named_parameters()}
        state.update((name, buf.numpy().copy()) for name, buf in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Copy values from `state` (name -> array or Tensor) into parameters and buffers.

        With `strict`, missing and unexpected keys are an error; a shape mismatch always is."""
        targets = {name: ("param", param) for name, param in self.named_parameters()}
        owners = {}
        for module_name, module in self.named_modules():
            for name in module._buffer_names:
                targets[_join(module_name, name)] = ("buffer", getattr(module, name))
                owners[_join(module_name, name)] = (module, name)
        missing = [name for name in targets if name not in state]
        unexpected = [name for name in state if name not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        values = {}
        for name, (_, target) in targets.items():
            if name not in state:
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"load_state_dict: {name!r} has shape {tuple(value.shape)} in the "
                                 f"state but {tuple(target.shape)} in the module")
            values[name] = value
        # Checked everything first, so that a failed load leaves the module untouched.
        for name, value in values.items():
            kind, target = targets[name]
            fresh = Tensor(value, device=target.device, dtype=target.dtype, requires_grad=False)
            if kind == "param":
                target.data = fresh
            else:
                module, attr = owners[name]
                setattr(module, attr, fresh)

    # modes
    def train(self, mode=True):
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def reset_parameters(self):
        """Re-draw the parameters of this module and every child that has its own rule."""
        for child in self.children():
            child.reset_parameters()

    def zero_grad(self):
        for param in self.parameters():
            param.grad = None

    # hooks
    def register_forward_hook(self, hook):
        """Call `hook(module, inputs, output)` after every forward; returns a handle whose
        `remove()` detaches it."""
        if self._forward_hooks is None:
            self._forward_hooks = {}
        hook_id = next(_hook_ids)
        self._forward_hooks[hook_id] = hook
        return _HookHandle(self._forward_hooks, hook_id)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                hook(self, args, output)
        return output

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = self.named_children()
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return head + "\n" + "\n".join(lines) + "\n)"


class _HookHandle:
    def __init__(self, hooks, hook_id):
        self._hooks = hooks
        self._hook_id = hook_id

    def remove(self):
        self._hooks.pop(self._hook_id, None)
