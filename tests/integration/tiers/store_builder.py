"""Committed backups built through the real Catalog (staging, objects, manifest, atomic commit), with synthetic
object bytes: retention and tiers read manifests and copy/hash objects, they never decrypt them."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import structlog

from maintd.backup.catalog import Catalog, Manifest
from maintd.backup.ids import format_id
from maintd.config import Settings
from maintd.jobs.base import JobContext
from maintd.model import BackupType, Trigger
from maintd.state import State

UTC = timezone.utc


class Store:
    def __init__(self, root: Path) -> None:
        self.catalog = Catalog(root)
        self.made: list[Manifest] = []

    def add(self, created: datetime, kind: str, *, outcome: str = "succeeded", size: int = 4096) -> Manifest:
        """A committed backup chained as the writer chains them (differential on the newest full, incremental on
        the newest of any type)."""
        parent = None
        if kind == "differential":
            parent = next((m for m in reversed(self.made) if m.type is BackupType.FULL), None)
        elif kind == "incremental":
            parent = self.made[-1] if self.made else None
        backup_id = format_id(created, BackupType(kind))
        staging = self.catalog.begin(backup_id)
        objects = {}
        for name in ("data.tar.zst.gpg", "data.index.zst.gpg"):
            payload = (hashlib.sha256(f"{backup_id}/{name}".encode()).digest() * (size // 32 + 1))[:size]
            staging.object_path(f"{name}.tmp").write_bytes(payload)
            staging.finish_object(name)
            objects[name] = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
        manifest = staging.commit({
            "format": 1, "id": backup_id, "type": kind, "parent": parent.id if parent else None,
            "chain": [*(parent.chain if parent else ()), backup_id], "created": created.isoformat(),
            "finished": (created + timedelta(minutes=1)).isoformat(), "host": "test", "maintd_version": "0.1.0",
            "application_version": None, "outcome": outcome, "compression": "zstd", "encryption": "symmetric",
            "components": {"data": {"root": "/srv/data", "files": 3, "dirs": 1, "bytes": size,
                                    "stored_files": 3, "stored_bytes": size, "excluded": []}},
            "objects": objects, "redis": None, "warnings": []})
        self.made.append(manifest)
        return manifest

    def ids(self) -> list[str]:
        return [m.id for m in self.catalog.list()]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_ctx(settings: Settings, state: State, now: datetime | Clock, *, job: str = "backup",
             dry_run: bool = False) -> JobContext:
    """A JobContext as the runner builds one (what the backup job hands to replicate)."""
    events: list[tuple[str, dict[str, Any]]] = []
    ctx = JobContext(settings=settings, job=job, run_id="test-run", trigger=Trigger.MANUAL, state=state,
                     log=structlog.get_logger("maintd.test").bind(job=job), now=now if callable(now) else (lambda: now),
                     cancel_event=threading.Event(), dry_run=dry_run,
                     emit=lambda name, fields: events.append((name, fields)))
    ctx.events = events  # type: ignore[attr-defined]
    return ctx
