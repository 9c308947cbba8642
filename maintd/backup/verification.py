"""Verifying a committed backup: every object decrypts and matches the manifest (size, sha256), every archive member
matches the index (type, mode, size, link target, content sha256) and every index entry this backup must store is
in the archive. With a sample percentage, only that share of file members has its content hashed (objects are
always decrypted and hashed whole). Problems name the backup, the object and the member.

Only damage is a problem. A key that cannot open the data (wrong passphrase, no secret key: GpgKeyError) says
nothing about the backup: it propagates, and the caller records nothing. (An object whose sha256 already showed
damage may fail in ways that look like a wrong key: that stays a problem of that object.)

The archive and the index are in the same path order, so the check is a merge of two streams: bounded memory.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..edges.gpg import Gpg, GpgKeyError
from ..errors import GpgError, IntegrityError, MaintdError
from . import index
from .catalog import Catalog, Manifest
from .reader import check_object
from .streams import CHUNK, open_payload
from .tar_reader import BLOCKDEV, CHAR, DIRECTORY, FIFO, SYMLINK, TarMember, TarReader

MAX_PROBLEMS = 200
PROGRESS_EVERY_S = 0.3
_TAR_TYPE = {index.DIR: DIRECTORY, index.SYMLINK: SYMLINK, index.FIFO: FIFO, index.CHAR: CHAR,
             index.BLOCK: BLOCKDEV}


@dataclass
class VerifyReport:
    backup_id: str
    level: str
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    members: int = 0
    hashed: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("... further problems not listed")

    def as_state(self, time: str) -> dict[str, Any]:
        """The value stored as kv ``verify.<id>`` (docs/INTERFACES.md)."""
        return {"time": time, "ok": self.ok, "level": self.level, "problems": list(self.problems),
                "objects": self.objects, "members": self.members, "hashed": self.hashed}


class _Progress:
    """Stored bytes walked through; reported at most every PROGRESS_EVERY_S, cancellation checked as often."""

    def __init__(self, report: Callable[..., None], check: Callable[[], None], phase: str, total: int) -> None:
        self.report, self.check, self.phase, self.total, self.done = report, check, phase, total, 0
        self.members = 0
        self._last = 0.0

    def add(self, size: int) -> None:
        self.done += size
        self.members += 1
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.check()
            self.report(phase=self.phase, done_bytes=self.done, total_bytes=max(self.total, self.done),
                        done_files=self.members)


def _is_expected_member(entry: index.Entry, backup_id: str) -> bool:
    """Whether the index says this backup's archive holds the entry (sockets have no tar form)."""
    if entry.type == index.FILE:
        return entry.in_ == backup_id
    return entry.type != index.SOCKET


def verify_backup(catalog: Catalog, gpg: Gpg, manifest: Manifest, *, sample: float | None = None,
                  rng: random.Random | None = None, progress: Callable[..., None] = lambda **kw: None,
                  check_cancelled: Callable[[], None] = lambda: None) -> VerifyReport:
    """Check one backup. ``sample`` (0-100): the share of file members whose content is hashed. Raises
    GpgKeyError when the configured key cannot open it (then nothing is known about the backup)."""
    report = VerifyReport(manifest.id, "full" if sample is None else "sample")
    rng = rng or random.Random()
    stored = sum(int(c.get("stored_bytes", 0)) for c in manifest.components.values())
    ticker = _Progress(progress, check_cancelled, f"verify:{manifest.id}", stored)
    where = f"backup {manifest.id}"
    try:
        catalog.chain(manifest.id)
    except MaintdError as err:
        report.problem(f"{where}: {err.message}")
    damaged: set[str] = set()
    for name in manifest.objects:
        report.objects += 1
        try:
            check_object(catalog, manifest.id, name, manifest)
        except IntegrityError as err:
            damaged.add(name)
            report.problem(err.message)
    chain = set(manifest.chain)
    for component, details in manifest.components.items():
        if details.get("missing"):
            continue
        _verify_component(catalog, gpg, manifest, component, chain, damaged, sample, rng, report, ticker)
    if manifest.redis:
        _verify_redis(catalog, gpg, manifest, damaged, report, ticker)
    return report


def _open(catalog: Catalog, gpg: Gpg, manifest: Manifest, name: str, damaged: set[str]) -> Any:
    # A damaged object is still decrypted (without the whole-file check, already reported) to find the member.
    expect = None if name in damaged else manifest.object_info(name)
    return open_payload(catalog.object_path(manifest.id, name), gpg, compression=manifest.compression,
                        expect=expect, what=f"backup {manifest.id} object {name}")


