"""The backup store on disk (docs/FORMAT.md, "Layout"): committed backups, staging and atomic commit, chains,
deletion, the writer lock. Everything that reads backups goes through a Catalog.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import structlog

from . import durable
from .durable import fsync_dir
from ..errors import BusyError, IntegrityError, NotFoundError, StorageError
from ..model import BackupType
from .ids import parse_id, stamp_of
from .streams import ObjectInfo, storage_error

log = structlog.get_logger("maintd.backup")

MANIFEST = "manifest.json"
INCOMPLETE = ".incomplete"
DELETING = ".deleting"
LOCK = ".lock"
GOOD_OUTCOMES = ("succeeded", "warning")
CRASH_ENV = "MAINTD_TEST_CRASH_AT"


def crash_point(phase: str) -> None:
    """Test hook: when $MAINTD_TEST_CRASH_AT names this phase, the process kills itself with SIGKILL right here
    (what a power cut or kill -9 would do). Costs one dict look-up otherwise."""
    if os.environ.get(CRASH_ENV) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Manifest:
    id: str
    type: BackupType
    parent: str | None
    chain: tuple[str, ...]
    created: datetime
    finished: datetime | None
    outcome: str
    compression: str
    encryption: str
    components: dict[str, dict[str, Any]]
    objects: dict[str, dict[str, Any]]
    redis: dict[str, Any] | None
    warnings: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, where: str = "manifest") -> "Manifest":
        try:
            if raw.get("format") != 1:
                raise ValueError(f"unsupported format {raw.get('format')!r}")
            objects = {str(k): {"size": int(v["size"]), "sha256": str(v["sha256"])}
                       for k, v in raw["objects"].items()}
            return cls(
                id=str(raw["id"]), type=BackupType(raw["type"]), parent=raw.get("parent"),
                chain=tuple(raw["chain"]), created=datetime.fromisoformat(raw["created"]),
                finished=datetime.fromisoformat(raw["finished"]) if raw.get("finished") else None,
                outcome=str(raw["outcome"]), compression=str(raw.get("compression", "zstd")),
                encryption=str(raw.get("encryption", "symmetric")), components=dict(raw.get("components", {})),
                objects=objects, redis=raw.get("redis"), warnings=tuple(raw.get("warnings", ())), raw=raw)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise IntegrityError(f"{where}: damaged manifest ({err})") from err

    @property
    def good(self) -> bool:
        """Completed with everything (warnings allowed); partial backups (Redis missing) are not good."""
        return self.outcome in GOOD_OUTCOMES

    @property
    def size(self) -> int:
        return sum(o["size"] for o in self.objects.values())

    @property
    def files(self) -> int:
        return sum(int(c.get("files", 0)) for c in self.components.values())

    def object_info(self, name: str) -> ObjectInfo:
        try:
            entry = self.objects[name]
        except KeyError as err:
            raise NotFoundError(f"backup {self.id} has no object {name}") from err
        return ObjectInfo(entry["size"], entry["sha256"])

    def archive_name(self, component: str) -> str:
        return f"{component}.tar.{_suffix(self.compression)}.gpg"

    def index_name(self, component: str) -> str:
        return f"{component}.index.{_suffix(self.compression)}.gpg"

    def redis_name(self) -> str:
        return f"redis.rdb.{_suffix(self.compression)}.gpg"


def _suffix(compression: str) -> str:
    return {"zstd": "zst", "gzip": "gz"}.get(compression, compression)


def write_atomic(path: Path, data: bytes) -> None:
    """durable.write_atomic with our StorageError."""
    try:
        durable.write_atomic(path, data)
    except OSError as err:
        raise storage_error(err, path, path.name) from err


class Staging:
    """A backup being written: ``.incomplete/<id>/``. Invisible to readers until ``commit``."""

    def __init__(self, catalog: "Catalog", backup_id: str) -> None:
        self.catalog = catalog
        self.id = backup_id
        self.path = catalog.root / INCOMPLETE / backup_id
        try:
            self.path.mkdir(parents=True, mode=0o700)
        except OSError as err:
            raise storage_error(err, self.path, "the staging directory") from err

    def object_path(self, name: str) -> Path:
        return self.path / name

    def finish_object(self, name: str) -> None:
        """The object's ``.tmp`` was written and fsynced: give it its name."""
        try:
            os.rename(self.path / f"{name}.tmp", self.path / name)
        except OSError as err:
            raise storage_error(err, self.path / name, name) from err

    def commit(self, manifest: dict[str, Any]) -> Manifest:
        """Manifest last, then the atomic rename of the directory into place."""
        parsed = Manifest.from_dict(manifest, where=self.id)
        data = json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False).encode() + b"\n"
        write_atomic(self.path / MANIFEST, data)
        crash_point("before-rename")
        try:
            fsync_dir(self.path)
            os.rename(self.path, self.catalog.root / self.id)
            fsync_dir(self.catalog.root / INCOMPLETE)
            fsync_dir(self.catalog.root)
        except OSError as err:
            raise storage_error(err, self.catalog.root / self.id, f"backup {self.id}") from err
        return parsed

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Catalog:
    """Committed backups under ``root``. ``index_cache`` (state_dir/index-cache) holds plaintext index copies for
    hosts that cannot decrypt their own backups (public-key mode); ``delete`` removes a backup's copy too."""

    def __init__(self, root: Path, *, index_cache: Path | None = None) -> None:
        self.root = Path(root)
        self.index_cache = index_cache

    @classmethod
    def from_settings(cls, settings: Any) -> "Catalog":
        return cls(settings.paths.backup_root, index_cache=settings.paths.state_dir / "index-cache")

    # -- reading ------------------------------------------------------------------------------------------------
    def _read_manifest(self, directory: Path) -> Manifest:
        try:
            raw = json.loads((directory / MANIFEST).read_bytes())
        except FileNotFoundError as err:
            raise NotFoundError(f"backup {directory.name} not found") from err
        except (OSError, ValueError) as err:
            raise IntegrityError(f"backup {directory.name}: manifest unreadable ({err})") from err
        if not isinstance(raw, dict):
            raise IntegrityError(f"backup {directory.name}: manifest is not an object")
        manifest = Manifest.from_dict(raw, where=f"backup {directory.name}")
        if manifest.id != directory.name:
            raise IntegrityError(f"backup {directory.name}: manifest names {manifest.id}")
        return manifest

    def list(self) -> list[Manifest]:
        """Committed backups, oldest first. A directory whose manifest does not parse is skipped (and logged)."""
        try:
            names = sorted(n for n in os.listdir(self.root) if parse_id(n) is not None)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise StorageError(f"cannot list {self.root}: {err.strerror}") from err
        found = []
        for name in names:
            try:
                found.append(self._read_manifest(self.root / name))
            except NotFoundError:
                continue
            except IntegrityError as err:
                log.warning("backup.manifest_unreadable", backup_id=name, error=str(err))
        return found

    def unreadable(self) -> list[tuple[str, str]]:
        """Directories named like a backup whose manifest is missing or does not parse: (id, reason). Verify
        reports them; they are never listed or used."""
        try:
            names = sorted(n for n in os.listdir(self.root) if parse_id(n) is not None)
        except OSError:
            return []
        bad = []
        for name in names:
            try:
                self._read_manifest(self.root / name)
            except (NotFoundError, IntegrityError) as err:
                bad.append((name, err.message))
        return bad

    def get(self, backup_id: str) -> Manifest:
        if parse_id(backup_id) is None:
            raise NotFoundError(f"not a backup id: {backup_id!r}")
        return self._read_manifest(self.root / backup_id)

    def chain(self, backup_id: str) -> list[Manifest]:
        """Every backup a restore of ``backup_id`` needs, oldest first."""
        manifest = self.get(backup_id)
        chain = []
        for member in manifest.chain:
            if member == manifest.id:
                chain.append(manifest)
                continue
            try:
                chain.append(self.get(member))
            except NotFoundError as err:
                raise IntegrityError(f"backup {backup_id}: chain member {member} is missing") from err
        if not chain or chain[-1].id != manifest.id:
            raise IntegrityError(f"backup {backup_id}: its chain does not end with itself")
        return chain

    def object_path(self, backup_id: str, name: str) -> Path:
        return self.root / backup_id / name

    def latest(self, *, good_only: bool = True, before: datetime | None = None,
               type: BackupType | None = None) -> Manifest | None:
        for manifest in reversed(self.list()):
            if good_only and not manifest.good:
                continue
            if before is not None and manifest.created >= before:
                continue
            if type is not None and manifest.type != type:
                continue
            return manifest
        return None

    def stamp_taken(self, stamp: str) -> bool:
        """Whether any backup (committed, being written or being deleted) uses this id time stamp."""
        for directory in (self.root, self.root / INCOMPLETE, self.root / DELETING):
            try:
                if any(stamp_of(name) == stamp for name in os.listdir(directory)):
                    return True
            except FileNotFoundError:
                continue
        return False

    def cache_dir(self, backup_id: str) -> Path | None:
        return self.index_cache / backup_id if self.index_cache is not None else None

    # -- writing ------------------------------------------------------------------------------------------------
    def begin(self, backup_id: str) -> Staging:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise storage_error(err, self.root, "the backup root") from err
        return Staging(self, backup_id)

    def cleanup_incomplete(self) -> list[str]:
        """Remove leftovers of killed writers and deleters (call while holding ``writer_lock``). Also drops index
        cache copies of backups that no longer exist."""
        removed = []
        for sub in (INCOMPLETE, DELETING):
            directory = self.root / sub
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                shutil.rmtree(directory / name, ignore_errors=True)
                removed.append(name)
        if self.index_cache is not None and self.index_cache.is_dir():
            committed = {m for m in os.listdir(self.root) if parse_id(m)} if self.root.is_dir() else set()
            for name in os.listdir(self.index_cache):
                if name not in committed:
                    shutil.rmtree(self.index_cache / name, ignore_errors=True)
        if removed:
            log.info("backup.leftovers_removed", removed=removed)
        return removed

    def delete(self, backup_id: str) -> None:
        """Rename into ``.deleting/`` (atomic: never half-listed), then remove; the index cache copy goes too."""
        source = self.root / backup_id
        if parse_id(backup_id) is None or not source.is_dir():
            raise NotFoundError(f"backup {backup_id} not found")
        target_dir = self.root / DELETING
        try:
            target_dir.mkdir(exist_ok=True, mode=0o700)
            os.rename(source, target_dir / backup_id)
            fsync_dir(self.root)
        except OSError as err:
            raise StorageError(f"cannot delete backup {backup_id}: {err.strerror}") from err
        shutil.rmtree(target_dir / backup_id, ignore_errors=True)
        cache = self.cache_dir(backup_id)
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
        log.info("backup.deleted", backup_id=backup_id)

    @contextlib.contextmanager
    def writer_lock(self, *, wait: bool = False) -> Iterator[None]:
        """One writer per backup root (kernel flock on ``.lock``: released when the process dies). BusyError when
        another process holds it and ``wait`` is False."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise storage_error(err, self.root / LOCK, "the backup lock") from err
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as err:
                raise BusyError(f"another process writes to {self.root} (lock {self.root / LOCK})") from err
            yield
        finally:
            os.close(fd)
