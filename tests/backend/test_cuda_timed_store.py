"""Timed decisions of the cuda device kept on disk (backend layer): a decision comes back for its
own machine and key only, unreadable, foreign or invalid files and a disabled store give nothing,
the first decision kept stands for every later one, a store that cannot be written is skipped, and
a new process (a fresh memory) takes the stored decision instead of timing, for the weight
gradient's slices and for TF32 staging.
"""

import json
import multiprocessing
import os

import numpy as np
import pytest

from engine.backend import cuda_staging, cuda_weight_grad_splits
from engine.backend import cuda_timed_store as store

MACHINE = ["NVIDIA H100 80GB HBM3", "3.6.0", "13.0"]
LAYER = (32, 16, 16, 64, 64, 3, 3, 1)


@pytest.fixture
def on_disk(tmp_path):
    """The store enabled in a fresh folder, under MACHINE; counts identity lookups."""
    asked = []
    store.enable(str(tmp_path / "timed"), lambda: asked.append(1) or MACHINE)
    return tmp_path / "timed", asked


def anything(value):
    return True


def test_a_decision_comes_back_for_its_key_and_kind(on_disk):
    folder, asked = on_disk
    assert store.settle("splits", (1, 2, "ieee", False), 58, anything) == (58, False)
    assert store.settle("staging", (1, 2, "ieee", False), True, anything) == (True, False)
    assert store.load("splits", (1, 2, "ieee", False), anything) == 58
    assert store.load("staging", (1, 2, "ieee", False), anything) is True
    assert store.load("splits", (1, 2, "tf32", False), anything) is None
    assert len(os.listdir(folder)) == 2 and len(asked) == 1  # the identity is asked once


def test_the_first_decision_kept_stands(on_disk):
    folder, _ = on_disk
    assert store.settle("staging", ("k",), True, anything) == (True, False)
    # Another worker timed the same shape at the same time and found the other way faster.
    assert store.settle("staging", ("k",), False, anything) == (True, True)
    assert store.load("staging", ("k",), anything) is True
    assert len(os.listdir(folder)) == 1  # no temporary file left behind


def test_an_invalid_decision_on_disk_is_replaced(on_disk):
    store.settle("splits", ("k",), 0, anything)
    assert store.load("splits", ("k",), lambda value: value >= 1) is None
    assert store.settle("splits", ("k",), 29, lambda value: value >= 1) == (29, False)
    assert store.load("splits", ("k",), anything) == 29


def test_another_machine_finds_nothing(on_disk):
    folder, _ = on_disk
    store.settle("splits", ("k",), 29, anything)
    store.enable(str(folder), lambda: ["NVIDIA H200", "3.6.0", "13.0"])
    assert store.load("splits", ("k",), anything) is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"key": "(\'k\',)"}', ""])
def test_unreadable_or_foreign_files_give_nothing(on_disk, content):
    store.settle("splits", ("k",), 29, anything)
    folder, _ = on_disk
    (name,) = os.listdir(folder)
    (folder / name).write_text(content)
    assert store.load("splits", ("k",), anything) is None
    assert store.settle("splits", ("k",), 14, anything) == (14, False)  # ours takes its place
    assert store.load("splits", ("k",), anything) == 14


def test_a_file_for_another_key_under_the_same_name_gives_nothing(on_disk):
    store.settle("splits", ("k",), 29, anything)
    folder, _ = on_disk
    (name,) = os.listdir(folder)
    entry = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps(dict(entry, key=repr(("other",)))))
    assert store.load("splits", ("k",), anything) is None


def test_a_disabled_store_neither_reads_nor_writes(on_disk):
    folder, _ = on_disk
    store.settle("splits", ("k",), 29, anything)
    store.disable()
    assert store.load("splits", ("k",), anything) is None
    assert store.settle("splits", ("other",), 14, anything) == (14, False)
    assert len(os.listdir(folder)) == 1


def test_a_store_that_cannot_be_written_is_skipped(tmp_path):
    (tmp_path / "timed").write_text("a file where the folder should be")
    store.enable(str(tmp_path / "timed"), lambda: MACHINE)
    assert store.settle("splits", ("k",), 29, anything) == (29, False)
    assert store.load("splits", ("k",), anything) is None
    assert os.listdir(tmp_path) == ["timed"]


def _refusing_timer(fn):
    raise AssertionError("decided on disk: nothing should be timed")


