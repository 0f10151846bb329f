"""Sweep expansion tests: Hydra's override grammar to the cartesian product of runs, names,
preset sweeps, run-id stability."""

import pytest

from harness.config import ConfigError, compose_one, run_id
from harness.sweep import expand, single


def names(plan):
    return [run.name for run in plan.runs]


def test_the_users_command_works_as_written():
    plan = expand(["init=kaiming,normal"])
    assert names(plan) == ["init=kaiming,seed=0", "init=normal,seed=0"]
    assert [run.task_name for run in plan.runs] == ["train[init=kaiming,seed=0]",
                                                    "train[init=normal,seed=0]"]
    assert [run.config["init"]["name"] for run in plan.runs] == ["kaiming", "normal"]


def test_cartesian_product_of_several_keys():
    plan = expand(["experiment=smoke", "init=normal", "init.c=1,2,3", "seed=0,1"])
    assert len(plan.runs) == 6
    assert plan.swept_keys == ["init.c", "seed"]
    assert {(r.config["init"]["c"], r.seed) for r in plan.runs} == {
        (c, s) for c in (1.0, 2.0, 3.0) for s in (0, 1)}


def test_range_and_choice_functions():
    plan = expand(["experiment=smoke", "seed=0", "model.depth=range(2,5)",
                   "optimizer=choice(sgd,adam)"])
    assert sorted({r.config["model"]["depth"] for r in plan.runs}) == [2, 3, 4]
    assert {r.config["optimizer"]["name"] for r in plan.runs} == {"sgd", "adam"}


def test_default_sweep_is_the_init_variance_story():
    plan = expand([])
    assert plan.experiment == "default"
    assert [r.config["init"] for r in plan.runs] == [
        {"name": "normal", "c": c} for c in (1.0, 2.0, 3.0)]
    assert {r.config["model"]["bias"] for r in plan.runs} == {False}


def test_command_line_choice_replaces_the_presets_sweep_of_that_group():
    plan = expand(["init=kaiming"])
    assert names(plan) == ["seed=0"]
    assert plan.runs[0].config["init"] == {"name": "kaiming"}


def test_plus_experiment_means_experiment():
    assert names(expand(["+experiment=smoke"])) == names(expand(["experiment=smoke"]))


def test_execution_settings_and_presets_cannot_be_swept():
    with pytest.raises(ConfigError, match="harness.max_retries"):
        expand(["harness.max_retries=1,2"])
    with pytest.raises(ConfigError, match="experiment"):
        expand(["experiment=smoke,default"])


def test_duplicate_points_collapse_to_one_run():
    assert len(expand(["experiment=smoke", "seed=0", "init=normal", "init.c=2,2.0"]).runs) == 1


def test_run_id_is_stable_and_ignores_execution_settings():
    base, _ = compose_one(["experiment=smoke"])
    same, _ = compose_one(["experiment=smoke", "harness.max_retries=5", "harness.cpus_per_run=2"])
    spelled, _ = compose_one(["experiment=smoke", "optimizer.lr=0.10"])
    other, _ = compose_one(["experiment=smoke", "optimizer.lr=0.2"])
    assert run_id(base) == run_id(same) == run_id(spelled)
    assert run_id(base) != run_id(other)
    assert len(run_id(base)) == 12 and run_id(base) == run_id(dict(reversed(list(base.items()))))


def test_single_refuses_sweeps():
    spec, harness = single(["experiment=smoke", "seed=3"])
    assert spec.seed == 3 and harness["max_retries"] == 2
    with pytest.raises(ConfigError, match="seed=0,1"):
        single(["seed=0,1"])


def test_bad_grammar_is_a_config_error():
    with pytest.raises(ConfigError):
        expand(["init=kaiming,"])
