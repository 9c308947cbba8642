"""Scanning and removing under a cleanup root with directory file descriptors, never following a symlink.

The root is opened once (a root that is itself a symlink is followed: that is the operator's choice of root);
everything below is reached with ``O_NOFOLLOW`` relative to its parent's descriptor, so a directory swapped for a
symlink between scan and removal makes the open fail (ELOOP) instead of leading out of the root. A symlink entry
is removed as a link (unlink), its target untouched. Directories are removed with ``shutil.rmtree(dir_fd=...)``,
which on Linux walks by descriptors and does not follow symlinks either.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from typing import Callable

from .plan import DEVICE, DIR, FILE, OTHER, SYMLINK, Deletion, Entry

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHILD_FLAGS = _DIR_FLAGS | os.O_NOFOLLOW


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return DEVICE
    return OTHER


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Totals:
    newest: float
    size: int = 0
    files: int = 0
    dirs: int = 0


def open_root(root: str) -> int:
    """A descriptor for the root directory (OSError when missing or not a directory)."""
    return os.open(root, _DIR_FLAGS)


def scan(root_fd: int, root_name: str, *, descend: Callable[[str], bool], emit_nested: bool) -> Scan:
    """Entries under the root: the top level always; below it only when ``emit_nested`` (recursive rules).
    Directories for which ``descend(relpath)`` is true are walked to learn their newest content and size."""
    result = Scan()
    _walk(root_fd, "", root_name, result, descend=descend, emit=True, emit_nested=emit_nested)
    return result


def _walk(fd: int, prefix: str, shown: str, result: Scan, *, descend: Callable[[str], bool], emit: bool,
          emit_nested: bool) -> _Totals:
    totals = _Totals(newest=-math.inf)
    try:
        with os.scandir(fd) as listing:
            children = list(listing)
    except OSError as err:
        result.problems.append(f"cannot list {shown}: {err.strerror}")
        totals.newest = math.inf  # unknown content: never old enough to remove
        return totals
    for child in children:
        rel = prefix + child.name
        try:
            info = child.stat(follow_symlinks=False)
        except OSError as err:
            if err.errno != 2:  # gone meanwhile is fine
                result.problems.append(f"cannot stat {shown}/{child.name}: {err.strerror}")
            continue
        kind = kind_of(info.st_mode)
        entry_totals = _Totals(newest=info.st_mtime, size=info.st_size if kind == FILE else 0,
                               files=0 if kind == DIR else 1, dirs=1 if kind == DIR else 0)
        if kind == DIR and (not emit or descend(rel)):  # inside a subtree being totalled: walk all of it
            inner = _open_child(fd, child.name, f"{shown}/{child.name}", result)
            if inner is None:
                entry_totals.newest = math.inf
            else:
                try:
                    sub = _walk(inner, rel + "/", f"{shown}/{child.name}", result, descend=descend,
                                emit=emit and emit_nested, emit_nested=emit_nested)
                finally:
                    os.close(inner)
                entry_totals.newest = max(entry_totals.newest, sub.newest)
                entry_totals.size += sub.size
                entry_totals.files += sub.files
                entry_totals.dirs += sub.dirs
        elif kind == DIR:
            entry_totals.newest = math.inf  # not walked: its content is unknown (never removed unwalked)
        if emit:
            result.entries.append(Entry(path=rel, kind=kind, mtime=info.st_mtime, newest=entry_totals.newest,
                                        size=entry_totals.size, files=entry_totals.files, dirs=entry_totals.dirs))
        totals.newest = max(totals.newest, entry_totals.newest)
        totals.size += entry_totals.size
        totals.files += entry_totals.files
        totals.dirs += entry_totals.dirs
    return totals


def _open_child(fd: int, name: str, shown: str, result: Scan) -> int | None:
    try:
        return os.open(name, _CHILD_FLAGS, dir_fd=fd)
    except OSError as err:
        result.problems.append(f"cannot open {shown}: {err.strerror}")
        return None


class Changed(Exception):
    """The entry is not what the scan saw any more: left alone."""


def remove(root_fd: int, deletion: Deletion) -> None:
    """Remove one planned entry below the root. Raises OSError (with the failing path) or Changed."""
    parts = deletion.entry.path.split("/")
    fds: list[int] = []
    parent = root_fd
    try:
        for part in parts[:-1]:
            parent = os.open(part, _CHILD_FLAGS, dir_fd=parent)  # ELOOP if a dir became a symlink
            fds.append(parent)
        name = parts[-1]
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        kind = kind_of(info.st_mode)
        if kind != deletion.entry.kind or info.st_mtime != deletion.entry.mtime:
            raise Changed(f"{deletion.entry.path} changed since the scan")
        if kind == DIR:
            errors: list[str] = []

            def collect(function: object, path: str, exc_info: object) -> None:
                error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
                errors.append(f"{path}: {getattr(error, 'strerror', None) or error}")

            if sys.version_info >= (3, 12):
                shutil.rmtree(name, dir_fd=parent, onexc=collect)
            else:
                shutil.rmtree(name, dir_fd=parent, onerror=collect)
            if errors:
                raise OSError(f"partly removed {deletion.entry.path}: {'; '.join(errors[:3])}"
                              + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""))
        else:
            os.unlink(name, dir_fd=parent)
    finally:
        for fd in reversed(fds):
            os.close(fd)
