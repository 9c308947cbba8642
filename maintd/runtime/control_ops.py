"""The control socket's one-shot operations: each takes the daemon (a ControlHost) and the request's args and
returns JSON-able data, or raises a MaintdError that becomes an error line. The streaming operations (run,
watch) live in control.py."""

from __future__ import annotations

import importlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import structlog

from .. import __version__
from ..errors import NotFoundError, UnavailableError, UsageError
from .views import record_view, schedule_views

if TYPE_CHECKING:
    from ..config import Settings
    from ..jobs.base import JobSpec
    from ..state import State

log = structlog.get_logger("maintd.control")


class ControlHost(Protocol):
    """What the control server needs from the daemon."""

    @property
    def settings(self) -> "Settings": ...

    @property
    def state(self) -> "State": ...

    @property
    def runner(self) -> Any: ...  # maintd.runtime.runner.Runner

    @property
    def specs(self) -> Mapping[str, "JobSpec"]: ...

    @property
    def config_path(self) -> Path: ...

    @property
    def started(self) -> datetime: ...

    def next_runs(self) -> Mapping[str, datetime | None]: ...

    def reload(self, wait: bool) -> dict[str, Any]:
        """Ask the main loop to reload; with wait, block until done (ConfigError when the new config was
        refused and the old one kept)."""
        ...


Handler = Callable[[ControlHost, dict[str, Any]], Any]


def _text(args: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise UsageError(f"missing argument {key!r}")
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"argument {key!r} must be a non-empty string")
    return value


def _flag(args: Mapping[str, Any], key: str) -> bool:
    value = args.get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"argument {key!r} must be true or false")
    return value


def ping(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True, "version": __version__, "pid": os.getpid()}


def status(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    settings, state = host.settings, host.state
    now = datetime.now(timezone.utc)
    return {
        "version": __version__, "pid": os.getpid(), "uptime_s": round((now - host.started).total_seconds(), 1),
        "started": host.started.isoformat(), "timezone": settings.timezone, "config": str(host.config_path),
        "socket": str(settings.control.socket), "paused": sorted(state.paused()),
        "schedules": schedule_views(settings, state, host.next_runs(), host.specs),
        "active": [handle.snapshot() for handle in host.runner.active()],
        "health": state.get("health.last"),
        "tiers": _tier_status(settings, state, now),
    }


def _tier_status(settings: "Settings", state: "State", now: datetime) -> Any:
    """The newest good local backup and each tier's newest copy against their RPO (maintd.backup.tiers)."""
    try:
        tiers = importlib.import_module("maintd.backup.tiers")
    except ImportError:
        return None
    try:
        return tiers.status(settings, state, now)
    except Exception as err:  # noqa: BLE001 - a broken tier report must not break `status`
        log.warning("control.tier_status_failed", error=str(err))
        return {"error": str(err)}


def jobs(host: ControlHost, args: dict[str, Any]) -> list[dict[str, Any]]:
    entries: dict[str, list[str]] = {}
    for key, schedule in host.settings.jobs.items():
        entries.setdefault(schedule.job_name(key), []).append(key)
    return [{"name": name, "description": spec.description, "mutating": spec.mutating, "locks": list(spec.locks),
             "entries": sorted(entries.get(name, []))} for name, spec in sorted(host.specs.items())]


def history(host: ControlHost, args: dict[str, Any]) -> list[dict[str, Any]]:
    job = _text(args, "job")
    limit = args.get("limit", 20)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10000:
        raise UsageError("argument 'limit' must be an integer from 1 to 10000")
    return [record_view(r) for r in host.state.history(job, limit)]


def _listing() -> Any:
    try:
        return importlib.import_module("maintd.backup.listing")
    except ImportError as err:
        raise UnavailableError("backup listings are not available in this build") from err


def backups(host: ControlHost, args: dict[str, Any]) -> Any:
    return _listing().describe_backups(host.settings, host.state)


def backup_show(host: ControlHost, args: dict[str, Any]) -> Any:
    return _listing().describe_backup(host.settings, host.state, _text(args, "id", required=True))


def _pause_targets(host: ControlHost, name: str | None) -> list[str]:
    """A calendar entry, or every entry of a job name; None means everything ("*")."""
    if name is None:
        return ["*"]
    if name in host.settings.jobs:
        return [name]
    matching = sorted(k for k, s in host.settings.jobs.items() if s.job_name(k) == name)
    if not matching:
        raise NotFoundError(f"no schedule entry or job named {name!r} (see `maintctl status`)")
    return matching


def pause(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    for target in _pause_targets(host, _text(args, "job")):
        host.state.set_paused(target, True)
    return {"paused": sorted(host.state.paused())}


def resume(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    name = _text(args, "job")
    targets = sorted(host.state.paused()) if name is None else _pause_targets(host, name)
    for target in targets:
        host.state.set_paused(target, False)
    return {"paused": sorted(host.state.paused())}


def cancel(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    run_id = _text(args, "run_id", required=True)
    for handle in host.runner.active():
        if handle.run_id == run_id:
            handle.cancel("interrupted")
            return {"run_id": run_id, "job": handle.job, "cancelled": True}
    if host.state.get_run(run_id) is not None:
        raise NotFoundError(f"run {run_id} is not running any more (see `maintctl history`)")
    raise NotFoundError(f"no run {run_id}")


def reload(host: ControlHost, args: dict[str, Any]) -> dict[str, Any]:
    return host.reload(_flag(args, "wait"))


HANDLERS: dict[str, Handler] = {
    "ping": ping, "status": status, "jobs": jobs, "history": history, "backups": backups,
    "backup-show": backup_show, "pause": pause, "resume": resume, "cancel": cancel, "reload": reload,
}
"""Every op but the streaming ones (run, watch)."""