def _verify_component(catalog: Catalog, gpg: Gpg, manifest: Manifest, component: str, chain: set[str],
                      damaged: set[str], sample: float | None, rng: random.Random, report: VerifyReport,
                      ticker: _Progress) -> None:
    archive_name, index_name = manifest.archive_name(component), manifest.index_name(component)
    for name in (archive_name, index_name):
        if name not in manifest.objects:
            report.problem(f"backup {manifest.id}: object {name} missing from the manifest")
            return
    known_damage = bool({archive_name, index_name} & damaged)
    try:
        index_stream = _open(catalog, gpg, manifest, index_name, damaged)
    except GpgKeyError:
        raise
    except MaintdError as err:
        report.problem(err.message)
        return
    try:
        archive_stream = _open(catalog, gpg, manifest, archive_name, damaged)
    except GpgKeyError:
        index_stream.close()
        raise
    except MaintdError as err:
        index_stream.close()
        report.problem(err.message)
        return
    where = f"backup {manifest.id} object {archive_name}"
    current = "(before the first member)"
    try:
        try:
            header, entries = index.parse_lines(iter(index_stream), where=f"backup {manifest.id} object {index_name}")
            if header.get("component") != component or header.get("backup") != manifest.id:
                report.problem(f"backup {manifest.id} object {index_name}: header names "
                               f"{header.get('component')}/{header.get('backup')}")
            lookup = _Pending(entries)
            tar = TarReader(archive_stream)
            for member in tar:
                name = member.name.rstrip(b"/")
                current = name.decode("utf-8", "backslashreplace")
                report.members += 1
                for skipped in lookup.until(name):
                    if _is_expected_member(skipped, manifest.id):
                        report.problem(f"{where}: member {skipped.name!r} is in the index but not in the archive")
                entry = lookup.take(name)
                if entry is None:
                    report.problem(f"{where}: member {current!r} is not in the index")
                    continue
                _compare(tar, member, entry, manifest.id, where, current, sample, rng, report)
                ticker.add(member.size)
                if entry.type == index.FILE and entry.in_ not in chain:
                    report.problem(f"{where}: member {current!r} names {entry.in_}, not in the chain")
            current = "(after the last member)"
            for rest in lookup.rest():
                if _is_expected_member(rest, manifest.id):
                    report.problem(f"{where}: member {rest.name!r} is in the index but not in the archive")
                elif rest.type == index.FILE and rest.in_ not in chain:
                    report.problem(f"backup {manifest.id} object {index_name}: {rest.name!r} names {rest.in_}, "
                                   "not in the chain")
            _drain(archive_stream, ticker)
            _drain(index_stream, ticker)
        except GpgKeyError as err:
            if not known_damage:
                raise
            report.problem(f"{err.message} (while reading member {current!r} of {archive_name})")
        except (IntegrityError, GpgError) as err:
            report.problem(f"{err.message} (while reading member {current!r} of {archive_name})")
    finally:
        archive_stream.close()
        index_stream.close()


class _Pending:
    """The index entries not yet matched, consumed in path order; file entries held by ancestors are checked for
    their chain too."""

    def __init__(self, entries: Iterator[index.Entry]) -> None:
        self._entries = entries
        self._next: index.Entry | None = next(entries, None)

    def until(self, path: bytes) -> Iterator[index.Entry]:
        while self._next is not None and self._next.path < path:
            yield self._next
            self._next = next(self._entries, None)

    def take(self, path: bytes) -> index.Entry | None:
        if self._next is not None and self._next.path == path:
            entry = self._next
            self._next = next(self._entries, None)
            return entry
        return None

    def rest(self) -> Iterator[index.Entry]:
        while self._next is not None:
            yield self._next
            self._next = next(self._entries, None)


def _compare(tar: TarReader, member: TarMember, entry: index.Entry, backup_id: str, where: str, name: str,
             sample: float | None, rng: random.Random, report: VerifyReport) -> None:
    if entry.type == index.FILE:
        if not member.is_file:
            report.problem(f"{where}: member {name!r} is not a regular file, the index says it is")
            return
        if entry.in_ != backup_id:
            report.problem(f"{where}: member {name!r} is stored, but the index takes it from {entry.in_}")
        if member.size != entry.size:
            report.problem(f"{where}: member {name!r} has {member.size} bytes, the index says {entry.size}")
            return
        if sample is None or rng.random() * 100 < sample:
            digest = hashlib.sha256()
            while chunk := tar.read(CHUNK):
                digest.update(chunk)
                report.bytes += len(chunk)
            report.hashed += 1
            if digest.hexdigest() != entry.hash:
                report.problem(f"{where}: member {name!r}: content sha256 differs from the index")
    else:
        expected = _TAR_TYPE.get(entry.type)
        if member.type != expected:
            report.problem(f"{where}: member {name!r} has tar type {member.type!r}, the index says {entry.type}")
            return
        if entry.type == index.SYMLINK and member.linkname != entry.link:
            report.problem(f"{where}: symlink {name!r} points elsewhere than the index says")
    if (member.mode & 0o7777) != entry.mode:
        report.problem(f"{where}: member {name!r} has mode {member.mode & 0o7777:o}, the index says {entry.mode:o}")


def _drain(stream: Any, ticker: _Progress) -> None:
    while stream.read(CHUNK):
        pass


def _verify_redis(catalog: Catalog, gpg: Gpg, manifest: Manifest, damaged: set[str], report: VerifyReport,
                  ticker: _Progress) -> None:
    redis = manifest.redis or {}
    name = redis.get("object") or manifest.redis_name()
    if name not in manifest.objects:
        report.problem(f"backup {manifest.id}: the manifest records Redis but has no object {name}")
        return
    digest = hashlib.sha256()
    size = 0
    first = b""
    try:
        with _open(catalog, gpg, manifest, name, damaged) as stream:
            while chunk := stream.read(CHUNK):
                if not first:
                    first = chunk[:5]
                digest.update(chunk)
                size += len(chunk)
    except GpgKeyError as err:
        if name not in damaged:
            raise
        report.problem(err.message)
        return
    except (IntegrityError, GpgError) as err:
        report.problem(err.message)
        return
    if first != b"REDIS":
        report.problem(f"backup {manifest.id} object {name}: not an RDB file")
    if "rdb_size" in redis and size != redis["rdb_size"]:
        report.problem(f"backup {manifest.id} object {name}: RDB has {size} bytes, the manifest says "
                       f"{redis['rdb_size']}")
    if "rdb_sha256" in redis and digest.hexdigest() != redis["rdb_sha256"]:
        report.problem(f"backup {manifest.id} object {name}: RDB sha256 differs from the manifest")
