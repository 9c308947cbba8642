"""Recovery time against its objective: the numbers and the line operators read."""

from __future__ import annotations

from typing import Any


def human(seconds: float) -> str:
    """30 min, 2 h, 45 s."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def verdict(what: str, seconds: float, objective: float) -> tuple[dict[str, Any], str]:
    """(data for the run record, report line): "recovered data in 12.3 s (objective 30 min): met"."""
    met = seconds <= objective
    line = f"{what} in {seconds:.1f} s (objective {human(objective)}): {'met' if met else 'MISSED'}"
    return {"rto_s": round(seconds, 3), "objective_s": objective, "met": met}, line
