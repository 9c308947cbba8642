"""Reusable field types for the settings models: durations, cron expressions, the frozen strict base."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> Any:
    """``30``, ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"`` -> seconds as float. Other types pass to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 7d)")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; accepts a number or a string with a unit (ms, s, m, h, d, w)."""

_CRON_FIELD = re.compile(r"^[\w*/,\-]+$")


def check_cron(value: Any) -> Any:
    """A five-field crontab expression (minute hour day month day-of-week). Numeric day-of-week follows cron:
    0 and 7 are Sunday. The scheduler turns it into an APScheduler trigger; here we check its shape."""
    if not isinstance(value, str):
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"not a 5-field cron expression: {value!r} (minute hour day month day-of-week)")
    return value


Cron = Annotated[str, BeforeValidator(check_cron)]


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


NoneIfEmpty = BeforeValidator(_empty_is_none)
"""TOML has no null: an empty string turns an optional key off (`unit = ""`)."""
