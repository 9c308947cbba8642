"""The objectives of each place holding backups, as pure verdicts: a scheduled backup overdue (local), a tier
lagging the local store by more than its RPO."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from maintd.backup.retention import BackupRecord
from maintd.backup.tiers_status import Copy, Due, judge_local, judge_tier, last_backup_due
from maintd.config.core import JobSchedule, default_jobs

UTC = timezone.utc
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # a Thursday
RPO = 900.0


def record(moment: datetime, kind: str = "incremental") -> BackupRecord:
    return BackupRecord(id=moment.strftime("%Y%m%dT%H%M%S.%fZ") + f"-{kind}", type=kind, created=moment)


def local_at(now: datetime, newest: BackupRecord | None) -> tuple[bool, str]:
    due = last_backup_due(default_jobs(), UTC, now - timedelta(seconds=RPO))
    return judge_local(newest, due, now, RPO)


def test_the_default_calendar_is_due_at_its_latest_backup_entry() -> None:
    jobs = default_jobs()  # full Sunday 01:00, differential daily 03:00, incremental every 4 h
    assert last_backup_due(jobs, UTC, NOON) == Due("backup-incremental", NOON)
    assert last_backup_due(jobs, UTC, NOON.replace(hour=3, minute=30)) == Due("backup-differential",
                                                                              NOON.replace(hour=3))
    only_full = {**jobs, "backup-incremental": JobSchedule(job="backup", schedule="0 */4 * * *", enabled=False),
                 "backup-differential": JobSchedule(job="backup", schedule=None)}
    assert last_backup_due(only_full, UTC, NOON) == Due("backup-full", datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    assert last_backup_due({"verify": JobSchedule(schedule="* * * * *")}, UTC, NOON) is None


def test_a_backup_3_hours_old_with_the_next_due_in_an_hour_is_fine() -> None:
    stale, why = local_at(NOON - timedelta(hours=1), record(NOON - timedelta(hours=4)))
    assert not stale
    assert why.endswith("the last backup due (backup-incremental at 2026-12-03 08:00 UTC) was taken")


def test_a_scheduled_backup_late_by_more_than_the_objective_is_stale() -> None:
    newest = record(NOON - timedelta(hours=4))
    assert not local_at(NOON + timedelta(minutes=14), newest)[0]  # may still be running
    stale, why = local_at(NOON + timedelta(minutes=16), newest)
    assert stale
    assert why == (f"backup-incremental was due at 2026-12-03 12:00 UTC (16 min ago, 15 min late allowed) and no "
                   f"good backup was taken since; the newest good backup {newest.id} is 4.3 h old")
    assert not local_at(NOON + timedelta(minutes=16), record(NOON + timedelta(seconds=1)))[0]


def test_no_good_backup_is_stale_and_no_schedule_is_not() -> None:
    assert local_at(NOON, None) == (True, "no good backup; backup-incremental was due at 2026-12-03 08:00 UTC")
    stale, why = judge_local(record(NOON - timedelta(days=9)), None, NOON, RPO)
    assert not stale and why.startswith("no enabled backup schedule, nothing is due")


def test_a_tier_is_stale_when_it_lacks_a_good_backup_older_than_its_rpo() -> None:
    hour = 3600.0
    copied = Copy("a-full", NOON - timedelta(hours=8))
    lagging = record(NOON - timedelta(hours=2))
    assert judge_tier(copied, lagging, NOON, hour) == (
        True, f"lacks {lagging.id} (2 h old, RPO 1 h); newest verified copy a-full (8 h old)")
    assert judge_tier(Copy(lagging.id, lagging.created), lagging, NOON, hour) == (
        False, f"newest verified copy {lagging.id} (2 h old)")
    # An old copy is fine while nothing newer has had its RPO to arrive (backups every 4 h, RPO 1 h).
    assert judge_tier(copied, record(NOON - timedelta(hours=8)), NOON, hour)[0] is False
    assert judge_tier(None, None, NOON, hour) == (False, "nothing due yet (no good local backup older than 1 h)")
    assert judge_tier(None, lagging, NOON, hour)[0] is True
