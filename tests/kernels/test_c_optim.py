"""C optimizer updates (kernels_c/optim.c): the same bits for any thread count, with the threads'
shares cutting through parameters; nothing outside each parameter written; the status codes for
bad lists, called through ctypes directly. Kernel layer tests.
"""

import ctypes

import numpy as np
import pytest

from engine.backend import cpu_device as cpu
from engine.backend import numpy_device as spec
from kernels_c import load

# Many sizes around the per-thread shares of 2, 3 and 5 threads, the total past both grains.
SIZES = [70_001, 0, 1, 13, 40_000, 7, 0, 100_003]
SGD_SCALARS = (0.01, 0.9, 0.1, 0.05, 0.02)
ADAM_SCALARS = (0.01, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.003)


def _host(count, seed):
    rng = np.random.default_rng(seed)
    return [[np.abs(rng.standard_normal(n)).astype(np.float32) for n in SIZES]
            for _ in range(count)]


def _run(name, host, threads):
    """Each list's arrays after the update with `threads` threads, each in a buffer two elements
    longer whose tail must stay 7."""
    before = cpu.get_num_threads()
    cpu.set_num_threads(threads)
    try:
        lists = []
        for arrays in host:
            handles = []
            for a in arrays:
                handle = cpu.alloc(a.size + 2)
                np.asarray(handle)[:] = np.concatenate([a, [7.0, 7.0]])
                handles.append(handle)
            lists.append(handles)
        getattr(cpu, name)(*lists, SIZES, *(SGD_SCALARS if name == "sgd_update" else
                                            ADAM_SCALARS))
    finally:
        cpu.set_num_threads(before)
    for handles in lists:
        for handle, n in zip(handles, SIZES):
            np.testing.assert_array_equal(np.asarray(handle)[n:], [7.0, 7.0])
    return [[np.asarray(h)[:n].copy() for h, n in zip(handles, SIZES)] for handles in lists]


@pytest.mark.parametrize("name, count", [("sgd_update", 3), ("adam_update", 4)])
def test_any_thread_count_gives_the_same_bits(name, count):
    host = _host(count, 1)
    one = _run(name, host, 1)
    for threads in (2, 3, 5):
        for got_list, want_list in zip(_run(name, host, threads), one, strict=True):
            for got, want in zip(got_list, want_list, strict=True):
                np.testing.assert_array_equal(got, want, err_msg=f"{name}, {threads} threads")
    spec_lists = [[a.copy() for a in arrays] for arrays in host]
    getattr(spec, name)(*spec_lists, SIZES, *(SGD_SCALARS if name == "sgd_update" else
                                              ADAM_SCALARS))
    for got, want in zip(one[0], spec_lists[0]):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def _pointers(*addresses):
    return (ctypes.c_void_p * len(addresses))(*addresses)


def test_status_codes_for_bad_lists():
    library = load()
    a = cpu.alloc(4)
    p = _pointers(a.address)
    sizes = (ctypes.c_int64 * 1)(4)
    sgd = library.nd_sgd_update_f32
    scalars = (0.0, 0.9, 0.1, 0.1, 0.0)
    assert sgd(p, p, p, sizes, 1, *scalars) == 0
    assert sgd(p, p, p, sizes, -1, *scalars) == 2  # ND_ERR_SIZE: a negative count
    assert sgd(p, p, p, (ctypes.c_int64 * 1)(-3), 1, *scalars) == 2  # a negative size
    huge = (ctypes.c_int64 * 2)(2**62, 2**62)
    assert sgd(_pointers(a.address, a.address), _pointers(a.address, a.address), None, huge, 2,
               *scalars) == 2  # sizes whose total overflows int64
    assert sgd(None, p, p, sizes, 1, *scalars) == 4  # ND_ERR_NULL: no weight list
    assert sgd(p, p, p, None, 1, *scalars) == 4  # no sizes
    assert sgd(p, _pointers(None), p, sizes, 1, *scalars) == 4  # a missing gradient buffer
    assert sgd(p, p, _pointers(None), sizes, 1, *scalars) == 4  # a missing momentum buffer
    assert sgd(p, p, None, sizes, 1, *scalars) == 0  # no momentum list: plain SGD
    # A parameter of no elements may have no buffers, and an empty list no arrays.
    assert sgd(_pointers(None), _pointers(None), None, (ctypes.c_int64 * 1)(0), 1, *scalars) == 0
    assert sgd(None, None, None, None, 0, *scalars) == 0
    adam = library.nd_adam_update_f32
    adam_scalars = (0.0, 0.9, 0.1, 0.9, 0.1, 1e-8, 0.1)
    assert adam(p, p, p, p, sizes, 1, *adam_scalars) == 0
    assert adam(p, p, p, None, sizes, 1, *adam_scalars) == 4  # Adam's state is required
    assert adam(p, p, _pointers(None), p, sizes, 1, *adam_scalars) == 4
