"""Writing one component into a staged backup: walk, compare with the parent's index, archive what changed,
write the new index (and, in public-key mode, its plaintext cache copy).

Per file: an unchanged file (index.unchanged) costs a stat and one index line copied from the parent; a new or
changed one is opened (O_NOFOLLOW|O_NONBLOCK: never follows a swapped-in link, never blocks on a swapped-in
FIFO), fstat'ed (its header announces that size) and copied. Live changes become warnings, never a broken archive.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import zstandard

from ..edges.gpg import Gpg
from ..errors import MaintdError
from . import archive, index, scan
from .catalog import Staging, crash_point
from .streams import CHUNK, ObjectInfo, ObjectWriter, storage_error

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)
INDEX_FLUSH = 1 << 20
PROGRESS_EVERY_S = 0.3

_LIVE_MESSAGES = {archive.SHRANK: "file shrank while read (padded with zeros)",
                  archive.GREW: "file grew while read (stored the size seen at open)",
                  archive.CHANGED: "file changed while read",
                  archive.READ_ERROR: "read error in the middle of the file (rest padded with zeros)"}


class ParentUnusable(MaintdError):
    """The parent's index could not be read to the end (damaged, wrong key): the job falls back to a full."""


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    root: str
    exclude: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    """For the `system` component: the absolute paths it holds (root is then "/")."""


@dataclass(frozen=True)
class Options:
    compression: str = "zstd"
    level: int | None = None
    threads: int = 0


@dataclass
class ComponentResult:
    name: str
    root: str
    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    stored_files: int = 0
    stored_bytes: int = 0
    excluded: int = 0
    objects: dict[str, ObjectInfo] = field(default_factory=dict)

    def manifest_entry(self, spec: ComponentSpec) -> dict[str, Any]:
        entry: dict[str, Any] = {"root": self.root, "files": self.files, "dirs": self.dirs, "others": self.others,
                                 "bytes": self.bytes, "stored_files": self.stored_files,
                                 "stored_bytes": self.stored_bytes, "excluded": list(spec.exclude),
                                 "excluded_entries": self.excluded}
        if spec.paths:
            entry["paths"] = list(spec.paths)
        return entry


class Tracker:
    """Counts progress across components and reports it at most every PROGRESS_EVERY_S."""

    def __init__(self, report: Callable[..., None], check_cancelled: Callable[[], None], *, total_bytes: int,
                 total_files: int) -> None:
        self._report = report
        self._check = check_cancelled
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.done_bytes = 0
        self.done_files = 0
        self._last = 0.0
        self.phase = "scan"

    def tick(self, files: int, size: int) -> None:
        self.done_files += files
        self.done_bytes += size
        if self.done_files & 255 == 0:
            self._check()
            now = time.monotonic()
            if now - self._last >= PROGRESS_EVERY_S:
                self._last = now
                self.emit()

    def poll(self) -> None:
        """Between chunks of a large file: honour cancellation, keep progress alive."""
        self._check()
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.emit()

    def emit(self, phase: str | None = None) -> None:
        if phase is not None:
            self.phase = phase
        self._report(phase=self.phase, done_bytes=self.done_bytes,
                     total_bytes=max(self.total_bytes, self.done_bytes), done_files=self.done_files,
                     total_files=max(self.total_files, self.done_files))


class _IndexOut:
    """Index lines -> the encrypted index object (and the plaintext cache copy), in ~1 MiB writes."""

    def __init__(self, writer: ObjectWriter, cache: Path | None) -> None:
        self._writer = writer
        self._lines: list[str] = []
        self._size = 0
        self._cache_path = cache
        self._cache_tmp = cache.with_name(cache.name + ".tmp") if cache is not None else None
        self._cache_handle: Any = None
        self._cache: Any = None
        if self._cache_tmp is not None:
            try:
                self._cache_tmp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._cache_handle = self._cache_tmp.open("wb")
            except OSError as err:
                raise storage_error(err, self._cache_tmp, "the index cache") from err
            self._cache = zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(
                self._cache_handle, write_size=CHUNK, closefd=False)

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= INDEX_FLUSH:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            data = "".join(self._lines).encode("utf-8")
            self._writer.write(data)
            if self._cache is not None:
                try:
                    self._cache.write(data)
                except OSError as err:
                    raise storage_error(err, self._cache_tmp or "", "the index cache") from err
            self._lines.clear()
            self._size = 0

    def close(self) -> ObjectInfo:
        self.flush()
        info = self._writer.close()
        if self._cache is not None and self._cache_tmp is not None and self._cache_path is not None:
            try:
                self._cache.close()
                self._cache_handle.flush()
                os.fsync(self._cache_handle.fileno())
                self._cache_handle.close()
                os.rename(self._cache_tmp, self._cache_path)
            except OSError as err:
                raise storage_error(err, self._cache_path, "the index cache") from err
        return info

    def abort(self) -> None:
        self._writer.abort()
        if self._cache_handle is not None:
            self._cache_handle.close()
            try:
                os.unlink(self._cache_tmp)  # type: ignore[arg-type]
            except OSError:
                pass


