"""Pure planning for a backup run: which parent, which chain, which components, how much space, what manifest.
Values in, values out: every rule here is tested without a file system."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from ..model import BackupType
from ..units import human_bytes as _size
from .catalog import Manifest
from .writer import ComponentResult, ComponentSpec

SYSTEM = "system"
MAX_MANIFEST_WARNINGS = 1000


@dataclass(frozen=True)
class Plan:
    requested: BackupType
    type: BackupType
    parent: Manifest | None
    chain_before: tuple[str, ...]
    """The parent's chain (empty for a full): the new id is appended."""
    notes: tuple[str, ...] = ()
    """Why the type changed (missing parent...): become warnings."""


def choose_parent(manifests: Sequence[Manifest], requested: BackupType) -> Manifest | None:
    """Incremental: the newest committed backup of any type (partial ones too: their files are complete).
    Differential: the newest full. Full: none."""
    if requested == BackupType.FULL:
        return None
    for manifest in reversed(manifests):
        if requested == BackupType.INCREMENTAL or manifest.type == BackupType.FULL:
            return manifest
    return None


def plan_backup(manifests: Sequence[Manifest], requested: BackupType, *,
                unusable: dict[str, str] | None = None) -> Plan:
    """The plan for ``requested``. ``unusable`` maps backup ids known to be damaged (failed verify, missing chain
    member, unreadable index) to the reason: such a parent makes the run a full backup, said in ``notes``."""
    unusable = unusable or {}
    if requested == BackupType.FULL:
        return Plan(requested, BackupType.FULL, None, ())
    parent = choose_parent(manifests, requested)
    if parent is None:
        wanted = "full" if requested == BackupType.DIFFERENTIAL else "committed"
        return Plan(requested, BackupType.FULL, None, (),
                    (f"no {wanted} backup to base a {requested.value} backup on: taking a full backup",))
    if parent.id in unusable:
        return Plan(requested, BackupType.FULL, None, (),
                    (f"parent {parent.id} is unusable ({unusable[parent.id]}): taking a full backup",))
    return Plan(requested, requested, parent, tuple(parent.chain))


def components(target_components: Iterable[Any], extra_paths: Sequence[Any]) -> list[ComponentSpec]:
    """The configured components, plus `system` (root /) holding backup.extra_paths in every backup type."""
    specs = [ComponentSpec(c.name, str(c.path), tuple(c.exclude)) for c in target_components]
    if extra_paths:
        specs.append(ComponentSpec(SYSTEM, "/", (), tuple(str(p) for p in extra_paths)))
    return specs


def estimate_bytes(manifests: Sequence[Manifest], backup_type: BackupType, source_bytes: int | None) -> tuple[int, str]:
    """Space the new backup will take, and where the figure comes from: the last backup of the same type, else
    (a first full) the size of the source."""
    for manifest in reversed(manifests):
        if manifest.type == backup_type:
            return manifest.size, f"the last {backup_type.value} backup {manifest.id}"
    if backup_type != BackupType.FULL:
        for manifest in reversed(manifests):
            if manifest.type == BackupType.FULL:
                return manifest.size // 10, f"a tenth of the last full backup {manifest.id}"
    return source_bytes or 0, "the size of the source"


def space_problem(free: int, needed: int, min_free: int, source: str, root: str) -> str | None:
    """The refusal message when ``needed`` bytes plus ``min_free`` do not fit into ``free``; None if they do."""
    if needed + min_free <= free:
        return None
    return (f"not enough space under {root}: the backup needs about {_size(needed)} (estimate from {source}) and "
            f"backup.min_free_bytes asks {_size(min_free)} to stay free, but only {_size(free)} are free")


def redis_summary(redis: dict[str, Any]) -> str:
    """The manifest's Redis part for humans: ``db0=3 keys, RDB 161 B`` (``no keys`` for an empty dataset)."""
    keys = redis.get("keys") or {}
    counts = ", ".join(f"{db}={count} key{'' if count == 1 else 's'}" for db, count in sorted(keys.items()))
    size = redis.get("rdb_size")
    return f"{counts or 'no keys'}, RDB {_size(int(size)) if isinstance(size, int) else 'size unknown'}"


def outcome(warnings: Sequence[str], partial: bool) -> str:
    if partial:
        return "partial"
    return "warning" if warnings else "succeeded"


def capped(warnings: Sequence[str], limit: int = MAX_MANIFEST_WARNINGS) -> list[str]:
    if len(warnings) <= limit:
        return list(warnings)
    return list(warnings[:limit]) + [f"... and {len(warnings) - limit} more warnings"]


@dataclass
class ManifestInput:
    backup_id: str
    plan: Plan
    created: datetime
    finished: datetime
    host: str
    maintd_version: str
    application_version: str | None
    compression: str
    encryption: str
    specs: list[ComponentSpec]
    results: dict[str, ComponentResult]
    missing: dict[str, str] = field(default_factory=dict)
    """Optional components whose root was absent: name -> root."""
    objects: dict[str, Any] = field(default_factory=dict)
    """Extra objects (the Redis RDB): name -> ObjectInfo."""
    redis: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    partial: bool = False


def build_manifest(data: ManifestInput) -> dict[str, Any]:
    """The manifest of docs/FORMAT.md, as a JSON-able dict."""
    components: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    for spec in data.specs:
        if spec.name in data.missing:
            components[spec.name] = {"root": spec.root, "missing": True, "files": 0, "dirs": 0, "bytes": 0,
                                     "stored_files": 0, "stored_bytes": 0, "excluded": list(spec.exclude)}
            continue
        result = data.results[spec.name]
        components[spec.name] = result.manifest_entry(spec)
        for name, info in result.objects.items():
            objects[name] = {"size": info.size, "sha256": info.sha256}
    for name, info in data.objects.items():
        objects[name] = {"size": info.size, "sha256": info.sha256}
    plan = data.plan
    return {
        "format": 1,
        "id": data.backup_id,
        "type": plan.type.value,
        "requested_type": plan.requested.value,
        "parent": plan.parent.id if plan.parent is not None else None,
        "chain": [*plan.chain_before, data.backup_id],
        "created": data.created.isoformat(),
        "finished": data.finished.isoformat(),
        "host": data.host,
        "maintd_version": data.maintd_version,
        "application_version": data.application_version,
        "outcome": outcome(data.warnings, data.partial),
        "compression": data.compression,
        "encryption": data.encryption,
        "components": components,
        "objects": objects,
        "redis": data.redis,
        "warnings": capped(data.warnings),
    }
