"""etc/maintd.toml is the operator's reference: it must load, and it must mention every key the models know."""

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from maintd import config

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "maintd.toml"


def _models_in(annotation: typing.Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        nested = _models_in(field.annotation)
        if nested and not any(m.__name__ == "ByteSize" for m in nested):
            keys.add(name)
            for sub in nested:
                keys |= _keys(sub, seen)
        else:
            keys.add(name)
    return keys


def test_example_config_loads(monkeypatch) -> None:
    for var in list(__import__("os").environ):
        if var.startswith("MAINTD_") or var in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY"):
            monkeypatch.delenv(var)
    settings = config.load(EXAMPLE)
    assert [c.name for c in settings.target.components] == ["application", "config", "data"]
    assert settings.services.units == ("cctelegram-mcp", "cctelegram-bridge")


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    section_names = {"paths", "control", "logging", "daemon", "target", "redis", "services", "backup", "health",
                     "cleanup", "recovery", "notify", "jobs", "components", "command", "tiers", "retention",
                     "probes", "remediation", "rules", "objectives", "function_test"}
    missing = []
    for key in sorted(_keys(config.Settings)):
        if key in section_names:
            pattern = rf"^\s*#?\s*\[+[\w.\-]*\b{re.escape(key)}\b"
        else:
            pattern = rf"^\s*#?\s*{re.escape(key)}\s*="
        if not re.search(pattern, text, re.M):
            missing.append(key)
    assert not missing, f"etc/maintd.toml does not mention: {', '.join(missing)}"