def entries_of(spec: ComponentSpec, warn: Callable[[str], None], stats: scan.ScanStats) -> Iterator[index.Entry]:
    if spec.paths:
        return scan.walk_paths(spec.paths, warn=warn, stats=stats)
    return scan.walk(os.fsencode(spec.root), scan.Excludes(spec.exclude), warn=warn, stats=stats)


def write_component(staging: Staging, gpg: Gpg, options: Options, spec: ComponentSpec, *, backup_id: str,
                    parent: Iterable[index.Entry] | None, cache: Path | None, warn: Callable[[str], None],
                    tracker: Tracker) -> ComponentResult:
    """Write ``<name>.tar.*.gpg`` and ``<name>.index.*.gpg`` into ``staging``. ``parent`` is the parent backup's
    index of this component (None: store everything). Raises ParentUnusable when the parent index fails."""
    suffix = "zst" if options.compression == "zstd" else "gz"
    archive_name = f"{spec.name}.tar.{suffix}.gpg"
    index_name = f"{spec.name}.index.{suffix}.gpg"
    result = ComponentResult(spec.name, spec.root)
    component_warn = _prefixed(warn, spec.name)
    archive_out = ObjectWriter(staging.object_path(archive_name), gpg, compression=options.compression,
                               level=options.level, threads=options.threads, what=archive_name)
    try:
        index_out = _IndexOut(ObjectWriter(staging.object_path(index_name), gpg, compression=options.compression,
                                           level=options.level, threads=-1, what=index_name), cache)
    except BaseException:
        archive_out.abort()
        raise
    try:
        index_out.add(index.encode_header(spec.name, spec.root, backup_id))
        tar = archive.TarWriter(archive_out.write, tracker.poll)
        stats = scan.ScanStats()
        lookup = index.Lookup(_guarded(parent)) if parent is not None else None
        _copy_tree(spec, entries_of(spec, component_warn, stats), tar, index_out, lookup, backup_id, result,
                   component_warn, tracker)
        result.excluded = stats.excluded
        tar.close()
        result.objects[archive_name] = archive_out.close()
        staging.finish_object(archive_name)
        result.objects[index_name] = index_out.close()
        staging.finish_object(index_name)
    except BaseException:
        archive_out.abort()
        index_out.abort()
        raise
    return result


def _copy_tree(spec: ComponentSpec, entries: Iterator[index.Entry], tar: archive.TarWriter, index_out: _IndexOut,
               lookup: index.Lookup | None, backup_id: str, result: ComponentResult, warn: Callable[[str], None],
               tracker: Tracker) -> None:
    prefix = os.fsencode(spec.root).rstrip(b"/") + b"/"
    encode = index.encode
    add_line = index_out.add
    seen = 0
    for entry in entries:
        if entry.type != index.FILE:
            tar.add(entry)
            add_line(encode(entry))
            if entry.type == index.DIR:
                result.dirs += 1
            else:
                result.others += 1
            tracker.tick(1, 0)
            continue
        previous = lookup.get(entry.path) if lookup is not None else None
        if previous is not None and index.unchanged(entry, previous):
            add_line(previous.line or encode(previous))
            result.files += 1
            result.bytes += previous.size
            tracker.tick(1, previous.size)
            continue
        if not _store_file(prefix, entry, tar, warn):
            continue
        entry.in_ = backup_id
        add_line(encode(entry))
        result.files += 1
        result.bytes += entry.size
        result.stored_files += 1
        result.stored_bytes += entry.size
        tracker.tick(1, entry.size)
        seen += 1
        if seen == 50:
            crash_point("in-archive")


def _store_file(prefix: bytes, entry: index.Entry, tar: archive.TarWriter, warn: Callable[[str], None]) -> bool:
    """Open, fstat and copy one file; False when it is left out (vanished, unreadable, no longer a file)."""
    path = prefix + entry.path
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS | _NOATIME)
        except PermissionError:
            fd = os.open(path, _OPEN_FLAGS)  # O_NOATIME needs ownership or CAP_FOWNER
    except FileNotFoundError:
        warn(f"file vanished before it was read: {entry.name}")
        return False
    except OSError as err:
        if err.errno == 40:  # ELOOP: a symlink was swapped in since the scan
            warn(f"file replaced by a symlink while backing up (left out): {entry.name}")
        else:
            warn(f"cannot open {entry.name}: {err.strerror}")
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            warn(f"no longer a regular file (left out): {entry.name}")
            return False
        entry.size, entry.mtime_ns, entry.ctime_ns, entry.ino = st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
        entry.mode, entry.uid, entry.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        try:
            outcome = tar.add_file(entry, fd)
        except OSError as err:
            warn(f"cannot read {entry.name}: {err.strerror}")
            return False
    finally:
        os.close(fd)
    if outcome != archive.OK:
        entry.warn = True
        warn(f"{_LIVE_MESSAGES[outcome]}: {entry.name}")
    return True


def _guarded(entries: Iterable[index.Entry]) -> Iterator[index.Entry]:
    try:
        yield from entries
    except MaintdError as err:
        raise ParentUnusable(f"the parent's index is unusable: {err.message}") from err


def _prefixed(warn: Callable[[str], None], component: str) -> Callable[[str], None]:
    return lambda message: warn(f"{component}: {message}")
