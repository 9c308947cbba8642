"""What `maintctl backups` and `maintctl backup-show ID` print: rows and details from the catalog and state."""

from __future__ import annotations

from typing import Any

from ..errors import MaintdError
from .catalog import Catalog, Manifest


def _verified(state: Any, backup_id: str) -> dict[str, Any] | None:
    result = state.get(f"verify.{backup_id}")
    if not isinstance(result, dict):
        return None
    return {"time": result.get("time"), "ok": bool(result.get("ok")), "level": result.get("level")}


def _tiers(state: Any, backup_id: str) -> dict[str, Any]:
    found = {}
    for key, value in state.items("tier."):
        parts = key.split(".", 2)
        if len(parts) == 3 and parts[2] == backup_id and isinstance(value, dict):
            found[parts[1]] = {"time": value.get("time"), "ok": bool(value.get("ok"))}
    return found


def row(manifest: Manifest, state: Any) -> dict[str, Any]:
    return {"id": manifest.id, "type": manifest.type.value, "parent": manifest.parent,
            "created": manifest.created.isoformat(), "size": manifest.size, "files": manifest.files,
            "outcome": manifest.outcome, "verified": _verified(state, manifest.id), "chain": len(manifest.chain),
            "warnings": len(manifest.warnings)}


def describe_backups(settings: Any, state: Any) -> list[dict[str, Any]]:
    """One row per committed backup, oldest first: id, type, parent, created, size, files, outcome, verified
    (None or {time, ok, level}), chain length, warning count."""
    catalog = Catalog.from_settings(settings)
    return [row(m, state) for m in catalog.list()]


def describe_backup(settings: Any, state: Any, backup_id: str) -> dict[str, Any]:
    """Everything about one backup: its manifest, its chain (and whether it is complete), warnings, the last verify
    result with its problems, tier copies. NotFoundError for an unknown id."""
    catalog = Catalog.from_settings(settings)
    manifest = catalog.get(backup_id)
    try:
        chain = [m.id for m in catalog.chain(backup_id)]
        chain_problem = None
    except MaintdError as err:
        chain = list(manifest.chain)
        chain_problem = err.message
    verify = state.get(f"verify.{backup_id}")
    return {**row(manifest, state), "manifest": manifest.raw, "chain": chain, "chain_problem": chain_problem,
            "warnings": list(manifest.warnings), "verify": verify if isinstance(verify, dict) else None,
            "tiers": _tiers(state, backup_id)}
