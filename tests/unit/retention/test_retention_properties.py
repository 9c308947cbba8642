"""Properties of the retention planner over synthetic timelines (hypothesis)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from maintd.backup.retention import PERIODS, BackupRecord, badness, plan
from maintd.config import Retention

UTC = timezone.utc
START = datetime(2024, 1, 1, tzinfo=UTC)
ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Pacific/Auckland")]

step = st.tuples(
    st.integers(min_value=1, max_value=24 * 40),  # hours since the previous backup: hours up to weeks
    st.sampled_from(["full", "differential", "incremental", "incremental", "incremental"]),
    st.sampled_from(["succeeded", "succeeded", "succeeded", "warning", "partial"]),
    st.sampled_from([None, None, True, False]),
)


@st.composite
def timelines(draw: st.DrawFn) -> list[BackupRecord]:
    """Backups chained as the writer chains them; some members then lost (a damaged store)."""
    records: list[BackupRecord] = []
    moment = START
    for hours, kind, outcome, verified in draw(st.lists(step, max_size=45)):
        moment += timedelta(hours=hours)
        parent = None
        if kind == "differential":
            parent = next((r for r in reversed(records) if r.type == "full"), None)
        elif kind == "incremental":
            parent = records[-1] if records else None
        if parent is None:
            kind = "full"
        backup_id = moment.strftime("%Y%m%dT%H%M%S.%fZ") + f"-{kind}"
        records.append(BackupRecord(id=backup_id, type=kind, created=moment, parent=parent.id if parent else None,
                                    chain=(parent.members if parent else ()) + (backup_id,), outcome=outcome,
                                    verified_ok=verified))
    lost = draw(st.sets(st.integers(min_value=0, max_value=max(len(records) - 1, 0)), max_size=2))
    if draw(st.booleans()):
        lost = set()
    return [r for i, r in enumerate(records) if i not in lost]


policies = st.builds(
    Retention,
    incremental_days=st.integers(0, 10), differential_days=st.integers(0, 40), full_days=st.integers(0, 400),
    daily=st.integers(0, 10), weekly=st.integers(0, 6), monthly=st.integers(0, 4), yearly=st.integers(0, 3),
    period_pick=st.sampled_from(["shortest_chain", "newest"]),
)


def now_after(records: list[BackupRecord], extra_hours: int) -> datetime:
    return (records[-1].created if records else START) + timedelta(hours=extra_hours)


common = settings(max_examples=150, deadline=None)


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_no_kept_backup_ever_loses_a_chain_member(records, policy, later, tz) -> None:
    result = plan(records, policy, now_after(records, later), tz)
    present = {r.id for r in records}
    for record in records:
        if record.id in result.keep_ids:
            assert {m for m in record.members if m in present} <= result.keep_ids


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_newest_good_and_newest_verified_good_survive(records, policy, later, tz) -> None:
    result = plan(records, policy, now_after(records, later), tz)
    by_id = {r.id: r for r in records}
    good = [r for r in records if badness(r, by_id) is None]
    assert result.good == {r.id for r in good}
    if good:
        assert good[-1].id in result.keep_ids
    verified = [r for r in good if r.verified_ok]
    if verified:
        assert verified[-1].id in result.keep_ids


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES), st.randoms())
def test_plan_is_deterministic_whatever_the_input_order(records, policy, later, tz, rnd: random.Random) -> None:
    now = now_after(records, later)
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert plan(shuffled, policy, now, tz) == plan(records, policy, now, tz)


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_period_rules_never_keep_more_than_their_count(records, policy, later, tz) -> None:
    result = plan(records, policy, now_after(records, later), tz)
    for kind in PERIODS:
        keys = [r for d in result.kept for r in d.reasons if r.startswith(f"{kind} ")]
        assert len(keys) <= getattr(policy, kind)
        assert len(keys) == len(set(keys))  # one backup per period


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_every_keep_beyond_the_rules_is_a_chain_or_safety_keep(records, policy, later, tz) -> None:
    result = plan(records, policy, now_after(records, later), tz)
    rule_prefixes = ("within ", "daily ", "weekly ", "monthly ", "yearly ")
    safety = ("newest good backup", "newest verified good backup")
    for item in result.decisions:
        assert item.reasons, item
        if item.keep:
            for reason in item.reasons:
                assert (reason.startswith(rule_prefixes) or reason in safety or reason.startswith(
                    ("parent of ", "in the chain of ")) or (item.id not in result.good and ", kept: " in reason)), reason
        if item.id not in result.good:  # bad backups never count for age or period rules
            assert not any(r.startswith(rule_prefixes) or r in safety for r in item.reasons)


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_deleting_the_planned_set_and_replanning_deletes_nothing_more(records, policy, later, tz) -> None:
    now = now_after(records, later)
    first = plan(records, policy, now, tz)
    remaining = [r for r in records if r.id in first.keep_ids]
    second = plan(remaining, policy, now, tz)
    assert second.deleted == ()
    assert second.keep_ids == first.keep_ids


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_bad_backups_go_only_past_their_age_limit_and_when_something_newer_is_good(records, policy, later,
                                                                                     tz) -> None:
    now = now_after(records, later)
    result = plan(records, policy, now, tz)
    by_id = {r.id: r for r in records}
    newest_good = max((by_id[i].created for i in result.good), default=None)
    limits = {"incremental": policy.incremental_days, "differential": policy.differential_days,
              "full": policy.full_days}
    for item in result.deleted:
        if item.id not in result.good:
            record = by_id[item.id]
            assert newest_good is not None and newest_good > record.created
            assert record.created <= now - timedelta(days=limits[record.type])
            assert f": older than {limits[record.type]} days ({record.type}), superseded by " in item.reasons[0]


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_a_kept_bad_backup_is_kept_for_its_age_its_recency_or_a_chain_only(records, policy, later, tz) -> None:
    """A bad backup is never the safety keep and fills no period: it stays for its type's age limit, while nothing
    good is newer, or because a kept backup needs it."""
    now = now_after(records, later)
    result = plan(records, policy, now, tz)
    by_id = {r.id: r for r in records}
    limits = {"incremental": policy.incremental_days, "differential": policy.differential_days,
              "full": policy.full_days}
    for item in result.kept:
        if item.id in result.good:
            continue
        for reason in item.reasons:
            assert ", kept: " in reason or reason.startswith(("parent of ", "in the chain of ")), item
            if ", kept: within " in reason:
                record = by_id[item.id]
                assert record.created > now - timedelta(days=limits[record.type])


@common
@given(timelines(), policies, st.integers(0, 24 * 400), st.sampled_from(ZONES))
def test_good_backups_younger_than_their_type_limit_are_kept(records, policy, later, tz) -> None:
    now = now_after(records, later)
    result = plan(records, policy, now, tz)
    limits = {"incremental": policy.incremental_days, "differential": policy.differential_days,
              "full": policy.full_days}
    for record in records:
        if record.id in result.good and record.created > now - timedelta(days=limits[record.type]):
            assert record.id in result.keep_ids
