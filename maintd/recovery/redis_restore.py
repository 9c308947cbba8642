"""Putting a backup's RDB under the maintained Redis: ask where it reads from, stop it, keep the current files aside,
place the snapshot, deal with append-only mode, start it, compare key counts with the manifest.

Append-only mode: an AOF overrides the RDB at start, and Redis 7 started with ``appendonly yes`` and no AOF starts
*empty* (it does not fall back to the RDB). Restarting it with different arguments is not possible through a
service manager, so we seed the AOF with the snapshot instead: Redis 7 gets a fresh ``appendonlydir`` whose
manifest names the RDB as its base file (``<name>.1.base.rdb``, exactly what BGREWRITEAOF itself produces with
``aof-use-rdb-preamble``) plus an empty increment; Redis 6 gets the RDB as ``appendonly.aof`` (an AOF with an RDB
preamble). Either way Redis loads the backup's dataset and keeps appending from there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..backup.durable import fsync_dir as _fsync_dir
from ..errors import IntegrityError, UnavailableError

ASIDE = "pre-restore"


@dataclass(frozen=True)
class RedisLayout:
    rdb: Path
    """The RDB file Redis loads at start (dir + dbfilename)."""
    appendonly: bool
    aof_dir: Path | None = None
    """Redis >= 7: the append-only directory (dir + appenddirname); None for a single-file AOF (Redis < 7)."""
    aof_name: str = "appendonly.aof"


def ask_layout(client: Any) -> RedisLayout:
    """Where a running Redis reads its data (a maintd.edges.redis.RedisClient)."""
    rdb = client.rdb_path()
    appendonly = (client.config_get("appendonly") or "no").lower() == "yes"
    dirname = client.config_get("appenddirname")
    name = client.config_get("appendfilename") or "appendonly.aof"
    return RedisLayout(rdb, appendonly, rdb.parent / dirname if dirname else None, name)


def configured_layout(rdb_path: Path | None, aof_dir: Path | None) -> RedisLayout | None:
    """The layout from recovery.redis_rdb_path / redis_aof_dir (used when Redis is down), None when unset."""
    if rdb_path is None:
        return None
    return RedisLayout(rdb_path, aof_dir is not None, aof_dir, "appendonly.aof")


def aside_moves(layout: RedisLayout, stamp: str) -> list[tuple[Path, Path]]:
    """(current, kept) renames that keep the present data files: the RDB and any AOF (file or dir)."""
    paths = [layout.rdb]
    if layout.aof_dir is not None:
        paths.append(layout.aof_dir)
    paths.append(layout.rdb.parent / layout.aof_name)
    return [(p, p.with_name(f"{p.name}.{ASIDE}.{stamp}")) for p in dict.fromkeys(paths)]


def aof_seed(layout: RedisLayout) -> list[tuple[Path, str]]:
    """Files that make Redis load the RDB in append-only mode: (path, "rdb" | "" | text to write)."""
    if not layout.appendonly:
        return []
    if layout.aof_dir is None:
        return [(layout.rdb.parent / layout.aof_name, "rdb")]
    base, incr = f"{layout.aof_name}.1.base.rdb", f"{layout.aof_name}.1.incr.aof"
    manifest = f"file {base} seq 1 type b\nfile {incr} seq 1 type i\n"
    return [(layout.aof_dir / base, "rdb"), (layout.aof_dir / incr, ""),
            (layout.aof_dir / f"{layout.aof_name}.manifest", manifest)]


def key_problems(expected: Mapping[str, int], found: Mapping[str, int], tolerance: float = 0.0) -> list[str]:
    """Differences between the manifest's key counts and what Redis loaded; a shortfall up to ``tolerance``
    (a share) per database is accepted, more keys than recorded never are."""
    problems = []
    for db in sorted(set(expected) | set(found)):
        want, got = int(expected.get(db, 0)), int(found.get(db, 0))
        if got > want or got < want - int(want * tolerance):
            problems.append(f"{db}: {got} keys loaded, the backup recorded {want}")
    return problems


def place_snapshot(layout: RedisLayout, write_rdb: Callable[[Path], int], stamp: str) -> list[str]:
    """With Redis stopped: move the current RDB/AOF aside, write the snapshot where Redis reads it (via
    ``write_rdb(tmp_path) -> bytes``), seed the AOF when append-only is on. Returns report lines."""
    notes = []
    owner = _owner_of(layout.rdb)
    for current, kept in aside_moves(layout, stamp):
        if os.path.lexists(current):
            os.rename(current, kept)
            notes.append(f"kept {current} as {kept.name}")
    layout.rdb.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.rdb.with_name(f".{layout.rdb.name}.restoring.{stamp}")
    try:
        size = write_rdb(tmp)
        _finish_file(tmp, owner)
        os.rename(tmp, layout.rdb)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    notes.append(f"placed the backup's RDB ({size} bytes) at {layout.rdb}")
    seeds = aof_seed(layout)
    if seeds and layout.aof_dir is not None:
        layout.aof_dir.mkdir(mode=0o755)
        _chown(layout.aof_dir, owner)
    for path, content in seeds:
        if content == "rdb":
            shutil.copyfile(layout.rdb, path)
        else:
            path.write_text(content)
        _finish_file(path, owner)
    if seeds:
        notes.append(f"seeded the append-only file with the snapshot ({seeds[0][0]})")
    _fsync_dir(layout.rdb.parent)
    return notes


def _owner_of(rdb: Path) -> tuple[int, int, int]:
    """Owner and mode for the new files: the old RDB's, else the directory's owner with mode 0640."""
    for path, mode in ((rdb, None), (rdb.parent, 0o640)):
        try:
            st = os.stat(path)
        except OSError:
            continue
        return st.st_uid, st.st_gid, mode if mode is not None else st.st_mode & 0o7777
    return os.geteuid(), os.getegid(), 0o640


def _finish_file(path: Path, owner: tuple[int, int, int]) -> None:
    _chown(path, owner)
    os.chmod(path, owner[2])
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _chown(path: Path, owner: tuple[int, int, int]) -> None:
    if os.geteuid() == 0:
        os.chown(path, owner[0], owner[1])




def require_layout(client_layout: RedisLayout | None, configured: RedisLayout | None, reason: str) -> RedisLayout:
    if client_layout is not None:
        return client_layout
    if configured is not None:
        return configured
    raise UnavailableError(f"cannot tell where Redis reads its data ({reason}); start it, or set "
                           "recovery.redis_rdb_path (and recovery.redis_aof_dir with appendonly yes)")


def check_loaded(expected: Mapping[str, int], found: Mapping[str, int], tolerance: float) -> None:
    problems = key_problems(expected, found, tolerance)
    if problems:
        raise IntegrityError("Redis key counts do not match the backup: " + "; ".join(problems))
