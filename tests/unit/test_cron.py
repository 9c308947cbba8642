"""Cron translation (0 and 7 are Sunday) and the catch-up rule, without waiting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from maintd.errors import ConfigError
from maintd.cron import (cron_trigger, last_fire_at_or_before, missed_entries, next_fire_after,
                         translate_day_of_week)

UTC = timezone.utc
MONDAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize("field, expected", [
    ("0", "sun"), ("7", "sun"), ("1", "mon"), ("6", "sat"), ("sun", "sun"), ("SUN", "sun"), ("friday", "fri"),
    ("1-5", "mon,tue,wed,thu,fri"), ("0,6", "sun,sat"), ("5-7", "sun,fri,sat"), ("fri-sun", "sun,fri,sat"),
    ("*/2", "sun,tue,thu,sat"), ("1-5/2", "mon,wed,fri"), ("1/3", "sun,mon,thu"), ("0-7", "*"), ("*", "*"),
])
def test_day_of_week_follows_crontab_numbering(field, expected):
    assert translate_day_of_week(field) == expected


@pytest.mark.parametrize("field", ["8", "mo", "5-2", "*/0", "1,", "x-y"])
def test_bad_day_of_week_is_refused(field):
    with pytest.raises(ValueError):
        translate_day_of_week(field)


@pytest.mark.parametrize("dow", ["0", "7", "sun"])
def test_sunday_expressions_fire_on_sunday(dow):
    trigger = cron_trigger(f"0 1 * * {dow}", UTC)
    fire = next_fire_after(trigger, MONDAY)
    assert fire == datetime(2026, 3, 8, 1, 0, tzinfo=UTC) and fire.weekday() == 6


def test_trigger_runs_in_the_configured_timezone():
    tz = ZoneInfo("Europe/Berlin")
    fire = next_fire_after(cron_trigger("30 2 * * *", tz), datetime(2026, 6, 1, tzinfo=UTC))
    assert fire.tzinfo is not None and (fire.hour, fire.minute) == (2, 30)
    assert fire.astimezone(UTC).hour == 0  # CEST is UTC+2


def test_day_of_month_and_day_of_week_together_mean_either():
    trigger = cron_trigger("0 0 13 * 5", UTC)  # the 13th, and every Friday (cron OR)
    fires, moment = [], datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(4):
        moment = next_fire_after(trigger, moment)
        fires.append(moment.day)
    assert fires == [6, 13, 20, 27]  # Fridays 6, 13 (also the 13th), 20, 27


def test_invalid_expression_is_config_error_naming_the_entry():
    with pytest.raises(ConfigError) as caught:
        cron_trigger("61 * * * *", UTC, entry="backup-full")
    assert caught.value.problems[0].startswith("jobs.backup-full.schedule: invalid cron expression '61 * * * *'")
    with pytest.raises(ConfigError, match="5 fields"):
        cron_trigger("* * *", UTC, entry="x")


def test_catch_up_runs_a_missed_entry_once_whatever_was_missed():
    entries = {"health": "0 2 * * *", "weekly": "0 1 * * 0", "fresh": "0 3 * * *"}
    last = {"health": datetime(2026, 3, 1, 2, 0, 5, tzinfo=UTC), "weekly": datetime(2026, 3, 1, 1, tzinfo=UTC),
            "fresh": datetime(2026, 3, 4, 3, 0, 1, tzinfo=UTC)}
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)  # health missed 3 fires, weekly none, fresh ran today
    assert missed_entries(entries, last, None, now, UTC) == ["health"]
    last["health"] = now  # the catch-up run records its fire
    assert missed_entries(entries, last, None, now + timedelta(hours=1), UTC) == []


def test_never_fired_entries_count_from_the_first_start():
    entries = {"health": "0 2 * * *"}
    first = datetime(2026, 3, 1, 1, tzinfo=UTC)
    assert missed_entries(entries, {}, first, datetime(2026, 3, 1, 1, 59, tzinfo=UTC), UTC) == []
    assert missed_entries(entries, {}, first, datetime(2026, 3, 1, 2, 0, tzinfo=UTC), UTC) == ["health"]
    assert missed_entries(entries, {}, None, datetime(2026, 3, 9, tzinfo=UTC), UTC) == []  # first start ever


def test_missed_entries_are_ordered_by_missed_time():
    entries = {"late": "0 5 * * *", "early": "0 1 * * *"}
    last = {k: datetime(2026, 3, 1, 6, tzinfo=UTC) for k in entries}
    assert missed_entries(entries, last, None, datetime(2026, 3, 2, 6, tzinfo=UTC), UTC) == ["early", "late"]


# -- property: our trigger agrees with crontab semantics, checked by brute force --------------------------
def _expand(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int]:
    out: set[int] = set()
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            a, b = low, high
        elif "-" in base:
            a, b = (int(x) if x.isdigit() else names.index(x) for x in base.split("-"))
        else:
            a = int(base) if base.isdigit() else names.index(base)
            b = high if step else a
        out.update(range(a, b + 1, int(step or 1)))
    return out


def crontab_matcher(expr: str):
    """(day_ok(date), time_ok(hour, minute)) by crontab's own rules, parsed once."""
    minute, hour, day, month, dow = expr.split()
    names = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    days = {d % 7 for d in _expand(dow, 0, 7 if dow != "*" else 6, names)}
    doms, months = _expand(day, 1, 31), _expand(month, 1, 12)
    minutes, hours = _expand(minute, 0, 59), _expand(hour, 0, 23)
    either = not day.startswith("*") and not dow.startswith("*")

    def day_ok(moment: datetime) -> bool:
        dom_ok, dow_ok = moment.day in doms, (moment.weekday() + 1) % 7 in days
        return moment.month in months and ((dom_ok or dow_ok) if either else (dom_ok and dow_ok))

    return day_ok, lambda h, m: h in hours and m in minutes


