"""Fixtures shared by the kernel tests: the cuda device module (Triton) and the cpu device's thread
count (C), each restored afterwards. Test support for tests/kernels.
"""

import pytest


@pytest.fixture(scope="module")
def cuda():
    from engine.backend import cuda_device

    return cuda_device


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    from engine.backend import cpu_device as cpu

    before = cpu.get_num_threads()
    cpu.set_num_threads(request.param)
    yield request.param
    cpu.set_num_threads(before)
