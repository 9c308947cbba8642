"""Disk space for a restore: the free-space preflight (what the plans will write, per filesystem, against
``statvfs``), and the clear error a write that still fails becomes (no space, quota, read-only, permissions).

The estimate: every file rounded up to the filesystem's block size, one block per directory, one inode per entry;
a swap builds a whole new tree beside the old one (both exist until the old one is removed), an in-place restore
into an existing directory writes each file through a temporary copy (so the growth of each file, plus the largest
file once); the Redis snapshot its size. Plus ``recovery.min_free_bytes`` kept free.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import StorageError
from .restore_plan import ComponentPlan
from ..units import human_bytes


@dataclass
class Space:
    """One filesystem a restore writes to: what it needs there and what was free before it started."""

    mount: str
    device: int
    block: int
    free_bytes: int
    free_inodes: int | None
    """None: the filesystem does not count inodes (btrfs, ...)."""
    need_bytes: int = 0
    need_inodes: int = 0
    paths: list[str] = field(default_factory=list)

    def text(self, margin: int = 0) -> str:
        kept = f" plus {human_bytes(margin)} kept free (recovery.min_free_bytes)" if margin else ""
        return f"need about {human_bytes(self.need_bytes)}{kept}, {human_bytes(self.free_bytes)} free"


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (what a new tree's filesystem is)."""
    path = path.absolute()
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def mount_of(path: Path) -> str:
    path = existing_ancestor(path)
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return str(path)


def _round(size: int, block: int) -> int:
    return -(-size // block) * block if size else 0


def tree_need(plan: ComponentPlan, block: int, existing: Mapping[bytes, tuple[str, int]] | None = None
              ) -> tuple[int, int]:
    """(bytes, inodes) writing ``plan`` takes: a whole new tree, or (``existing``: what an existing target holds at
    the plan's paths, kind and size; written file by file through temporary copies) the growth of each file plus
    the largest one once."""
    inodes = 1 + len(plan.dirs) + len(plan.links) + len(plan.fifos) + plan.file_count
    sizes = [(w.path, w.size) for group in plan.files.values() for w in group.values()]
    if existing is None:
        return sum(_round(s, block) for _, s in sizes) + block * (1 + len(plan.dirs)), inodes
    grow = 0
    for path, size in sizes:
        kind, old = existing.get(path, ("", 0))
        grow += max(0, _round(size, block) - (_round(old, block) if kind == "f" else 0))
    largest = max((_round(s, block) for _, s in sizes), default=0)
    new_dirs = sum(1 for w in plan.dirs if w.path not in existing)
    return grow + largest + block * new_dirs, inodes


def existing_entries(dest: Path, plan: ComponentPlan) -> dict[bytes, tuple[str, int]]:
    """What ``dest`` holds at the paths the plan writes (lstat each: never a walk of the whole target, which may
    be ``/`` for the system component)."""
    base = os.fsencode(dest)
    out: dict[bytes, tuple[str, int]] = {}
    wants = [*plan.dirs, *(w for group in plan.files.values() for w in group.values())]
    for want in wants:
        try:
            st = os.lstat(os.path.join(base, want.path))
        except OSError:
            continue
        kind = "f" if stat.S_ISREG(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "?"
        out[want.path] = (kind, st.st_size if kind == "f" else 0)
    return out


def measure(dest: Path) -> Space:
    """The filesystem ``dest`` is (or will be) on, with its free space now."""
    anchor = existing_ancestor(dest)
    try:
        st = os.stat(anchor)
        vfs = os.statvfs(anchor)
    except OSError as err:
        raise StorageError(f"cannot check the free space for {dest}: {err.strerror}") from err
    block = vfs.f_frsize or vfs.f_bsize or 4096
    return Space(mount_of(anchor), st.st_dev, block, vfs.f_bavail * block,
                 vfs.f_favail if vfs.f_files else None)


def add(spaces: dict[int, Space], dest: Path, need: tuple[int, int] | None = None, *, raw_bytes: int = 0) -> Space:
    """Account ``need`` (from ``tree_need``) or ``raw_bytes`` (a single file) at ``dest``'s filesystem."""
    space = measure(dest)
    space = spaces.setdefault(space.device, space)
    nbytes, inodes = need if need is not None else (_round(raw_bytes, space.block), 1)
    space.need_bytes += nbytes
    space.need_inodes += inodes
    space.paths.append(str(dest))
    return space


def needed(plans: Mapping[str, ComponentPlan], where: Mapping[str, Path], in_place: Mapping[str, bool],
           rdb: tuple[Path, int] | None = None) -> tuple[dict[int, Space], dict[Path, Space]]:
    """What each filesystem a restore writes to needs (the preflight), by device and by destination. ``in_place``:
    the component is written file by file into an existing directory; ``rdb``: (dir, size) of a Redis snapshot."""
    spaces: dict[int, Space] = {}
    by_dest: dict[Path, Space] = {}
    for component, plan in plans.items():
        dest = where[component]
        block = measure(dest).block
        need = tree_need(plan, block, existing_entries(dest, plan) if in_place[component] else None)
        by_dest[dest] = add(spaces, dest, need)
    if rdb is not None:
        by_dest[rdb[0]] = add(spaces, rdb[0], raw_bytes=rdb[1])
    return spaces, by_dest


def refusals(spaces: Mapping[int, Space], margin: int) -> list[str]:
    """Why the restore cannot fit (empty: it fits with ``margin`` bytes to spare on every filesystem)."""
    out = []
    for space in spaces.values():
        where = ", ".join(space.paths)
        if space.need_bytes + margin > space.free_bytes:
            out.append(f"not enough space on {space.mount} to restore {where}: {space.text(margin)}")
        if space.free_inodes is not None and space.need_inodes > space.free_inodes:
            out.append(f"not enough free inodes on {space.mount} to restore {where}: need about "
                       f"{space.need_inodes}, {space.free_inodes} free")
    return out


def write_error(err: OSError, dest: Path, space: Space | None) -> StorageError:
    """The clear error a failed write during a restore becomes."""
    mount = space.mount if space is not None else mount_of(dest)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left" if err.errno == errno.ENOSPC else "disk quota exceeded"
        need = f": {space.text()}" if space is not None else ""
        return StorageError(f"{what} on {mount} while restoring {dest}{need}")
    if err.errno == errno.EROFS:
        return StorageError(f"{mount} is mounted read-only: cannot restore {dest}")
    if err.errno in (errno.EACCES, errno.EPERM):
        name = f" ({os.fsdecode(err.filename)})" if err.filename else ""
        return StorageError(f"permission denied while restoring {dest}{name}: {err.strerror}")
    return StorageError(f"cannot write while restoring {dest}: {err.strerror or err}")
