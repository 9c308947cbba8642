"""The retention planner on hand-written timelines: each rule keeps what it says and names itself."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from maintd.backup.retention import BackupRecord, period_key, plan, report_lines
from maintd.config import Retention

UTC = timezone.utc
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def bid(moment: datetime, kind: str) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + f"-{kind}"


class Timeline:
    """Builds records the way the backup writer chains them: differential on the newest full, incremental on
    the newest of any type."""

    def __init__(self) -> None:
        self.records: list[BackupRecord] = []

    def add(self, moment: datetime, kind: str, outcome: str = "succeeded",
            verified: bool | None = None) -> BackupRecord:
        parent: BackupRecord | None = None
        if kind == "differential":
            parent = next((r for r in reversed(self.records) if r.type == "full"), None)
        elif kind == "incremental":
            parent = self.records[-1] if self.records else None
        if kind != "full" and parent is None:
            raise AssertionError("a chain needs a full first")
        backup_id = bid(moment, kind)
        chain = (parent.members if parent else ()) + (backup_id,)
        record = BackupRecord(id=backup_id, type=kind, created=moment, parent=parent.id if parent else None,
                              chain=chain, outcome=outcome, verified_ok=verified)
        self.records.append(record)
        return record


def policy(**overrides: object) -> Retention:
    zero = dict(incremental_days=0, differential_days=0, full_days=0, daily=0, weekly=0, monthly=0, yearly=0)
    return Retention(**{**zero, **overrides})


def test_period_keys_follow_the_configured_zone_and_iso_weeks() -> None:
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert period_key("daily", moment, UTC) == "2026-12-31"
    assert period_key("daily", moment, berlin) == "2027-01-01"
    assert period_key("monthly", moment, berlin) == "2027-01"
    assert period_key("yearly", moment, berlin) == "2027"
    assert period_key("weekly", datetime(2026, 11, 26, tzinfo=UTC), UTC) == "2026-W48"
    assert period_key("weekly", datetime(2027, 1, 1, tzinfo=UTC), UTC) == "2026-W53"


def test_age_rule_keeps_young_backups_of_each_type_and_names_it() -> None:
    line = Timeline()
    old_full = line.add(NOW - timedelta(days=40), "full")
    full = line.add(NOW - timedelta(days=10), "full")
    old_inc = line.add(NOW - timedelta(days=9), "incremental")
    young_inc = line.add(NOW - timedelta(days=1), "incremental")
    result = plan(line.records, policy(incremental_days=7, full_days=30), NOW, UTC)
    assert "within 7 days (incremental)" in result.decision(young_inc.id).reasons
    assert "within 30 days (full)" in result.decision(full.id).reasons
    # The old incremental is the young one's parent: kept for the chain, and it says so.
    assert result.decision(old_inc.id).reasons == (f"parent of {young_inc.id}",)
    assert result.decision(old_full.id).reasons == ("older than 30 days (full) and no period rule keeps it",)
    assert result.delete_ids == (old_full.id,)


def test_daily_rule_keeps_one_per_day_for_the_last_n_days_with_backups() -> None:
    line = Timeline()
    for days in range(5, 0, -1):
        for hours in (6, 1):
            line.add(NOW - timedelta(days=days, hours=hours), "full")
    result = plan(line.records, policy(daily=3), NOW, UTC)
    kept_daily = {d.id: r for d in result.kept for r in d.reasons if r.startswith("daily ")}
    # Per day the newest (1 h before the mark beats 6 h), for the three newest days only.
    newest_of_day = [line.records[i].id for i in (9, 7, 5)]
    assert kept_daily == dict(zip(newest_of_day, ["daily 2026-12-02", "daily 2026-12-01", "daily 2026-11-30"]))
    assert result.keep_ids == set(newest_of_day)


def test_shortest_chain_pick_prefers_the_full_of_a_week_over_later_incrementals() -> None:
    line = Timeline()
    sunday = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # ISO week 48 ends on this Sunday
    monday = sunday - timedelta(days=6)
    line.add(monday, "full")
    full = line.add(sunday, "full")
    diff = line.add(sunday + timedelta(hours=2), "differential")
    inc = line.add(sunday + timedelta(hours=3), "incremental")
    shortest = plan(line.records, policy(weekly=1), NOW, UTC)
    assert "weekly 2026-W48" in shortest.decision(full.id).reasons
    # inc is the newest good backup (safety), diff its parent; the Monday full goes.
    assert shortest.keep_ids == {full.id, diff.id, inc.id}
    restic_like = plan(line.records, policy(weekly=1, period_pick="newest"), NOW, UTC)
    assert "weekly 2026-W48" in restic_like.decision(inc.id).reasons
    assert restic_like.decision(diff.id).reasons == (f"parent of {inc.id}",)


def test_newest_good_and_newest_verified_are_kept_even_with_an_all_zero_policy() -> None:
    line = Timeline()
    verified = line.add(NOW - timedelta(days=400), "full", verified=True)
    newest = line.add(NOW - timedelta(days=300), "full")
    result = plan(line.records, policy(), NOW, UTC)
    assert result.decision(verified.id).reasons == ("newest verified good backup",)
    assert result.decision(newest.id).reasons == ("newest good backup",)
    assert not result.deleted


def test_partial_backup_stays_within_its_age_limit_and_goes_once_older_and_superseded() -> None:
    line = Timeline()
    full = line.add(NOW - timedelta(days=40), "full")
    partial = line.add(NOW - timedelta(days=35), "full", outcome="partial")
    alone = plan(line.records, policy(daily=30, full_days=30), NOW, UTC)
    assert alone.decision(partial.id).reasons == ("partial, kept: no newer good backup",)
    later = line.add(NOW - timedelta(days=1), "full")
    after = plan(line.records, policy(daily=30, full_days=30), NOW, UTC)
    assert after.decision(partial.id).reasons == (f"partial: older than 30 days (full), superseded by {later.id}",)
    assert not after.decision(partial.id).keep
    young = plan(line.records, policy(daily=30, full_days=60), NOW, UTC)
    assert young.decision(partial.id).reasons == ("partial, kept: within 60 days (full)",)
    assert young.decision(full.id).keep  # partial backups never take a day's place from a good one


def test_backups_wrongly_marked_failed_are_not_deleted_by_the_next_good_backup() -> None:
    """The user trial: a verify with a mistyped passphrase marked every backup failed; the next backup's prune
    must not delete them all as superseded."""
    line = Timeline()
    marked = [line.add(NOW - timedelta(days=6), "full", verified=False)]
    marked += [line.add(NOW - timedelta(days=6, hours=-4 * i), "incremental", verified=False) for i in range(1, 5)]
    marked.append(line.add(NOW - timedelta(days=5), "differential", verified=False))
    marked += [line.add(NOW - timedelta(days=4, hours=-4 * i), "incremental", verified=False) for i in range(2)]
    newest = line.add(NOW - timedelta(hours=1), "full")
    default = Retention()
    result = plan(line.records, default, NOW, UTC)
    assert result.good == {newest.id}
    assert result.deleted == ()
    assert result.decision(marked[0].id).reasons[0] == "verify failed, kept: within 365 days (full)"
    assert result.decision(marked[-1].id).reasons == ("verify failed, kept: within 7 days (incremental)",)
    # A week on, the incrementals have passed their limit: they go, the full and differential stay.
    week = plan(line.records, default, NOW + timedelta(days=4), UTC)
    assert {marked[i].id for i in (1, 2, 3, 4, 6, 7)} == set(week.delete_ids)
    assert week.decision(marked[7].id).reasons == (
        f"verify failed: older than 7 days (incremental), superseded by {newest.id}",)


def test_failed_verify_makes_a_backup_and_its_dependents_bad() -> None:
    line = Timeline()
    good_full = line.add(NOW - timedelta(days=5), "full", verified=True)
    damaged = line.add(NOW - timedelta(days=4), "full", verified=False)
    inc = line.add(NOW - timedelta(days=3), "incremental")
    rules = policy(daily=30, full_days=3, incremental_days=2)
    result = plan(line.records, rules, NOW, UTC)
    assert result.good == {good_full.id}
    # Nothing good is newer than the damaged ones: they stay, as the most recent state there is.
    assert result.decision(inc.id).reasons == (
        f"chain member {damaged.id} failed verify, kept: no newer good backup",)
    assert result.decision(damaged.id).reasons == (
        "verify failed, kept: no newer good backup", f"parent of {inc.id}")
    assert result.decision(good_full.id).reasons[:2] == ("newest good backup", "newest verified good backup")
    newer = line.add(NOW - timedelta(days=1), "full")
    after = plan(line.records, rules, NOW, UTC)
    assert after.delete_ids == (inc.id, damaged.id)
    assert after.decision(inc.id).reasons == (
        f"chain member {damaged.id} failed verify: older than 2 days (incremental), superseded by {newer.id}",)


def test_kept_incremental_keeps_its_whole_chain() -> None:
    line = Timeline()
    full = line.add(NOW - timedelta(days=20), "full")
    incs = [line.add(NOW - timedelta(days=d), "incremental") for d in range(19, 0, -1)]
    result = plan(line.records, policy(incremental_days=2), NOW, UTC)
    assert result.keep_ids == {full.id, *(i.id for i in incs)}
    assert result.decision(full.id).reasons == (f"parent of {incs[0].id}",)


def test_missing_chain_member_makes_a_backup_bad_but_it_is_not_lost_while_nothing_newer_is_good() -> None:
    line = Timeline()
    line.add(NOW - timedelta(days=3), "full")
    inc = line.add(NOW - timedelta(days=2), "incremental")
    orphan = [r for r in line.records if r.id == inc.id]
    result = plan(orphan, policy(incremental_days=7), NOW, UTC)
    assert result.decision(inc.id).reasons == (f"chain incomplete: {line.records[0].id} missing, kept: within 7"
                                               " days (incremental), no newer good backup",)


def test_report_lists_every_backup_with_its_rules_and_reasons() -> None:
    line = Timeline()
    old = line.add(NOW - timedelta(days=400), "full")
    full = line.add(NOW - timedelta(days=2), "full")
    incs = [line.add(NOW - timedelta(hours=h), "incremental") for h in (40, 30, 20, 10, 5)]
    result = plan(line.records, policy(incremental_days=7, full_days=30), NOW, UTC)
    lines = report_lines(result, dry_run=True)
    assert lines[0] == f"would delete {old.id}: older than 30 days (full) and no period rule keeps it"
    assert lines[1] == f"keep    {full.id}: within 30 days (full); parent of {incs[0].id}"
    assert lines[-1].startswith(f"keep    {incs[-1].id}: newest good backup; within 7 days (incremental)")
    assert len(lines) == len(line.records)


def test_report_shortens_a_long_list_of_dependents() -> None:
    line = Timeline()
    full = line.add(NOW - timedelta(days=10), "full")
    diffs = [line.add(NOW - timedelta(days=d), "differential") for d in range(9, 0, -1)]
    result = plan(line.records, policy(differential_days=30), NOW, UTC)
    assert len([r for r in result.decision(full.id).reasons if r.startswith("parent of")]) == 9
    first = report_lines(result)[0]
    assert first.endswith(f"parent of {diffs[-3].id}, {diffs[-2].id}, {diffs[-1].id} and 6 more")


def test_duplicate_ids_are_refused() -> None:
    record = BackupRecord(id="x-full", type="full", created=NOW)
    with pytest.raises(ValueError, match="duplicate"):
        plan([record, record], policy(), NOW, UTC)
