"""Sections about health checks, cleanup, recovery and notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import ByteSize, Field, field_validator

from .types import Duration, NoneIfEmpty, Section


class _Probe(Section):
    name: str
    timeout: Duration = 5.0
    unit: Annotated[str | None, NoneIfEmpty] = None
    """The unit to restart after `failures_before_restart` consecutive failures (remediation)."""


class HttpProbe(_Probe):
    kind: Literal["http"] = "http"
    url: str
    expect_status: int = 200
    expect_json: dict[str, Any] = Field(default_factory=dict)
    """Top-level JSON fields that must equal these values, e.g. {status = "healthy"}."""
    expect_version_file: Annotated[Path | None, NoneIfEmpty] = None
    """The JSON `version` must equal this file's content (stripped)."""


class RedisProbe(_Probe):
    kind: Literal["redis"] = "redis"
    """PING against redis.url."""


class UnitProbe(_Probe):
    kind: Literal["unit"] = "unit"
    """The unit (`unit`) is active in the service manager."""


class DiskProbe(_Probe):
    kind: Literal["disk"] = "disk"
    path: Path
    min_free_bytes: Annotated[ByteSize | None, NoneIfEmpty] = None
    min_free_percent: Annotated[float | None, NoneIfEmpty] = Field(default=10.0, ge=0, le=100)


class FileAgeProbe(_Probe):
    kind: Literal["file_age"] = "file_age"
    path: Path
    """A file, or a directory whose newest entry (recursively one level) counts."""
    max_age: Duration


class BackupAgeProbe(_Probe):
    kind: Literal["backup_age"] = "backup_age"
    """Newest good local backup and every tier against their RPO targets."""


Probe = Annotated[Union[HttpProbe, RedisProbe, UnitProbe, DiskProbe, FileAgeProbe, BackupAgeProbe],
                  Field(discriminator="kind")]


def default_probes() -> tuple[Any, ...]:
    return (
        HttpProbe(name="bridge", url="http://localhost:8080/health", expect_json={"status": "healthy"},
                  expect_version_file=Path("/opt/cctelegram/VERSION"), unit="cctelegram-bridge"),
        HttpProbe(name="mcp", url="http://localhost:3000/health", unit="cctelegram-mcp"),
        RedisProbe(name="redis", unit="redis-server"),
        DiskProbe(name="disk-data", path=Path("/var/lib/cctelegram")),
        DiskProbe(name="disk-backups", path=Path("/var/backups/maintd")),
        BackupAgeProbe(name="backups"),
    )


class Remediation(Section):
    """Monit-style: restart a probe's unit after N consecutive failures, at most M restarts per window."""

    enabled: bool = True
    failures_before_restart: int = Field(default=3, ge=1)
    max_restarts: int = Field(default=3, ge=0)
    window: Duration = 3600.0


class Health(Section):
    probes: tuple[Probe, ...] = Field(default_factory=default_probes)
    remediation: Remediation = Field(default_factory=Remediation)


class CleanupRule(Section):
    root: Path
    """An absolute directory other than /; never removed itself. A root that is a symlink is followed (once)."""
    patterns: tuple[str, ...] = ("*",)
    """Globs matched against paths relative to root (`cctelegram*`, `**/*.old`). Without "/" a pattern matches
    an entry's name at any scanned depth; with "/" the whole relative path (`**` spans directories)."""
    min_age: Duration = 86400.0
    """An entry younger than this is kept; a directory's age is that of the newest thing inside it."""
    kind: Literal["files", "dirs", "both"] = "files"
    """files: everything but directories (symlinks are removed as links); dirs: directories, removed whole."""
    recursive: bool = False
    """Also match below the top level of root."""

    @field_validator("root")
    @classmethod
    def _safe_root(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        if value == Path("/"):
            raise ValueError("must not be / itself")
        return value

    @field_validator("patterns")
    @classmethod
    def _sane_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one pattern")
        for pattern in value:
            if not pattern.strip("/") or ".." in pattern.split("/"):
                raise ValueError(f"{pattern!r}: empty or with a '..' segment")
        return value


def default_cleanup_rules() -> tuple[CleanupRule, ...]:
    return (
        CleanupRule(root=Path("/tmp"), patterns=("cctelegram*",), min_age=86400, kind="both"),
        CleanupRule(root=Path("/var/log/cctelegram"), patterns=("*.old",), min_age=7 * 86400, recursive=True),
    )


class Cleanup(Section):
    rules: tuple[CleanupRule, ...] = Field(default_factory=default_cleanup_rules)


class FunctionTest(Section):
    """The end-to-end check after a recovery: for the reference stack, POST a test notification to the MCP."""

    url: Annotated[str | None, NoneIfEmpty] = "http://localhost:3000/notify"
    method: Literal["GET", "POST"] = "POST"
    json_body: dict[str, Any] = Field(default_factory=lambda: {"title": "maintd recovery test",
                                                               "message": "recovery function test"})
    expect_status: int = 200
    timeout: Duration = 10.0


class Objectives(Section):
    """Recovery-time objectives from the runbook."""

    service: Duration = 300.0
    configuration: Duration = 900.0
    data: Duration = 1800.0
    full: Duration = 7200.0


class Recovery(Section):
    objectives: Objectives = Field(default_factory=Objectives)
    function_test: FunctionTest = Field(default_factory=FunctionTest)
    scratch_dir: Annotated[Path | None, NoneIfEmpty] = None
    """Where drills restore; default backup_root/.drill (same filesystem as the store, never /tmp)."""
    redis_server: str = "redis-server"
    """Binary the drill starts a throwaway Redis with."""
    drill_timeout: Duration = 120.0
    """How long the drill's throwaway Redis may take to load the backup's RDB."""
    allow_symlinks_outside: bool = False
    """Restore symlinks whose target lies outside their component (absolute, or climbing out with ..). Off: such
    a link stops the restore with a clear error. Either way nothing is ever written through a link."""
    redis_rdb_path: Annotated[Path | None, NoneIfEmpty] = None
    """Where Redis reads its RDB, used only when Redis cannot be asked (it is down when a recovery starts);
    normally recovery asks it (CONFIG GET dir + dbfilename) before stopping it."""
    redis_aof_dir: Annotated[Path | None, NoneIfEmpty] = None
    """With redis_rdb_path: the append-only dir (Redis 7 `appenddirname`) when Redis runs with appendonly yes."""
    min_free_bytes: ByteSize = Field(default=ByteSize(64 << 20), ge=0)
    """The restore's free-space preflight refuses (before writing anything) when the files to restore plus this
    margin do not fit on the target filesystem."""
    keep_previous_trees: int = Field(default=3, ge=1)
    """After a successful restore or recovery, keep the newest N `NAME.pre-restore.<time>` and `NAME.broken.<time>`
    trees of each component (and Redis's `*.pre-restore.<time>` files); older ones are deleted."""
    key_count_tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of Redis keys a restore or drill may find missing against the backup's count (keys whose TTL ran out
    since the backup are not loaded); 0 = counts must match exactly. More keys than recorded never pass."""


class Notify(Section):
    webhook_url_file: Annotated[Path | None, NoneIfEmpty] = None
    """File holding a URL that receives a JSON POST per failed run and per recovery (secret: kept in a file)."""
    healthchecks_url_file: Annotated[Path | None, NoneIfEmpty] = None
    """File holding a healthchecks.io-style base URL: /start, success, /fail pings with the run id."""
    on: tuple[Literal["failed", "crashed", "timeout", "warning", "succeeded", "interrupted"], ...] = (
        "failed", "crashed", "timeout")
    timeout: Duration = 10.0
