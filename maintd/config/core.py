"""Sections about the daemon itself: paths, control socket, logging, lifecycle, the job calendar."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from .types import Cron, Duration, NoneIfEmpty, Section


def _env_dir(variable: str, default: str) -> Path:
    """systemd's StateDirectory= and friends export $STATE_DIRECTORY etc.; the first entry wins."""
    value = os.environ.get(variable, "")
    return Path(value.split(":")[0]) if value else Path(default)


class Paths(Section):
    state_dir: Path = Field(default_factory=lambda: _env_dir("STATE_DIRECTORY", "/var/lib/maintd"))
    """Small state: state.db, the private GNUPGHOME, index cache, locks. Never the backup store."""
    backup_root: Path = Path("/var/backups/maintd")
    reports_dir: Path = Field(default_factory=lambda: _env_dir("STATE_DIRECTORY", "/var/lib/maintd") / "reports")
    runtime_dir: Path = Field(default_factory=lambda: _env_dir("RUNTIME_DIRECTORY", "/run/maintd"))
    metrics_file: Annotated[Path | None, NoneIfEmpty] = None
    """Prometheus textfile collector output (e.g. /var/lib/prometheus/node-exporter/maintd.prom); none if unset."""


class Control(Section):
    socket: Path = Field(default_factory=lambda: _env_dir("RUNTIME_DIRECTORY", "/run/maintd") / "maintd.sock")
    admin_group: str = "maintd-admin"
    """Members (supplementary too) may run anything. Access is as strong as root: restore writes anywhere."""
    read_group: Annotated[str | None, NoneIfEmpty] = None
    """Members may read status and history only."""
    request_timeout: Duration = 10.0
    """A client must send its whole request line within this time."""
    max_request_bytes: int = Field(default=65536, ge=1024)
    max_clients: int = Field(default=32, ge=1)


class Logging(Section):
    format: Literal["auto", "console", "json", "journal"] = "auto"
    """auto: journal when JOURNAL_STREAM is set, console on a TTY, json otherwise."""
    level: Literal["debug", "info", "warning", "error"] = "info"


class Daemon(Section):
    stop_timeout: Duration = 60.0
    """On SIGTERM the running job has this long to finish or be cancelled (keep under TimeoutStopSec)."""
    misfire_grace: Duration = 3600.0
    """A scheduled run late by up to this much still runs (APScheduler's default of 1 s drops them)."""
    catch_up: bool = True
    """Run once at start a job whose scheduled time passed while the daemon was down (Persistent=true)."""
    history_keep: int = Field(default=5000, ge=10)
    """Run records kept in state.db (oldest pruned)."""


class JobSchedule(Section):
    job: Annotated[str | None, NoneIfEmpty] = None
    """The job to run; defaults to the table's name."""
    schedule: Annotated[Cron | None, NoneIfEmpty] = None
    """Cron expression (minute hour day month day-of-week; 0 and 7 are Sunday) in `timezone`; none = on demand."""
    enabled: bool = True
    timeout: Duration = 3600.0
    args: dict[str, Any] = Field(default_factory=dict)

    def job_name(self, key: str) -> str:
        return self.job or key


def default_jobs() -> dict[str, JobSchedule]:
    """The reference stack's calendar. Jobs that later releases add (log analysis, security review...) are
    listed, commented, in etc/maintd.toml."""
    return {
        "health": JobSchedule(schedule="0 2 * * *", timeout=300),
        "cleanup": JobSchedule(schedule="0 0 * * *", timeout=900),
        "backup-full": JobSchedule(job="backup", args={"type": "full"}, schedule="0 1 * * sun", timeout=6 * 3600),
        "backup-differential": JobSchedule(job="backup", args={"type": "differential"}, schedule="0 3 * * *",
                                           timeout=4 * 3600),
        "backup-incremental": JobSchedule(job="backup", args={"type": "incremental"}, schedule="0 */4 * * *",
                                          timeout=2 * 3600),
        "verify": JobSchedule(schedule="0 6 * * sun", timeout=6 * 3600),
        "prune": JobSchedule(schedule=None, timeout=1800),
        "restore": JobSchedule(schedule=None, timeout=12 * 3600),
        "recover": JobSchedule(schedule=None, timeout=12 * 3600),
        "drill": JobSchedule(schedule="0 6 1 1,4,7,10 *", timeout=6 * 3600),
    }
