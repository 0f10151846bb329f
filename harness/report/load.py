"""Report layer: read a sweep folder (sweep.json, runs/*.json, failed/*.json) into plain rows.

Only JSON is read; nothing from an output folder is ever unpickled or executed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED_KEY = "seed"


@dataclass
class Sweep:
    """Everything the report needs from one sweep folder."""

    directory: Path
    plan: dict[str, Any]
    runs: list[dict[str, Any]]
    swept_keys: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def config_keys(self) -> list[str]:
        """Swept keys that distinguish configurations (seeds are aggregated, not compared)."""
        return [k for k in self.swept_keys if k != SEED_KEY]


def lookup(mapping: Any, dotted_key: str) -> Any:
    """Value at a dotted path of nested dicts, or None when any part is absent."""
    node = mapping
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def value_of(run: dict[str, Any], key: str) -> Any:
    """A run's value for a key: its override if swept, else the resolved config's value.

    A config group chosen by name (``init=kaiming``) resolves to a dict; its ``name`` stands for it.
    """
    overrides = run.get("overrides") or {}
    if key in overrides:
        return overrides[key]
    if key == SEED_KEY and run.get("seed") is not None:
        return run["seed"]
    value = lookup(run.get("config") or {}, key)
    if isinstance(value, dict):
        for name_key in ("name", "_name_", "kind", "type"):
            if name_key in value:
                return value[name_key]
    return value


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        problems.append(f"{path.name}: unreadable ({error})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: not a JSON object")
        return None
    return data


def _ordered_swept_keys(plan: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """Keys the runs were swept over, in the order the sweep's command named them."""
    present: list[str] = []
    for run in runs:
        present += [key for key in run.get("overrides") or {} if key not in present]
    named = [
        item.split("=", 1)[0].lstrip("+~")
        for item in plan.get("overrides") or []
        if isinstance(item, str) and "=" in item
    ]
    ordered = [key for key in named if key in present]
    return list(dict.fromkeys(ordered + present))


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read a sweep folder; raises FileNotFoundError naming the folder when it holds no results."""
    directory = Path(sweep_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"sweep folder {directory} does not exist")
    problems: list[str] = []
    plan = {}
    if (directory / "sweep.json").is_file():
        plan = _read_json(directory / "sweep.json", problems) or {}
    runs: list[dict[str, Any]] = []
    for sub, default_status in (("runs", "ok"), ("failed", "failed")):
        for path in sorted((directory / sub).glob("*.json")):
            record = _read_json(path, problems)
            if record is None:
                continue
            record.setdefault("run_id", path.stem)
            record.setdefault("status", default_status)
            record.setdefault("overrides", {})
            runs.append(record)
    if not runs and not plan:
        raise FileNotFoundError(
            f"{directory} holds no sweep.json and no runs/*.json or failed/*.json")
    runs.sort(key=lambda r: (str(r.get("name") or ""), str(r.get("run_id"))))
    return Sweep(directory, plan, runs, _ordered_swept_keys(plan, runs), problems)
