"""What a copy of a backup must contain, and manifests as retention records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .catalog import MANIFEST, Manifest
from .retention import BackupRecord
from .tier_files import sha256_file


def object_sums(manifest: Manifest) -> dict[str, str]:
    """{object name: sha256} as the manifest records them."""
    return {name: info["sha256"] for name, info in manifest.objects.items()}


def expected_sums(manifest: Manifest, source_dir: Path | None) -> dict[str, str]:
    """Every file a copy must hold with its sha256: the objects, and (when the source is at hand) manifest.json
    itself, hashed from the source."""
    sums = object_sums(manifest)
    if source_dir is not None:
        sums[MANIFEST] = sha256_file(source_dir / MANIFEST)
    return sums


def record_of(manifest: Manifest, verified: dict[str, Any] | None) -> BackupRecord:
    """A retention record from a manifest and a verify (or tier copy) result ``{"ok": bool, "time": iso}``."""
    ok = verified.get("ok") if isinstance(verified, dict) else None
    when = verified.get("time") if isinstance(verified, dict) else None
    try:
        verified_time = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        verified_time = None
    return BackupRecord(id=manifest.id, type=manifest.type.value, created=manifest.created, parent=manifest.parent,
                        chain=manifest.chain, outcome=manifest.outcome,
                        verified_ok=ok if isinstance(ok, bool) else None, verified_time=verified_time)
