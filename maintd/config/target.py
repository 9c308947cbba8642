"""Sections about the maintained service: its trees, its Redis, its units and how to drive them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .types import Duration, NoneIfEmpty, Section


class Component(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    path: Path
    exclude: tuple[str, ...] = ()
    """Glob patterns relative to `path` (`tmp`, `*.log`, `cache/**`); a matching directory is skipped whole."""
    optional: bool = False
    """A missing optional component (e.g. an nginx site) is a warning, not a failure."""

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value


def default_components() -> tuple[Component, ...]:
    return (
        Component(name="application", path=Path("/opt/cctelegram"), exclude=("tmp", "*.log")),
        Component(name="config", path=Path("/etc/cctelegram")),
        Component(name="data", path=Path("/var/lib/cctelegram"), exclude=("cache",)),
    )


class Target(Section):
    name: str = "cctelegram"
    components: tuple[Component, ...] = Field(default_factory=default_components)
    version_file: Annotated[Path | None, NoneIfEmpty] = Path("/opt/cctelegram/VERSION")
    """The application's VERSION file: recorded in manifests, compared with the health endpoint's `version`."""
    application_component: str = "application"
    config_component: str = "config"
    data_component: str = "data"

    @model_validator(mode="after")
    def _unique_and_known(self) -> "Target":
        names = [c.name for c in self.components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"component names must be unique: {', '.join(duplicates)}")
        return self

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


class Redis(Section):
    url: str = "redis://localhost:6379/0"
    """redis:// or rediss:// (TLS); user in the URL for ACLs. Put no password here: use password_file."""
    password_file: Annotated[Path | None, NoneIfEmpty] = None
    timeout: Duration = 5.0
    required: bool = True
    """False: a backup with Redis unreachable completes without it, marked `partial` (never counted as good)."""
    unit: Annotated[str | None, NoneIfEmpty] = "redis-server"
    """The service-manager unit of Redis, used by recovery to stop and start it; none = not managed."""
    save_timeout: Duration = 600.0
    """How long a BGSAVE may take."""
    tls_ca_file: Annotated[Path | None, NoneIfEmpty] = None
    """rediss:// only: the CA bundle that signed the server's certificate (default: the system's trust store)."""

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        if "@" in value.split("//", 1)[1].split("/", 1)[0] and ":" in value.split("//", 1)[1].split("@", 1)[0]:
            raise ValueError("must not contain a password: use redis.password_file")
        return value


class CommandManager(Section):
    """argv templates for hosts without systemd (and for tests); `{unit}` is replaced by the unit name."""

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    is_active: tuple[str, ...] = ()
    """Exit 0 means active."""
    timeout: Duration = 60.0


class Services(Section):
    manager: Literal["systemd", "command"] = "systemd"
    units: tuple[str, ...] = ("cctelegram-mcp", "cctelegram-bridge")
    """Start order; stops go in reverse."""
    command: CommandManager = Field(default_factory=CommandManager)
    start_timeout: Duration = 120.0
    """How long a started service may take to become healthy."""
    systemctl_timeout: Duration = 120.0
    """manager = "systemd": how long one systemctl start/stop/restart/is-active may take (systemd's own start
    timeout is 90 s by default)."""

    @model_validator(mode="after")
    def _command_complete(self) -> "Services":
        if self.manager == "command":
            missing = [k for k in ("start", "stop", "restart", "is_active") if not getattr(self.command, k)]
            if missing:
                raise ValueError(f"services.manager = 'command' needs services.command.{', '.join(missing)}")
        return self
