"""Expand command-line overrides (plus a preset's default sweep) into the list of runs, with Hydra's
own override parser and BasicSweeper's cartesian product; compose and validate every run.
Harness layer.
"""

import os
from dataclasses import dataclass, field

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from harness.config import EXECUTION_KEY, Composer, ConfigError, run_id, run_identity


@dataclass
class RunSpec:
    """One run of a plan: what the Ray task (or `run`) receives."""
    run_id: str
    name: str
    overrides: dict
    config: dict
    seed: int
    task_name: str = ""

    def __post_init__(self):
        self.task_name = self.task_name or f"train[{self.name}]"


@dataclass
class Plan:
    """A sweep: its runs in order, the execution settings and where it came from."""
    runs: list
    harness: dict
    experiment: str
    swept_keys: list
    command: list = field(default_factory=list)

    @property
    def output_dir(self):
        return self.harness["output_dir"] or os.path.join("outputs", self.experiment)


def normalize(args):
    """`+experiment=X` and `experiment=X` mean the same here: the primary config already lists
    an experiment (the default one), so Hydra itself would refuse the `+` form."""
    return [arg[1:] if arg.startswith("+experiment=") else arg for arg in args]


def parse(args):
    try:
        return OverridesParser.create().parse_overrides(list(args))
    except HydraException as error:
        raise ConfigError(f"bad override: {error}") from None


def _check_sweepable(overrides):
    for override in overrides:
        key = override.key_or_group
        if not override.is_sweep_override():
            continue
        if key == EXECUTION_KEY or key.startswith(EXECUTION_KEY + "."):
            raise ConfigError(f"{key}: execution settings cannot be swept (give one value)")
        if key == "experiment":
            raise ConfigError("experiment: presets cannot be swept; run one sweep per preset")


def _shadowed(preset_key, command_keys):
    """A preset's sweep of `init.c` gives way to any command-line choice of `init` or `init.c`."""
    return any(preset_key == key or preset_key.startswith(key + ".")
               or key.startswith(preset_key + ".") for key in command_keys)


def expand(args, command=None):
    """The plan for `sweep ARGS`: one RunSpec per point of the cartesian product."""
    command_line = parse(normalize(args))
    _check_sweepable(command_line)
    fixed = [o.input_line for o in command_line if not o.is_sweep_override()]
    with Composer() as composer:
        base, choices = composer.compose(fixed)
        preset = parse(base[EXECUTION_KEY]["sweep"])
        _check_sweepable(preset)
        command_keys = {o.key_or_group for o in command_line}
        preset = [o for o in preset if not _shadowed(o.key_or_group, command_keys)]
        overrides = preset + command_line
        swept_keys = list(dict.fromkeys(o.key_or_group for o in overrides if o.is_sweep_override()))
        try:
            combinations = BasicSweeper.split_arguments(overrides, None)[0]
        except HydraException as error:
            hint = " (glob() sweeps need Hydra's launcher; list the options)" if "glob" in str(
                [o.input_line for o in overrides]) else ""
            raise ConfigError(f"{error}{hint}") from None
        runs, seen = [], set()
        for combination in combinations:
            spec = _run_spec(composer, combination, swept_keys)
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                runs.append(spec)
    return Plan(runs=runs, harness=base[EXECUTION_KEY], experiment=choices.get("experiment", ""),
                swept_keys=swept_keys, command=list(command or []))


def single(args):
    """The one run of `run ARGS` (no sweeps allowed, the preset's default sweep ignored)."""
    command_line = parse(normalize(args))
    swept = [o.input_line for o in command_line if o.is_sweep_override()]
    if swept:
        raise ConfigError(f"`run` takes one configuration; use `sweep` for {', '.join(swept)}")
    with Composer() as composer:
        spec = _run_spec(composer, [o.input_line for o in command_line], [])
        base, _ = composer.compose([o.input_line for o in command_line])
    return spec, base[EXECUTION_KEY]


def _run_spec(composer, combination, swept_keys):
    cfg, _ = composer.compose(combination)
    values = {}
    for line in combination:
        key, _, value = line.lstrip("+~").partition("=")
        if key in swept_keys:
            values[key] = value
    parts = [f"{key}={values[key]}" for key in swept_keys]
    if "seed" not in values:
        parts.append(f"seed={cfg['seed']}")
    identity = run_identity(cfg)
    return RunSpec(run_id=run_id(cfg), name=",".join(parts), overrides=values, config=identity,
                   seed=cfg["seed"])
