"""Carrying a live tree's excluded entries over into the tree that replaces it.

Paths a component's ``exclude`` patterns match (``cache``, ``tmp``, ``*.log``) are never backed up, so a restored
tree does not have them. Before a swap puts the restored tree in place, each such entry of the live tree is renamed
into the new tree at the same relative path (same filesystem: a rename, nothing copied), so caches and logs stay
where the service expects them instead of vanishing into ``NAME.pre-restore.<time>``.

An entry is left in the old tree when the new tree already has something at that path, when its parent directory
does not exist in the new tree (the backup has no such directory: recreating it would undo a deletion), or when it
cannot be renamed (a mount point). Every path is walked with ``O_NOFOLLOW`` directory descriptors on both sides:
nothing is ever moved through a symlink.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .scan import Excludes

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Carried:
    moved: list[bytes] = field(default_factory=list)
    """Relative paths renamed from the old tree into the new one."""
    left: list[tuple[bytes, str]] = field(default_factory=list)
    """(relative path, why) of excluded entries that stayed in the old tree."""


def carry_over(source: Path, dest: Path, patterns: Iterable[str]) -> Carried:
    """Rename every entry below ``source`` that ``patterns`` exclude to the same relative path below ``dest``
    (an excluded directory moves whole). Both must be directories on one filesystem."""
    excludes = Excludes(patterns)
    carried = Carried()
    if not excludes or not os.path.isdir(source) or os.path.islink(source):
        return carried
    base = os.fsencode(source)
    with _Dirs(dest) as dirs:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(base):
            rel_dir = dirpath[len(base) + 1:] if dirpath != base else b""
            for name in [*dirnames, *filenames]:
                rel = rel_dir + b"/" + name if rel_dir else name
                if not excludes.match(rel, name):
                    continue
                if name in dirnames:
                    dirnames.remove(name)  # moved whole (or left whole): never descended
                why = _move(dirfd, name, dirs.open(tuple(rel_dir.split(b"/")) if rel_dir else ()))
                if why is None:
                    carried.moved.append(rel)
                else:
                    carried.left.append((rel, why))
    return carried


def _move(source_fd: int, name: bytes, dest_fd: int | None) -> str | None:
    if dest_fd is None:
        return "its directory is not in the restored tree"
    try:
        os.stat(name, dir_fd=dest_fd, follow_symlinks=False)
        return "the restored tree has an entry there"
    except FileNotFoundError:
        pass
    try:
        os.rename(name, name, src_dir_fd=source_fd, dst_dir_fd=dest_fd)
    except OSError as err:
        return f"cannot move it: {err.strerror}"
    return None


class _Dirs:
    """Directory fds below a root, opened component by component without following links (None: missing, not a
    directory, or a link)."""

    def __init__(self, root: Path) -> None:
        self._fds: dict[tuple[bytes, ...], int | None] = {(): os.open(root, _DIR_FLAGS)}

    def open(self, parts: tuple[bytes, ...]) -> int | None:
        if parts in self._fds:
            return self._fds[parts]
        parent = self.open(parts[:-1])
        fd = None
        if parent is not None:
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError:
                fd = None
        self._fds[parts] = fd
        return fd

    def __enter__(self) -> "_Dirs":
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self._fds.clear()


def would_carry(present: Iterable[bytes], wanted: Mapping[bytes, object], patterns: Iterable[str]) -> set[bytes]:
    """Of a live tree's paths, those a carry-over would move into a restored tree holding ``wanted`` (a dry run
    leaves them out of "removed"): under the first excluded component of their path, whose directory the restored
    tree has and whose path it does not."""
    excludes = Excludes(patterns)
    out: set[bytes] = set()
    if not excludes:
        return out
    for path in present:
        parts = path.split(b"/")
        for i in range(len(parts)):
            top = b"/".join(parts[:i + 1])
            if excludes.match(top, parts[i]):
                parent = b"/".join(parts[:i])
                if top not in wanted and (not parent or getattr(wanted.get(parent), "kind", None) == "d"):
                    out.add(path)
                break
    return out
