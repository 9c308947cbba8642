"""The backup_age probe: the newest good local backup against backup.local_rpo, stale tiers, the last drill.

The catalog (maintd.backup.catalog) and tiers (maintd.backup.tiers) are imported when the probe runs, so health
works in a build or a test that lacks them (the probe then says so, degraded).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..backup.ids import parse_id
from .result import DEGRADED, FAILED, OK, human_age, worst

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State

_BAD_DRILL_OUTCOMES = ("failed", "crashed", "timeout")


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        return None


def _created(manifest: Any) -> datetime | None:
    created = getattr(manifest, "created", None)
    if isinstance(created, datetime):
        return created
    backup_id = manifest.get("id") if isinstance(manifest, dict) else getattr(manifest, "id", None)
    parsed = parse_id(str(backup_id)) if backup_id else None
    return parsed.created if parsed else None


def judge_local(latest_created: datetime | None, now: datetime, rpo_s: float) -> tuple[str, str]:
    if latest_created is None:
        return FAILED, "no good local backup"
    age = (now - latest_created).total_seconds()
    verdict = FAILED if age > rpo_s else OK
    return verdict, f"newest good backup {human_age(age)} old (objective {human_age(rpo_s)})"


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
    parts: list[tuple[str, str]] = []
    catalog_module = _optional("maintd.backup.catalog")
    local: tuple[str, str] | None = None
    if catalog_module is None:
        parts.append((DEGRADED, "backup catalog not available in this build"))
    else:
        latest = catalog_module.Catalog.from_settings(settings).latest(good_only=True)
        local = judge_local(_created(latest) if latest is not None else None, now, settings.backup.local_rpo)
    tiers_module = _optional("maintd.backup.tiers")
    stale = (list(tiers_module.stale_tiers(settings, state, now))
             if tiers_module is not None and hasattr(tiers_module, "stale_tiers") else None)
    if stale:  # one line per stale place, the local store included ("local: ...")
        lines = [str(line) for line in stale]
        if local is not None and local[0] == FAILED and not any(line.startswith("local") for line in lines):
            lines.insert(0, local[1])
        parts.append((FAILED, "stale: " + "; ".join(lines)))
    elif local is not None:
        tiers = len(settings.backup.tiers)
        parts.append((local[0], local[1] + (f"; {tiers} tier(s) within their RPO" if tiers and stale is not None
                                            else "")))
    drill = judge_drill(state.get("drill.last"))
    if drill is not None:
        parts.append(drill)
    status = worst([s for s, _ in parts])
    return status, "; ".join(message for _, message in parts)
