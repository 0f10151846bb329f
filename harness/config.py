"""Compose a run's config with Hydra's compose API (conf/ shipped as a package) and validate it
against the typed schemas, before any run starts. Harness layer.
"""

import dataclasses
import hashlib
import json

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.schema import SCALARS, SECTIONS

CONFIG_MODULE = "conf"
CONFIG_NAME = "config"
EXECUTION_KEY = "harness"
GROUPS = ("model", "data", "init", "norm", "optimizer", "train", "device", "experiment")


class ConfigError(ValueError):
    """A config the harness refuses: unknown key or option, wrong type, out-of-range value."""


class Composer:
    """Hydra's compose API held open for many compositions (one per run of a sweep)."""

    def __enter__(self):
        self._context = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    def compose(self, overrides):
        """Resolved, validated config (plain dict) and the group choices (e.g. experiment)."""
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides),
                          return_hydra_config=True)
            choices = dict(cfg.hydra.runtime.choices)
            with _open_struct(cfg):
                del cfg["hydra"]
            plain = OmegaConf.to_container(cfg, resolve=True)
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(_hydra_message(error)) from None
        return validate(plain), {k: v for k, v in choices.items() if not k.startswith("hydra")}


def compose_one(overrides=()):
    with Composer() as composer:
        return composer.compose(overrides)


def validate(cfg):
    """Check `cfg` (a plain dict) against the schemas; returns it with types normalized."""
    unknown = set(cfg) - set(SECTIONS) - set(SCALARS)
    if unknown:
        raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    out = {}
    for key, kind in SCALARS.items():
        value = cfg.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
        out[key] = value
    for section, options in SECTIONS.items():
        out[section] = _validate_section(section, cfg.get(section), options)
    return out


def _validate_section(section, value, options):
    if not isinstance(value, dict):
        raise ConfigError(f"{section}: expected a mapping, got {value!r}")
    if None in options:
        schema = options[None]
    else:
        name = value.get("name")
        if name not in options:
            raise ConfigError(f"{section}.name: unknown option {name!r}; "
                              f"choose one of {', '.join(options)}")
        schema = options[name]
        value = _drop_sibling_keys(value, schema, options)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), value)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or getattr(error, "key", None) or "?"
        raise ConfigError(f"{section}.{key}: {_first_line(error)}") from None
    result = OmegaConf.to_container(merged)
    for spec in dataclasses.fields(schema):
        _check_range(f"{section}.{spec.name}", result[spec.name], spec.metadata)
    return result


def _drop_sibling_keys(value, schema, options):
    """A preset that sets model.depth for its MLP also applies when the command line picks
    model=softmax: keys that belong to another option of the same group are dropped (so they are
    not part of the run's identity either); any other unknown key is still an error."""
    own = {spec.name for spec in dataclasses.fields(schema)}
    siblings = {spec.name for other in options.values() for spec in dataclasses.fields(other)}
    return {key: item for key, item in value.items() if key in own or key not in siblings}


def _check_range(key, value, checks):
    if value is None:
        return
    if "choices" in checks and value not in checks["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(checks['choices'])}")
    bounds = {"gt": (lambda v, b: v > b, ">"), "ge": (lambda v, b: v >= b, ">="),
              "lt": (lambda v, b: v < b, "<"), "le": (lambda v, b: v <= b, "<=")}
    for name, (holds, symbol) in bounds.items():
        if name in checks and not holds(value, checks[name]):
            raise ConfigError(f"{key}: must be {symbol} {checks[name]}, got {value!r}")


def run_identity(cfg):
    """The part of a validated config that defines a run: everything but the execution section."""
    return {k: v for k, v in cfg.items() if k != EXECUTION_KEY}


def run_id(cfg):
    """Stable id of a run: sha256 of its canonical JSON identity, first 12 hex digits."""
    canonical = json.dumps(run_identity(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class _open_struct:
    def __init__(self, cfg):
        self.cfg = cfg

    def __enter__(self):
        OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc):
        OmegaConf.set_struct(self.cfg, True)


def _first_line(error):
    return str(error).strip().splitlines()[0]


def _hydra_message(error):
    """Hydra's message on one line, with its list of available options but not its search path."""
    text = str(error).split("Config search path")[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message, rest = lines[0], lines[1:]
    if rest and rest[0].endswith(":"):
        return f"{message}. {rest[0]} {', '.join(rest[1:])}"
    return " ".join(lines)
