"""The configuration: one frozen Settings tree loaded from TOML, overridden by ``MAINTD_SECTION__KEY`` env vars.

``load(path)`` reports every problem at once as a ConfigError whose ``problems`` read
``file: section.key: message``. There is no module-level settings object: the daemon loads one and passes it on.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)

from ..errors import ConfigError
from .backup import Backup, Retention, Tier
from .core import Control, Daemon, JobSchedule, Logging, Paths, default_jobs
from .ops import (BackupAgeProbe, Cleanup, CleanupRule, DiskProbe, FileAgeProbe, FunctionTest, Health, HttpProbe,
                  Notify, Objectives, Recovery, RedisProbe, Remediation, UnitProbe)
from .target import CommandManager, Component, Redis, Services, Target

DEFAULT_PATH = Path("/etc/maintd/maintd.toml")

__all__ = [
    "Settings", "load", "DEFAULT_PATH", "Paths", "Control", "Logging", "Daemon", "JobSchedule", "Target",
    "Component", "Redis", "Services", "CommandManager", "Backup", "Retention", "Tier", "Health", "HttpProbe",
    "RedisProbe", "UnitProbe", "DiskProbe", "FileAgeProbe", "BackupAgeProbe", "Remediation", "Cleanup",
    "CleanupRule", "Recovery", "Objectives", "FunctionTest", "Notify", "default_path", "read_secret",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAINTD_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True, toml_file=None)

    timezone: str = "UTC"
    paths: Paths = Field(default_factory=Paths)
    control: Control = Field(default_factory=Control)
    logging: Logging = Field(default_factory=Logging)
    daemon: Daemon = Field(default_factory=Daemon)
    target: Target = Field(default_factory=Target)
    redis: Redis = Field(default_factory=Redis)
    services: Services = Field(default_factory=Services)
    backup: Backup = Field(default_factory=Backup)
    health: Health = Field(default_factory=Health)
    cleanup: Cleanup = Field(default_factory=Cleanup)
    recovery: Recovery = Field(default_factory=Recovery)
    notify: Notify = Field(default_factory=Notify)
    jobs: dict[str, JobSchedule] = Field(default_factory=dict)
    """Merged over the default calendar: a [jobs.NAME] table changes or adds one entry."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}") from err
        return value

    @field_validator("jobs")
    @classmethod
    def _merge_defaults(cls, value: dict[str, JobSchedule]) -> dict[str, JobSchedule]:
        merged = default_jobs()
        for key, entry in value.items():
            if key in merged:  # a partial table changes only the keys it names
                entry = merged[key].model_copy(update=entry.model_dump(exclude_unset=True))
            merged[key] = entry
        return merged

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init > env > TOML file > defaults. No .env, no secrets dir: secrets are read from *_file keys.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def default_path() -> Path:
    """``$MAINTD_CONFIG``, else ``$CONFIGURATION_DIRECTORY/maintd.toml`` (systemd), else /etc/maintd/maintd.toml."""
    if os.environ.get("MAINTD_CONFIG"):
        return Path(os.environ["MAINTD_CONFIG"])
    if os.environ.get("CONFIGURATION_DIRECTORY"):
        return Path(os.environ["CONFIGURATION_DIRECTORY"].split(":")[0]) / "maintd.toml"
    return DEFAULT_PATH


def load(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read, validate and return the settings. Raises ConfigError listing every problem."""
    path = Path(path) if path is not None else default_path()
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)  # syntax first: pydantic-settings would report it less clearly
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: not found", [f"{path}: (file): not found"]) from err
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}", [f"{path}: (file): {err.strerror}"]) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}", [f"{path}: (syntax): {err}"]) from err

    bound = type("FileSettings", (Settings,), {
        "model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": path}),
        "__module__": __name__,
    })
    try:
        settings = bound(**overrides)
    except ValidationError as err:
        problems = [f"{path}: {_location(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from err
    problems = [f"{path}: {p}" for p in semantic_problems(settings)]
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return settings


def _location(loc: tuple[Any, ...]) -> str:
    # Discriminated unions add the tag as a path element ("health.probes.0.http.url"): keep it, it helps.
    return ".".join(str(part) for part in loc) or "(top)"


def semantic_problems(settings: Settings) -> list[str]:
    """Problems that need the whole tree: cross references between sections."""
    problems: list[str] = []
    names = {c.name for c in settings.target.components}
    for key in ("application_component", "config_component", "data_component"):
        value = getattr(settings.target, key)
        if value not in names:
            problems.append(f"target.{key}: no component named {value!r} (have: {', '.join(sorted(names))})")
    for probe in settings.health.probes:
        if probe.kind == "unit" and not probe.unit:
            problems.append(f"health.probes.{probe.name}: a unit probe needs `unit`")
    for key, entry in settings.jobs.items():
        if entry.timeout <= 0:
            problems.append(f"jobs.{key}.timeout: must be positive")
    return problems


def read_secret(path: Path) -> str:
    """The first line of a secret file, stripped. Never logged by callers."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read secret file {path}: {err.strerror}",
                          [f"{path}: (secret): {err.strerror}"]) from err
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise ConfigError(f"secret file {path} is empty", [f"{path}: (secret): empty"])
    return secret
