"""The backup_age probe: is a scheduled backup overdue, does a tier lag behind its RPO, did the last drill fail?

The objectives are those of ``maintd.backup.tiers.status`` (docs/retention-and-tiers.md, "Status"): the local store
is stale when an enabled backup calendar entry was due more than ``backup.local_rpo`` ago and no good backup was
taken since; a tier when a good local backup older than its ``rpo`` is newer than its newest verified copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from ..backup import tiers_status
from .result import DEGRADED, FAILED, OK, worst

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State

_BAD_DRILL_OUTCOMES = ("failed", "crashed", "timeout")


def judge_local(row: Mapping[str, Any]) -> tuple[str, str]:
    """The local row of the status: failed when stale (overdue, or no good backup); degraded when no backup is
    scheduled at all (nothing can be overdue, and nothing will be taken)."""
    if row["stale"]:
        return FAILED, f"local: {row['detail']}"
    if not row.get("scheduled"):
        return DEGRADED, f"local: {row['detail']}"
    return OK, str(row["detail"])


def judge_tiers(stale: list[Any]) -> tuple[str, str] | None:
    if not stale:
        return None
    names = [item.get("tier") or item.get("name") or str(item) if isinstance(item, dict) else str(item)
             for item in stale]
    return FAILED, f"stale tier(s): {', '.join(names)}"


def judge_drill(last: Any) -> tuple[str, str] | None:
    """kv ``drill.last`` as the drill job writes it ({"time", "ok", "outcome"?, "error"?...}); None when fine."""
    if not isinstance(last, dict):
        return None
    bad = last.get("ok") is False or str(last.get("outcome", "")).lower() in _BAD_DRILL_OUTCOMES
    if not bad:
        return None
    why = last.get("error") or last.get("message") or last.get("summary") or "see `maintctl history drill`"
    return DEGRADED, f"last drill ({last.get('time', 'unknown time')}) failed: {why}"


def check_backups(settings: "Settings", state: "State", now: datetime) -> tuple[str, str]:
    rows = tiers_status.status(settings, state, now)
    parts = [judge_local(rows[0])]
    places = rows[1:]
    stale = judge_tiers([tiers_status.stale_line(row) for row in places if row["stale"]])
    if stale is not None:
        parts.append(stale)
    elif places:
        parts.append((OK, f"{len(places)} tier(s) within their RPO"))
    drill = judge_drill(state.get("drill.last"))
    if drill is not None:
        parts.append(drill)
    status = worst([s for s, _ in parts])
    return status, "; ".join(message for _, message in parts)