def brute_force_next(expr: str, start: datetime) -> datetime:
    day_ok, time_ok = crontab_matcher(expr)
    moment = start + timedelta(minutes=1)
    while True:
        if not day_ok(moment):
            moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if time_ok(moment.hour, moment.minute):
            return moment
        moment += timedelta(minutes=1)


_dow_item = st.one_of(st.integers(0, 7).map(str), st.sampled_from(["sun", "mon", "fri", "sat"]),
                      st.tuples(st.integers(0, 6), st.integers(0, 7)).filter(lambda t: t[0] <= t[1])
                      .map(lambda t: f"{t[0]}-{t[1]}"),
                      st.integers(1, 3).map(lambda s: f"*/{s}"))
_dow = st.one_of(st.just("*"), st.lists(_dow_item, min_size=1, max_size=3).map(",".join))
_dom = st.one_of(st.just("*"), st.integers(1, 28).map(str), st.just("*/2"))
_expr = st.builds(lambda m, h, d, w: f"{m} {h} {d} * {w}", st.sampled_from(["0", "30", "*/15"]),
                  st.sampled_from(["*", "3", "1-5"]), _dom, _dow)


@hsettings(max_examples=60, deadline=None)
@given(expr=_expr, start=st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 1)))
def test_next_fire_matches_brute_force_crontab(expr, start):
    start = start.replace(second=0, microsecond=0, tzinfo=UTC)
    fire = next_fire_after(cron_trigger(expr, UTC), start)
    assert fire == brute_force_next(expr, start)


@hsettings(max_examples=40, deadline=None)
@given(expr=_expr, last=st.datetimes(datetime(2026, 1, 1), datetime(2026, 6, 1)),
       downtime=st.timedeltas(timedelta(0), timedelta(days=40)))
def test_catch_up_once_then_never_again(expr, last, downtime):
    last = last.replace(tzinfo=UTC)
    now = last + downtime
    missed = missed_entries({"e": expr}, {"e": last}, None, now, UTC)
    fire = next_fire_after(cron_trigger(expr, UTC), last)
    assert missed == (["e"] if fire is not None and fire <= now else [])
    assert missed_entries({"e": expr}, {"e": now}, None, now, UTC) == []


def test_last_fire_at_or_before_finds_the_newest_due_time_of_any_schedule() -> None:
    every_4h = cron_trigger("0 */4 * * *", UTC)
    assert last_fire_at_or_before(every_4h, MONDAY) == MONDAY  # 12:00 itself is a fire
    assert last_fire_at_or_before(every_4h, MONDAY + timedelta(hours=3, minutes=59)) == MONDAY
    every_minute = cron_trigger("* * * * *", UTC)
    assert last_fire_at_or_before(every_minute, MONDAY + timedelta(seconds=30)) == MONDAY
    sunday_full = cron_trigger("0 1 * * 0", UTC)
    assert last_fire_at_or_before(sunday_full, MONDAY) == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    quarterly = cron_trigger("0 6 1 1,4,7,10 *", UTC)
    assert last_fire_at_or_before(quarterly, MONDAY) == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    leap_day = cron_trigger("0 0 29 2 *", UTC)
    assert last_fire_at_or_before(leap_day, MONDAY) == datetime(2024, 2, 29, 0, 0, tzinfo=UTC)


def test_last_fire_at_or_before_follows_the_zone_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    daily_3am = cron_trigger("0 3 * * *", berlin)
    after_spring_forward = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # Berlin switched to CEST at 01:00 UTC
    assert last_fire_at_or_before(daily_3am, after_spring_forward) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


@hsettings(max_examples=60, deadline=None)
@given(st.sampled_from(["*/15 * * * *", "0 */4 * * *", "0 3 * * *", "0 1 * * sun", "30 2 1 * *", "5 4 * * 1-5"]),
       st.integers(min_value=0, max_value=60 * 24 * 400))
def test_nothing_fires_between_the_last_fire_and_the_moment(expr: str, minutes: int) -> None:
    trigger = cron_trigger(expr, UTC)
    moment = MONDAY + timedelta(minutes=minutes, seconds=7)
    last = last_fire_at_or_before(trigger, moment)
    assert last is not None and last <= moment
    following = next_fire_after(trigger, last)
    assert following is not None and following > moment
