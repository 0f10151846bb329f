"""Optimizer updates over lists of NDArrays (backend layer): the NDArray face of the protocol's
sgd_update and adam_update, one device call for a whole list of parameters, in place.
engine/optim.py groups a model's parameters and computes the update's numbers.
"""


def _weight_handles(weights):
    """The weights' handles: compact arrays of one device and dtype."""
    first = weights[0]
    for index, weight in enumerate(weights):
        if (weight.device, weight.dtype) != (first.device, first.dtype):
            raise ValueError(f"weights[{index}] is {weight.dtype} on {weight.device}, weights[0] "
                             f"{first.dtype} on {first.device}: one update takes one of each")
        if not weight.is_compact():
            raise ValueError(f"weights[{index}] is a strided view; updates need compact arrays")
    return [weight.handle for weight in weights]


def _handles(name, arrays, like):
    """The handles of `arrays`, each compact and matching the weight in `like` at its position
    in device, dtype and shape."""
    if len(arrays) != len(like):
        raise ValueError(f"{name}: {len(arrays)} arrays for {len(like)} weights")
    for index, (array, weight) in enumerate(zip(arrays, like)):
        if (array.device, array.dtype, array.shape) != (weight.device, weight.dtype, weight.shape):
            raise ValueError(f"{name}[{index}] is {array.dtype} {array.shape} on {array.device}, "
                             f"its weight {weight.dtype} {weight.shape} on {weight.device}")
        if not array.is_compact():
            raise ValueError(f"{name}[{index}] is a strided view; updates need compact arrays")
    return [array.handle for array in arrays]


def sgd_update(weights, grads, momenta, weight_decay, keep, take, step, lookback):
    """The protocol's sgd_update on `weights` (compact NDArrays of one device and dtype, each
    owning its buffer) with their `grads` and `momenta` (None: no momentum), in place."""
    if not weights:
        return
    weights[0].device.sgd_update(
        _weight_handles(weights), _handles("grads", grads, weights),
        None if momenta is None else _handles("momenta", momenta, weights),
        [weight.size for weight in weights], weight_decay, keep, take, step, lookback)


def adam_update(weights, grads, firsts, seconds, weight_decay, keep1, take1, keep2, take2, eps,
                step):
    """The protocol's adam_update on `weights` with their `grads` and moment estimates, in
    place."""
    if not weights:
        return
    weights[0].device.adam_update(
        _weight_handles(weights), _handles("grads", grads, weights),
        _handles("firsts", firsts, weights), _handles("seconds", seconds, weights),
        [weight.size for weight in weights], weight_decay, keep1, take1, keep2, take2, eps, step)
