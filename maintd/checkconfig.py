"""Checking a config beyond what `config.load` sees alone, for `maintd check-config`, the daemon's start and
every reload: cron expressions the scheduler refuses and calendar entries naming jobs that do not exist, all
problems in one pass (also when the file has other problems), and the summary check-config prints."""

from __future__ import annotations

import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import config
from .cli_render import table
from .config.core import default_jobs
from .errors import ConfigError
from .jobs import registry
from .jobs.base import JobSpec
from .cron import cron_trigger
from .runtime.peer import group_id
from .runtime.scheduler import validate_schedules


def config_problems(settings: config.Settings, path: Path, specs: Mapping[str, JobSpec]) -> list[str]:
    """What `load` cannot see alone: cron expressions the scheduler refuses, calendar entries naming jobs that
    do not exist, and control groups missing on this host. An entry of the default calendar whose job a later
    release brings is not a problem."""
    problems = [p if p.startswith(f"{path}:") else f"{path}: {p}" for p in validate_schedules(settings)]
    defaults = default_jobs()
    for key, entry in sorted(settings.jobs.items()):
        job = entry.job_name(key)
        if job in specs or not entry.enabled:
            continue
        default = defaults.get(key)
        if default is not None and default.job_name(key) == job:
            continue
        problems.append(f"{path}: jobs.{key}.job: no job named {job!r} (have: {', '.join(sorted(specs))})")
    problems += [f"{path}: {p}" for p in secret_file_problems(settings)]
    for key in ("admin_group", "read_group"):
        name = getattr(settings.control, key)
        if name:
            try:
                group_id(name, key)
            except ConfigError as err:
                problems += [f"{path}: {p}" for p in err.problems]
    return problems


def secret_file_problems(settings: config.Settings) -> list[str]:
    """Secret files named by the config must be readable now, not at the first backup at 01:00. Content is
    never read into a message."""
    # In public-key mode the passphrase file is optional (only verify/restore on a host with the secret key).
    passphrase = settings.backup.passphrase_file if not settings.backup.recipients else None
    named = {"backup.passphrase_file": passphrase,
             "redis.password_file": settings.redis.password_file,
             "redis.tls_ca_file": getattr(settings.redis, "tls_ca_file", None),
             "notify.webhook_url_file": settings.notify.webhook_url_file,
             "notify.healthchecks_url_file": settings.notify.healthchecks_url_file}
    named.update({f"backup.tiers.{t.name}.ssh_key_file": t.ssh_key_file for t in settings.backup.tiers})
    return unreadable_files(named)


def unreadable_files(named: Mapping[str, Any]) -> list[str]:
    """`key: cannot read FILE: reason` for each named file that cannot be opened now."""
    problems = []
    for key, file in named.items():
        if not file:
            continue
        try:
            with open(file, "rb"):
                pass
        except OSError as err:
            problems.append(f"{key}: cannot read {file}: {err.strerror}")
    return problems


def raw_secret_problems(path: Path, known: list[str]) -> list[str]:
    """When the file has other problems, still check the secret files it names (or the default passphrase
    file), so that one pass lists everything."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []

    def table(name: str) -> dict[str, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    backup, redis, notify = table("backup"), table("redis"), table("notify")
    named: dict[str, Any] = {}
    if not backup.get("recipients"):
        named["backup.passphrase_file"] = backup.get("passphrase_file", str(config.Backup().passphrase_file))
    named.update({"redis.password_file": redis.get("password_file"),
                  "notify.webhook_url_file": notify.get("webhook_url_file"),
                  "notify.healthchecks_url_file": notify.get("healthchecks_url_file")})
    named = {k: v for k, v in named.items() if isinstance(v, str) and not any(f": {k}:" in p for p in known)}
    return [f"{path}: {p}" for p in unreadable_files(named)]


def load_checked(path: Path, specs: Mapping[str, JobSpec]) -> config.Settings:
    """config.load plus config_problems: ConfigError listing every problem found."""
    try:
        settings = config.load(path)
    except ConfigError as err:
        extra = [*raw_schedule_problems(path, err.problems, specs), *raw_secret_problems(path, err.problems)]
        if extra:
            raise ConfigError(err.message, [*err.problems, *extra]) from err
        raise
    problems = config_problems(settings, path, specs)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return settings


def raw_schedule_problems(path: Path, known: list[str], specs: Mapping[str, JobSpec]) -> list[str]:
    """When the file has other problems, still check its [jobs.*] tables (cron expressions, job names), so that
    one pass lists everything."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    try:
        zone: Any = ZoneInfo(str(data.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
    problems: list[str] = []
    for key, table in sorted(jobs.items()):
        if not isinstance(table, dict):
            continue
        expr, job = table.get("schedule"), table.get("job")
        if isinstance(expr, str) and expr and not any(f"jobs.{key}.schedule" in p for p in known):
            try:
                cron_trigger(expr, zone, entry=key)
            except ConfigError as err:
                problems += [f"{path}: {p}" for p in err.problems]
        if isinstance(job, str) and job and job not in specs:
            problems.append(f"{path}: jobs.{key}.job: no job named {job!r} (have: {', '.join(sorted(specs))})")
    return problems


def main(path: Path | None) -> int:
    """`maintd check-config`: every problem on stderr and 78, or the summary on stdout and 0."""
    path = path or config.default_path()
    specs = registry()
    try:
        settings = load_checked(path, specs)
    except ConfigError as err:
        for problem in err.problems or [err.message]:
            print(problem, file=sys.stderr)
        return err.exit_code
    print(summary(settings, path, specs, datetime.now(timezone.utc)))
    return 0


def summary(settings: config.Settings, path: Path, specs: Mapping[str, JobSpec], now: datetime) -> str:
    lines = [f"{path}: ok", f"target {settings.target.name}: {len(settings.target.components)} component(s)"]
    lines.append(table([[c.name, str(c.path), ", ".join(c.exclude), "yes" if c.path.exists() else "NO"]
                        for c in settings.target.components], ["component", "path", "exclude", "exists"]))
    rows = []
    for key, entry in sorted(settings.jobs.items()):
        job = entry.job_name(key)
        if not entry.schedule:
            next_run = "on demand"
        elif not entry.enabled:
            next_run = "disabled"
        elif job not in specs:
            next_run = "not in this release"
        else:
            fire = cron_trigger(entry.schedule, settings.tz).get_next_fire_time(None, now)
            next_run = fire.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z") if fire else "never"
        rows.append([key, job, entry.schedule or "-", next_run])
    lines += ["", f"schedules (timezone {settings.timezone}):",
              table(rows, ["entry", "job", "schedule", "next run"])]
    return "\n".join(lines)
