"""Our cron expressions as APScheduler 3 triggers, the catch-up rule and the last due time. Pure functions.

Below the runtime on purpose: the scheduler fires with these triggers, and health and the backup status use the same
translation to ask when a backup was last due.

Our expressions are crontab's five fields (minute hour day month day-of-week) where numeric day-of-week 0 and 7
mean Sunday. APScheduler 3's CronTrigger counts 0 as Monday, so day-of-week is rewritten into names. When both
day-of-month and day-of-week are restricted, cron runs on either (OR); APScheduler would need both (AND), so
that case becomes an OrTrigger of two CronTriggers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Mapping

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from .errors import ConfigError

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        value = int(token)
        if not 0 <= value <= 7:
            raise ValueError(f"day-of-week {token} is out of range 0-7")
        return value
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    if token in _FULL_NAMES:
        return _FULL_NAMES.index(token)
    raise ValueError(f"unknown day-of-week {token!r}")


def translate_day_of_week(field: str) -> str:
    """crontab day-of-week (numbers 0-7 with 0 and 7 = Sunday, names, ranges, steps, lists) -> the same days as
    an APScheduler list of names, e.g. "0" -> "sun", "1-5" -> "mon,tue,wed,thu,fri", "*/2" -> "sun,tue,thu,sat"."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        if not part:
            raise ValueError(f"empty item in day-of-week {field!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step in day-of-week {part!r}")
            step = int(step_text)
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first), _day(last)
            if high == 0 and low > 0:  # "fri-sun": Sunday ends the week here
                high = 7
            if high < low:
                raise ValueError(f"day-of-week range {base!r} runs backwards")
        else:
            low = _day(base)
            high = 7 if slash else low  # "1/2" means from Monday on, every second day
        days.update(day % 7 for day in range(low, high + 1, step))
    if days == set(range(7)):
        return "*"
    return ",".join(DAY_NAMES[day] for day in sorted(days))


def cron_trigger(expr: str, tz: tzinfo, *, entry: str | None = None) -> BaseTrigger:
    """The APScheduler trigger for a crontab expression in `tz`. ConfigError naming the entry when invalid."""
    where = f"jobs.{entry}.schedule" if entry else "schedule"
    fields = expr.split()
    try:
        if len(fields) != 5:
            raise ValueError("needs 5 fields: minute hour day month day-of-week")
        minute, hour, day, month, dow = fields
        day_of_week = translate_day_of_week(dow)
        day = "*" if day == "?" else day
        if not day.startswith("*") and not dow.startswith("*"):  # crontab: either day field may match
            return OrTrigger([CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=tz),
                              CronTrigger(minute=minute, hour=hour, month=month, day_of_week=day_of_week,
                                          timezone=tz)])
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=tz)
    except ValueError as err:
        message = f"{where}: invalid cron expression {expr!r}: {err}"
        raise ConfigError(message, [message]) from err


def next_fire_after(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    """The first fire time strictly after `moment`."""
    return trigger.get_next_fire_time(moment, moment)


# How far back last_fire_at_or_before looks, widening until it finds a fire: an hour first (an every-minute
# schedule walks 60 fires, not a day's 1440), at most five years (a yearly schedule).
_LOOK_BACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367),
              timedelta(days=5 * 366))


def last_fire_at_or_before(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    """The newest fire time not after `moment` (APScheduler 3 only steps forward: walk forward from a window before
    `moment`, widened until it holds a fire). None when the trigger never fired in the last five years."""
    for window in _LOOK_BACK:
        fire = trigger.get_next_fire_time(None, moment - window)
        if fire is None or fire > moment:
            continue
        while True:
            following = next_fire_after(trigger, fire)
            if following is None or following > moment:
                return fire
            fire = following
    return None


def missed_entries(entries: Mapping[str, str], last_fires: Mapping[str, datetime | None],
                   first_start: datetime | None, now: datetime, tz: tzinfo) -> list[str]:
    """Entries (key -> cron expression) with a fire time after their last recorded fire (or, never fired, after
    the daemon's first start) and not after `now`: each is run once, however many fires were missed. Ordered
    by the missed time."""
    due: list[tuple[datetime, str]] = []
    for key, expr in entries.items():
        reference = last_fires.get(key) or first_start
        if reference is None or reference >= now:
            continue
        moment = next_fire_after(cron_trigger(expr, tz, entry=key), reference)
        if moment is not None and moment <= now:
            due.append((moment, key))
    return [key for _, key in sorted(due)]
