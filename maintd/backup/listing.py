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


def chain_damage(manifest: Manifest, present: set[str], state: Any) -> str | None:
    """The first ancestor in this backup's chain that is missing from the store or failed its last verify
    ("<id> missing" / "<id> failed verify"), None when every ancestor is present and not known damaged."""
    for member in manifest.chain:
        if member == manifest.id:
            continue
        if member not in present:
            return f"{member} missing"
        result = state.get(f"verify.{member}")
        if isinstance(result, dict) and result.get("ok") is False:
            return f"{member} failed verify"
    return None


def _verified_with_chain(manifest: Manifest, present: set[str], state: Any) -> dict[str, Any] | None:
    """The backup's own verify result, overridden when its chain is damaged: then ``ok`` is False (a restore of it
    would fail) and ``chain_damaged`` names the ancestor; ``self_ok`` keeps its own result (None: never verified)."""
    own = _verified(state, manifest.id)
    damage = chain_damage(manifest, present, state)
    if damage is None:
        return own
    return {"time": own["time"] if own else None, "ok": False, "level": own["level"] if own else None,
            "self_ok": own["ok"] if own else None, "chain_damaged": damage}


def _tiers(state: Any, backup_id: str) -> dict[str, Any]:
    found = {}
    for key, value in state.items("tier."):
        parts = key.split(".", 2)
        if len(parts) == 3 and parts[2] == backup_id and isinstance(value, dict):
            found[parts[1]] = {"time": value.get("time"), "ok": bool(value.get("ok"))}
    return found


def row(manifest: Manifest, state: Any, present: set[str] | None = None) -> dict[str, Any]:
    """``present``: ids of the backups in the store (to find missing chain members); None reads nothing more and
    treats every chain member as present."""
    present = set(manifest.chain) if present is None else present
    return {"id": manifest.id, "type": manifest.type.value, "parent": manifest.parent,
            "created": manifest.created.isoformat(), "size": manifest.size, "files": manifest.files,
            "outcome": manifest.outcome, "verified": _verified_with_chain(manifest, present, state), "chain": len(manifest.chain),
            "warnings": len(manifest.warnings)}


def describe_backups(settings: Any, state: Any) -> list[dict[str, Any]]:
    """One row per committed backup, oldest first: id, type, parent, created, size, files, outcome, verified
    (None or {time, ok, level}; with a missing or failed-verify ancestor {time, ok: False, level, self_ok,
    chain_damaged: "<id> missing" | "<id> failed verify"}), chain length, warning count."""
    catalog = Catalog.from_settings(settings)
    manifests = catalog.list()
    present = {m.id for m in manifests}
    return [row(m, state, present) for m in manifests]


def describe_backup(settings: Any, state: Any, backup_id: str) -> dict[str, Any]:
    """Everything about one backup: its manifest, its chain (and whether it is complete), warnings, the last verify
    result with its problems, tier copies. NotFoundError for an unknown id."""
    catalog = Catalog.from_settings(settings)
    manifest = catalog.get(backup_id)
    present = {m.id for m in catalog.list()}
    try:
        chain = [m.id for m in catalog.chain(backup_id)]
        chain_problem = None
    except MaintdError as err:
        chain = list(manifest.chain)
        chain_problem = err.message
    verify = state.get(f"verify.{backup_id}")
    return {**row(manifest, state, present), "manifest": manifest.raw, "chain": chain, "chain_problem": chain_problem,
            "warnings": list(manifest.warnings), "verify": verify if isinstance(verify, dict) else None,
            "tiers": _tiers(state, backup_id)}
