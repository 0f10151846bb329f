"""Fixtures for the whole suite (tests layer): no test reads or writes the cuda device's store of
timed decisions (engine/backend/cuda_timed_store.py), which is on on a GPU machine and shared with
real runs there; the store's own tests enable it in a folder of their own.
"""

import pytest


@pytest.fixture(autouse=True)
def no_timed_store(monkeypatch):
    from engine.backend import cuda_timed_store

    monkeypatch.setattr(cuda_timed_store, "_place", {})
