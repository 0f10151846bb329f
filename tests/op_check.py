"""check_op: one line of test per op. Forward against a numpy formula, backward against central
differences (float64 on cpu_numpy, random cotangent), and every other device against cpu_numpy.
Test support.
"""

import numpy as np

import engine as ndl
from engine.autograd import Tensor

REFERENCE = ndl.cpu_numpy()
VIEWS = ("compact", "permuted", "sliced", "broadcast")


def _make_view(data, view, device, dtype):
    """A leaf Tensor holding `data`, stored so that its NDArray is the requested kind of view."""
    if view == "compact":
        array = ndl.NDArray(data, device=device, dtype=dtype)
    elif view == "permuted":
        # Store the reversed-axes array and permute back: a non-compact view with the same values.
        axes = tuple(reversed(range(data.ndim)))
        array = ndl.NDArray(np.transpose(data, axes), device=device, dtype=dtype).permute(axes)
    elif view == "sliced":
        padded = np.zeros(tuple(2 * n + 1 for n in data.shape))
        padded[tuple(slice(1, 2 * n + 1, 2) for n in data.shape)] = data
        array = ndl.NDArray(padded, device=device, dtype=dtype)[
            tuple(slice(1, 2 * n + 1, 2) for n in data.shape)]
    elif view == "broadcast":
        # Broadcast a size-1 leading axis up to the data: valid only when rows repeat.
        row = data.reshape((1,) + data.shape)[:, ...] if data.ndim == 0 else data[:1]
        array = ndl.NDArray(row, device=device, dtype=dtype).broadcast_to(data.shape)
    else:
        raise ValueError(f"unknown view {view!r}; choose from {VIEWS}")
    return Tensor.make_const(array, requires_grad=True)


def _inputs_for(shapes, rng, positive, view):
    datas = []
    for shape in shapes:
        data = np.array(rng.standard_normal(shape), dtype=np.float64)
        if positive:
            data = np.abs(data) + 0.5
        if view == "broadcast" and data.ndim:
            data = np.broadcast_to(data[:1], data.shape).copy()
        datas.append(np.array(data, dtype=np.float64))  # 0-d ops return scalars: keep arrays
    return datas


def _run(fn, datas, device, dtype, cotangent, view):
    tensors = [_make_view(d, view, device, dtype) for d in datas]
    out = fn(*tensors)
    if cotangent is None:
        return out.numpy(), None
    out.backward(Tensor(cotangent, device=device, dtype=dtype, requires_grad=False))
    grads = [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in tensors]
    return out.numpy(), grads


def numerical_gradients(fn, datas, cotangent, eps=1e-6):
    """Central differences of <fn(x), cotangent> in float64 on the reference device."""
    grads = []
    for data in datas:
        grad = np.zeros_like(data)
        flat = data.reshape(-1)
        for j in range(flat.size):
            saved = flat[j]
            values = []
            for delta in (eps, -eps):
                flat[j] = saved + delta
                tensors = [Tensor(d, device=REFERENCE, dtype="float64", requires_grad=False)
                           for d in datas]
                values.append(float((fn(*tensors).numpy() * cotangent).sum()))
            flat[j] = saved
            grad.reshape(-1)[j] = (values[0] - values[1]) / (2 * eps)
        grads.append(grad)
    return grads


def check_op(fn, reference, *shapes, device=REFERENCE, view="compact", positive=False,
             grad=True, atol=1e-4, rtol=1e-4, seed=0):
    """Check `fn` (engine Tensors -> Tensor) against `reference` (numpy arrays -> array): forward
    on `device` and cpu_numpy, backward against central differences and across devices."""
    rng = np.random.default_rng(seed)
    datas = _inputs_for(shapes, rng, positive, view)
    expected = reference(*[d.copy() for d in datas])
    cotangent = rng.standard_normal(np.shape(expected)) if grad else None

    ref_out, ref_grads = _run(fn, datas, REFERENCE, "float64", cotangent, view)
    np.testing.assert_allclose(ref_out, expected, rtol=1e-9, atol=1e-9,
                               err_msg="cpu_numpy forward differs from the numpy formula")
    if grad:
        numeric = numerical_gradients(fn, [d.copy() for d in datas], cotangent)
        for k, (got, want) in enumerate(zip(ref_grads, numeric)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                                       err_msg=f"gradient of input {k} vs central differences")
    if device != REFERENCE:
        out, grads = _run(fn, datas, device, "float32", cotangent, view)
        np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol,
                                   err_msg=f"forward on {device.name} vs cpu_numpy")
        for k, (got, want) in enumerate(zip(grads or [], ref_grads or [])):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {k} on {device.name}")
