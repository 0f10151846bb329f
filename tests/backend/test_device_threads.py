"""engine.set_num_threads reaches every device: the cpu device's kernels at once, and a device whose
module loads later (the cuda device, which compiles autotune candidates on those threads) as it
loads. Backend-layer tests.
"""

import pytest

import engine
from engine.backend import device as device_registry


@pytest.fixture
def restored(monkeypatch):
    """Puts back the cpu device's threads and the recorded request after the test."""
    monkeypatch.setitem(device_registry._REQUESTED_THREADS, "n", None)
    before = engine.cpu().get_num_threads()
    yield
    engine.cpu().set_num_threads(before)


def test_the_cpu_device_takes_the_count_at_once(restored):
    engine.set_num_threads(1)
    assert engine.get_num_threads() == 1 == engine.cpu().get_num_threads()
    with pytest.raises(ValueError, match="n >= 1, got 0"):
        engine.set_num_threads(0)


def test_a_device_loaded_later_gets_the_count(restored, monkeypatch):
    compile_ahead = pytest.importorskip("kernels_triton.compile_ahead")
    monkeypatch.setitem(compile_ahead._THREADS, "n", None)
    engine.set_num_threads(3)
    late = device_registry.BackendDevice("late_cuda", "engine.backend.cuda_device", ("float32",))
    assert late._module is None
    late.module  # noqa: B018 (loading is what is tested)
    assert compile_ahead.compile_threads() == 3 == late.get_num_threads()


def test_a_loaded_cuda_device_is_set_at_once(restored, monkeypatch):
    compile_ahead = pytest.importorskip("kernels_triton.compile_ahead")
    monkeypatch.setitem(compile_ahead._THREADS, "n", None)
    engine.cuda().module  # noqa: B018
    engine.set_num_threads(2)
    assert engine.cuda().get_num_threads() == 2 == compile_ahead.compile_threads()
