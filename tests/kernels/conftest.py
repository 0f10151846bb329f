"""Fixtures shared by the kernel tests: the cuda device module (Triton) and the cpu device's thread
count (C), each restored afterwards. Test support for tests/kernels.
"""

import pytest


@pytest.fixture
def cuda():
    """The device in its default modes, restored after each test: under pytest-xdist a worker runs
    any test after any other, so a precision left at tf32 would fail an IEEE comparison."""
    from engine.backend import cuda_device

    cuda_device.set_matmul_precision("ieee")
    cuda_device.set_operand_staging("auto")
    yield cuda_device
    cuda_device.set_matmul_precision("ieee")
    cuda_device.set_operand_staging("auto")


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    from engine.backend import cpu_device as cpu

    before = cpu.get_num_threads()
    cpu.set_num_threads(request.param)
    yield request.param
    cpu.set_num_threads(before)
