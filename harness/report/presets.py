"""Report layer: find a sweep's claims. Presets declare them under `harness.claims` (execution
settings: not part of a run's identity). Looked up in sweep.json's "claims", then a run's resolved
config, then the preset file named by the sweep's experiment=NAME (conf/experiment/NAME.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from harness.report.load import Sweep

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENT = re.compile(r"(?:^|\s|\+)experiment=([A-Za-z0-9_\-]+)")


def experiment_names(sweep: Sweep) -> list[str]:
    """Preset names the sweep was made with, from its overrides and command line."""
    texts = [str(item) for item in sweep.plan.get("overrides") or []]
    texts.append(str(sweep.plan.get("command") or ""))
    names: list[str] = []
    for text in texts:
        names += [m for m in EXPERIMENT.findall(text) if m not in names]
    return names


def preset_claims(name: str, conf_dir: Path = CONF_DIR) -> list[dict[str, Any]]:
    path = conf_dir / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return []
    return _claims_in(yaml.safe_load(path.read_text()) or {})


def _claims_in(config: dict[str, Any]) -> list[dict[str, Any]]:
    execution = config.get("harness") if isinstance(config.get("harness"), dict) else {}
    return list(execution.get("claims") or config.get("claims") or [])


def sweep_claims(sweep: Sweep, conf_dir: Path = CONF_DIR) -> list[dict[str, Any]]:
    if sweep.plan.get("claims"):
        return list(sweep.plan["claims"])
    for run in sweep.runs:
        claims = _claims_in(run.get("config") or {})
        if claims:
            return claims
    claims: list[dict[str, Any]] = []
    for name in experiment_names(sweep):
        claims += preset_claims(name, conf_dir)
    return claims
