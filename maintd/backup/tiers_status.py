"""How fresh each place holding backups is, against its objective (docs/retention-and-tiers.md, "Status").

- **local store**: stale when a scheduled backup is overdue: an enabled calendar entry running the `backup` job was
  due more than `backup.local_rpo` ago and no good backup was taken since that due time. (The newest backup's age
  alone says nothing with backups every 4 hours and a 15-minute objective: a backup taken 3 h ago when the next is
  due in 1 h is fine; one late or failed by more than 15 minutes is not.)
- **a tier**: stale when a good local backup older than the tier's `rpo` is newer than the tier's newest verified
  copy: the tier lags the local store by more than its objective.

The judges (``last_backup_due``, ``judge_local``, ``judge_tier``) are pure; ``status`` reads the catalog and state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Mapping

from ..config import Settings, Tier
from ..cron import cron_trigger, last_fire_at_or_before
from ..errors import MaintdError
from .catalog import Catalog
from .ids import parse_id
from .retention import BackupRecord, badness
from .tier_objects import record_of

if TYPE_CHECKING:
    from ..state import State

BACKUP_JOB = "backup"


def state_key(tier: str, backup_id: str) -> str:
    return f"tier.{tier}.{backup_id}"


@dataclass(frozen=True)
class Due:
    entry: str
    """The calendar entry (``backup-incremental``)."""
    time: datetime
    """The scheduled time judged: the newest fire of any backup entry that is at least the objective ago."""


@dataclass(frozen=True)
class Copy:
    id: str
    created: datetime


def last_backup_due(jobs: Mapping[str, Any], tz: tzinfo, moment: datetime) -> Due | None:
    """The newest scheduled backup time not after ``moment`` over every enabled entry running the backup job (a
    paused entry still counts: pausing backups does break the objective). None when no backup is scheduled."""
    best: Due | None = None
    for entry, schedule in sorted(jobs.items()):
        if schedule.job_name(entry) != BACKUP_JOB or not schedule.enabled or not schedule.schedule:
            continue
        fire = last_fire_at_or_before(cron_trigger(schedule.schedule, tz, entry=entry), moment)
        if fire is not None and (best is None or fire > best.time):
            best = Due(entry, fire)
    return best


def judge_local(newest: BackupRecord | None, due: Due | None, now: datetime, rpo_s: float,
                tz: tzinfo = timezone.utc) -> tuple[bool, str]:
    """(stale, why) for the local store: ``due`` is the last scheduled time at least ``rpo_s`` before now."""
    if newest is None:
        return True, "no good backup" + (f"; {due.entry} was due at {_when(due.time, tz)}" if due else "")
    age = f"the newest good backup {newest.id} is {human(_seconds(now, newest.created))} old"
    if due is None:
        return False, f"no enabled backup schedule, nothing is due; {age}"
    if newest.created < due.time:
        return True, (f"{due.entry} was due at {_when(due.time, tz)} ({human(_seconds(now, due.time))} ago, "
                      f"{human(rpo_s)} late allowed) and no good backup was taken since; {age}")
    return False, f"{age}; the last backup due ({due.entry} at {_when(due.time, tz)}) was taken"


def judge_tier(copy: Copy | None, lagging: BackupRecord | None, now: datetime, rpo_s: float) -> tuple[bool, str]:
    """(stale, why) for a tier: ``lagging`` is the newest good local backup at least ``rpo_s`` old; the tier must
    hold it or something newer."""
    held = (f"newest verified copy {copy.id} ({human(_seconds(now, copy.created))} old)" if copy
            else "no verified copy")
    if lagging is not None and (copy is None or copy.created < lagging.created):
        return True, (f"lacks {lagging.id} ({human(_seconds(now, lagging.created))} old, RPO {human(rpo_s)}); "
                      f"{held}")
    if lagging is None and copy is None:
        return False, f"nothing due yet (no good local backup older than {human(rpo_s)})"
    return False, held


def status(settings: Settings, state: "State", now: datetime) -> list[dict[str, Any]]:
    """One row per place, local first: {name, kind, where, newest, created, age_s, rpo_s, stale, ok, error,
    detail}; local adds verified, due, due_entry, scheduled; a tier adds lacks. ``newest`` is the newest good
    backup (local) or verified copy (tier); ``detail`` says why the place is or is not stale."""
    try:
        good = _good_backups(settings, state)
        error = None
    except (MaintdError, OSError) as err:
        good, error = [], err.message if isinstance(err, MaintdError) else str(err)
    rows = [_local_row(settings, now, good, error)]
    for tier in settings.backup.tiers:
        rows.append(_tier_row(tier, state, now, good))
    return rows


def stale_tiers(settings: Settings, state: "State", now: datetime) -> list[str]:
    """One line per stale place (``local`` included), for the health job."""
    return [stale_line(row) for row in status(settings, state, now) if row["stale"]]


def stale_line(row: Mapping[str, Any]) -> str:
    return f"{row['name']}: {row['detail']}" + (f"; last error: {row['error']}" if row.get("error") else "")


def _good_backups(settings: Settings, state: "State") -> list[BackupRecord]:
    manifests = Catalog.from_settings(settings).list()
    records = {m.id: record_of(m, state.get(f"verify.{m.id}")) for m in manifests}
    return sorted((r for r in records.values() if badness(r, records) is None), key=lambda r: (r.created, r.id))


def _row(name: str, kind: str, where: str, newest: str | None, created: datetime | None, rpo: float,
         now: datetime, stale: bool, detail: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "where": where, "newest": newest,
            "created": created.astimezone(timezone.utc).isoformat() if created else None,
            "age_s": _seconds(now, created) if created else None, "rpo_s": rpo, "stale": stale, "ok": not stale,
            "detail": detail, **extra}


def _local_row(settings: Settings, now: datetime, good: list[BackupRecord], error: str | None) -> dict[str, Any]:
    rpo = settings.backup.local_rpo
    due = last_backup_due(settings.jobs, settings.tz, now - timedelta(seconds=rpo))
    newest = good[-1] if good else None
    stale, detail = judge_local(newest, due, now, rpo, settings.tz)
    if error:
        stale, detail = True, f"cannot read the backup store: {error}"
    return _row("local", "local", str(settings.paths.backup_root), newest.id if newest else None,
                newest.created if newest else None, rpo, now, stale, detail,
                verified=newest.verified_ok if newest else None, error=error,
                due=due.time.astimezone(timezone.utc).isoformat() if due else None,
                due_entry=due.entry if due else None, scheduled=due is not None)


def _tier_row(tier: Tier, state: "State", now: datetime, good: list[BackupRecord]) -> dict[str, Any]:
    prefix = state_key(tier.name, "")
    copies = {key[len(prefix):]: value for key, value in state.items(prefix) if isinstance(value, dict)}
    verified = [Copy(backup_id, parsed.created) for backup_id, value in copies.items()
                if value.get("ok") is True and (parsed := parse_id(backup_id)) is not None]
    newest = max(verified, key=lambda c: (c.created, c.id), default=None)
    last_ok = max((v.get("time") or "" for v in copies.values() if v.get("ok") is True), default="")
    failures = sorted((v.get("time") or "", v.get("error") or "failed") for v in copies.values()
                      if v.get("ok") is False and (v.get("time") or "") > last_ok)
    old_enough = [r for r in good if r.created <= now - timedelta(seconds=tier.rpo)]
    lagging = old_enough[-1] if old_enough else None
    stale, detail = judge_tier(newest, lagging, now, tier.rpo)
    return _row(tier.name, tier.kind, tier.path, newest.id if newest else None, newest.created if newest else None,
                tier.rpo, now, stale, detail, error=failures[-1][1] if failures else None,
                lacks=lagging.id if stale and lagging else None)


def _seconds(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def _when(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"
