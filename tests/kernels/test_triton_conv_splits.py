"""The cuda device's conv weight gradient with a timed slice count (backend layer, through the
Triton kernels): the fastest candidate runs, decided once per shape, and gives the reference's
gradient.
"""

import numpy as np

from engine.backend import cuda_weight_grad_splits as weight_grad_splits
from tests.backend.test_cuda_weight_grad_splits import fake_timer
from tests.kernels.test_triton_conv import _download, _problem, _upload, reference_grads
from tests.kernels.triton_support import triton_marks

pytestmark = triton_marks()


def test_the_device_computes_the_gradient_with_the_timed_choice(cuda, monkeypatch):
    from engine.backend import cuda_staging
    from kernels_triton import conv

    monkeypatch.setattr(weight_grad_splits, "_timed", {})
    fastest = 4  # not the rule's 2
    # 9 tap tiles on 9 "multiprocessors": 1, 2 and 4 slices; 512 pixels allow up to 4.
    x, _, gy, sizes = _problem((2, 16, 16, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    _, gw_expected = reference_grads(x, np.zeros((3, 3, 4, 4)), gy, (1, 1), (1, 1), (1, 1), 1)
    launched = []
    real = conv.conv2d_backward_weight
    monkeypatch.setattr(conv, "conv2d_backward_weight",
                        lambda *args, **kw: launched.append(kw["splits"]) or real(*args, **kw))
    monkeypatch.setattr(conv, "AUTOTUNE_MIN_WORK", 0)
    monkeypatch.setattr(cuda, "_sm_count", lambda: 9)
    monkeypatch.setattr(cuda_staging, "timer",
                        fake_timer({1: 3.0, 2: 2.0, fastest: 1.0}, launched))
    hx, hgy = _upload(cuda, x), _upload(cuda, gy)
    for calls in (10, 11):  # 3 warm, 2 rounds of 3 timed, the result's; then the result's alone
        gw = cuda.alloc(gw_expected.size)
        cuda.fill(gw, np.nan, gw_expected.size)
        cuda.conv2d_backward_weight(hx, hgy, gw, *sizes)
        assert len(launched) == calls and launched[-1] == fastest
        np.testing.assert_allclose(_download(cuda, gw, gw_expected.shape), gw_expected,
                                   rtol=1e-4, atol=1e-4)
    assert list(weight_grad_splits.timed_splits().values()) == [fastest]
