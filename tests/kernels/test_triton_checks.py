"""The Triton launchers' argument checks (kernels_triton/common.py) that no kernel test reaches on
its own: an optimizer's one loop over every buffer names the first bad one as the per-buffer
check would. Kernel-layer tests; no kernel runs.
"""

import pytest

torch = pytest.importorskip("torch")


def test_check_buffers_names_the_first_bad_buffer():
    from kernels_triton.common import check_buffers

    good = [torch.zeros(4), torch.zeros(6)]
    check_buffers("ws", good, [4, 6])
    with pytest.raises(ValueError, match=r"ws\[1\]: buffer holds 6 elements, 7 needed"):
        check_buffers("ws", good, [4, 7])
    with pytest.raises(TypeError, match=r"gs\[0\]: expected a contiguous 1-D float32 buffer"):
        check_buffers("gs", [torch.zeros(4, dtype=torch.float64), good[1]], [4, 6])
    with pytest.raises(TypeError, match=r"us\[1\]: expected a contiguous 1-D float32"):
        check_buffers("us", [good[0], torch.zeros(12)[::2]], [4, 6])
    with pytest.raises(ValueError, match=r"us\[0\]: negative size -1"):
        check_buffers("us", good, [-1, 6])