def test_a_new_process_takes_the_stored_slice_count(on_disk, monkeypatch):
    monkeypatch.setattr(cuda_weight_grad_splits, "_timed", {})
    monkeypatch.setattr(cuda_weight_grad_splits, "_stored", set())
    runs, costs = [], {14: 2.0, 29: 3.0, 58: 1.0}

    def timer(fn):
        fn()
        return costs[runs[-1]]

    assert cuda_weight_grad_splits.slice_count("k", LAYER, 132, runs.append, timer) == 58
    monkeypatch.setattr(cuda_weight_grad_splits, "_timed", {})  # a new process
    runs.clear()
    assert cuda_weight_grad_splits.slice_count("k", LAYER, 132, runs.append,
                                               _refusing_timer) == 58
    assert runs == [] and cuda_weight_grad_splits.timed_splits() == {"k": 58}
    assert cuda_weight_grad_splits.stored_splits() == {"k"}
    # During a capture too: the stored decision, not the rule (29).
    monkeypatch.setattr(cuda_weight_grad_splits, "_timed", {})
    assert cuda_weight_grad_splits.slice_count("k", LAYER, 132, runs.append, _refusing_timer,
                                               may_time=False) == 58


def test_a_new_process_takes_the_stored_staging_choice(on_disk, monkeypatch):
    monkeypatch.setattr(cuda_staging, "_timed", {})
    monkeypatch.setattr(cuda_staging, "_stored", set())
    ways = []
    monkeypatch.setattr(cuda_staging, "timer", lambda fn: fn() or {"staged": 2.0,
                                                                   "direct": 1.0}[ways[-1]])

    def staged():
        ways.append("staged")

    def direct():
        ways.append("direct")

    assert cuda_staging.timed_choice(("shape",), staged, direct) is False
    monkeypatch.setattr(cuda_staging, "_timed", {})  # a new process
    monkeypatch.setattr(cuda_staging, "timer", _refusing_timer)
    ways.clear()
    assert cuda_staging.timed_choice(("shape",), staged, direct, may_time=False) is False
    assert ways == [] and cuda_staging.timed_choices() == {("shape",): False}
    assert cuda_staging.stored_choices() == {("shape",)}


def test_the_identity_covers_the_gpu_the_kernels_and_the_switches(monkeypatch):
    import types

    import torch

    from kernels_triton import matmul_layouts

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: types.SimpleNamespace(
        name="NVIDIA H100 80GB HBM3", multi_processor_count=132))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    identity = store.gpu_identity("cuda:0")
    assert json.dumps(identity)  # what the store writes must be JSON
    assert identity[:3] == ["NVIDIA H100 80GB HBM3", [9, 0], 132]
    assert isinstance(identity[5], str) and len(identity[5]) == 64  # the sources' digest
    monkeypatch.setattr(matmul_layouts, "REGISTER_A_ALLOWED", not matmul_layouts.REGISTER_A_ALLOWED)
    assert store.gpu_identity("cuda:0") != identity


def _settle_in_a_worker(folder, value, start):
    store.enable(folder, lambda: MACHINE)
    start.wait()
    return store.settle("splits", ("k",), value, lambda stored: type(stored) is int)[0]


@pytest.mark.parametrize("left_before", [None, "{torn", '{"key": "another"}'])
def test_workers_deciding_at_once_end_up_alike(tmp_path, left_before):
    # Also where a torn or foreign file is in the way: the writers then take turns under a lock.
    folder = str(tmp_path / "timed")
    if left_before is not None:
        store.enable(folder, lambda: MACHINE)
        store.settle("splits", ("k",), 1, anything)
        (name,) = os.listdir(folder)
        with open(os.path.join(folder, name), "w") as f:
            f.write(left_before)
        store.disable()
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        start = manager.Barrier(6)
        with context.Pool(6) as pool:
            decisions = pool.starmap(_settle_in_a_worker,
                                     [(folder, value, start) for value in range(10, 16)])
    store.enable(folder, lambda: MACHINE)
    assert len(set(decisions)) == 1
    assert store.load("splits", ("k",), anything) == decisions[0]
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_a_failing_identity_turns_the_store_off(tmp_path):

    def no_gpu():
        raise RuntimeError("CUDA driver gone")

    store.enable(str(tmp_path), no_gpu)
    assert store.load("splits", ("k",), anything) is None
    assert store.settle("splits", ("k",), 29, anything) == (29, False)
    assert store._place == {} and os.listdir(tmp_path) == []


def test_a_decision_json_cannot_hold_stays_in_the_process(on_disk):
    folder, _ = on_disk
    assert store.settle("splits", ("k",), np.int64(29), anything) == (29, False)
    assert store.load("splits", ("k",), anything) is None
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]

