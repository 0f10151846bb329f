"""Fixtures for the whole suite (tests layer): no test reads or writes the cuda device's store of
timed decisions (engine/backend/cuda_timed_store.py), which is on on a GPU machine and shared with
real runs there; the store's own tests enable it in a folder of their own. Each test starts with
none of the launch decisions the Triton launchers keep (small-product plans, conv autotune choices,
direct launches), so a test that patches a launcher's module sees its patch used on a GPU too.
"""

import sys

import pytest

# (module, attribute): the launchers' kept decisions, each a dictionary.
KEPT_LAUNCHES = (("kernels_triton.matmul_plans", "PLANS"), ("kernels_triton.matmul", "_CHOSEN"),
                 ("kernels_triton.conv", "_CHOSEN"), ("kernels_triton.launch", "_LAUNCHES"))


@pytest.fixture(autouse=True)
def no_kept_launches(monkeypatch):
    for name, attribute in KEPT_LAUNCHES:
        module = sys.modules.get(name)  # one a test imports later starts empty anyway
        if module is not None:
            monkeypatch.setattr(module, attribute, {})


@pytest.fixture(autouse=True)
def no_timed_store(monkeypatch):
    from engine.backend import cuda_timed_store

    monkeypatch.setattr(cuda_timed_store, "_place", {})
