"""Writes a self-contained maintd config under a temp dir: every path local, `command` service manager."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tomli_w

from maintd.config.core import default_jobs


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def base_config(root: Path) -> dict[str, Any]:
    """A config whose every path lives under root; no probes, no cleanup rules, no schedules that fire soon."""
    units = root / "units.json"
    svcctl = [sys.executable, "-m", "maintd.demo.svcctl", "--units", str(units)]
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    if not units.exists():
        units.write_text("{}")
    return {
        "timezone": "UTC",
        "paths": {"state_dir": str(root / "state"), "backup_root": str(root / "backups"),
                  "reports_dir": str(root / "reports"), "runtime_dir": str(root / "run")},
        "control": {"socket": str(root / "run" / "maintd.sock"), "admin_group": "root"},
        "logging": {"format": "json", "level": "debug"},
        "target": {"name": "demo", "version_file": str(root / "app" / "VERSION"),
                   "components": [{"name": "application", "path": str(root / "app"), "exclude": ["tmp", "*.log"]},
                                  {"name": "config", "path": str(root / "conf")},
                                  {"name": "data", "path": str(root / "data"), "exclude": ["cache"]}]},
        "redis": {"url": "redis://127.0.0.1:1/0", "unit": ""},
        "services": {"manager": "command", "units": [],
                     "command": {"start": svcctl + ["start", "{unit}"], "stop": svcctl + ["stop", "{unit}"],
                                 "restart": svcctl + ["restart", "{unit}"],
                                 "is_active": svcctl + ["is-active", "{unit}"]}},
        "backup": {"passphrase_file": str(root / "secrets" / "backup.passphrase"), "redis": False,
                   "min_free_bytes": 0},
        "health": {"probes": []},
        "cleanup": {"rules": []},
        "recovery": {"function_test": {"url": ""}},
        # Nothing fires by itself during a test; scheduler tests set their own calendar.
        "jobs": {name: {"schedule": ""} for name in default_jobs()},
    }


def write_config(root: Path, extra: dict[str, Any] | None = None) -> Path:
    config = deep_merge(base_config(root), extra or {})
    path = root / "maintd.toml"
    path.write_text(tomli_w.dumps(_drop_none(config)))
    return path


def _drop_none(value: Any) -> Any:
    """TOML has no null: a None means "leave the key out" except where the model needs an explicit null,
    which we spell as an empty string handled by the caller."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
