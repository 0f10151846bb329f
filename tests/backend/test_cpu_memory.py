"""The cpu device's allocator settings (engine/backend/cpu_memory.py): set on glibc, left alone
where the user chose them, and what they buy: a training step that no longer faults its buffers'
pages in again. Tests of the backend layer.
"""

import resource

import numpy as np
import pytest

import engine as ndl
from engine import nn, optim
from engine.backend import cpu_memory


@pytest.mark.parametrize("variable, value", [
    ("MALLOC_TRIM_THRESHOLD_", "131072"), ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")])
def test_a_users_own_setting_is_left_alone(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert cpu_memory.keep_freed_memory() is False


@pytest.fixture
def kept_memory(monkeypatch):
    """This process's allocator set to keep freed memory (skips where there is no glibc)."""
    for variable in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(variable, raising=False)
    if not cpu_memory.keep_freed_memory():
        pytest.skip("not glibc on Linux")


def test_training_steps_reuse_freed_memory(kept_memory):
    device = ndl.cpu()
    layers = [nn.Linear(784, 100, device=device)]
    for _ in range(20):
        layers += [nn.ReLU(), nn.Linear(100, 100, device=device)]
    model = nn.Sequential(*layers)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.standard_normal((100, 784)), device=device, requires_grad=False)
    y = ndl.Tensor(rng.integers(0, 10, 100).astype(np.float32), device=device,
                   requires_grad=False)

    def steps(count):
        for _ in range(count):
            optimizer.zero_grad()
            nn.SoftmaxLoss()(model(x), y).backward()
            optimizer.step()

    steps(5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    steps(10)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    # Each step allocates about 1.5 MB of buffers (~370 pages); glibc's defaults fault most of
    # them in again every step, reused memory almost none.
    assert faults < 100, f"{faults} page faults per step"


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_release_hands_kept_memory_back(kept_memory):
    # 48 MiB in 1 MiB blocks, all from the heap (under the mmap threshold) and under the trim
    # threshold once freed: kept by the process until released.
    blocks = [np.ones(1 << 18, np.float32) for _ in range(48)]
    held = _resident_bytes()
    del blocks
    kept = _resident_bytes()
    assert ndl.release_freed_memory() is True
    released = _resident_bytes()
    assert kept - released > 32 << 20, (held, kept, released)
