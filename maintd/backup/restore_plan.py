"""Pure restore planning: which archive holds each file, what a restore would change in a directory, where each
component goes. Values in, values out: nothing here touches the disk. Which backup a restore uses is decided in
``restore_select.py``.

The restorer (``restorer.py``) acts on these plans; the restore, recover and drill jobs and the offline
``maintd restore`` share them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import IntegrityError, UsageError
from .extract import Meta, UnsafeMemberError, link_stays_inside, member_parts, show

REDIS = "redis"
"""The pseudo-component naming the Redis snapshot in `components` lists."""

REPORT_PATHS = 50
"""How many paths per kind of change a dry run lists (the counts are always complete)."""


class Want:
    """One index entry of the backup being restored, checked and ready to act on. Compact (a restore holds one
    per entry): the path as normalised bytes, the digest as 32 bytes, the source id shared between entries."""

    __slots__ = ("path", "kind", "mode", "uid", "gid", "mtime_ns", "size", "digest", "link", "source", "unsure")

    def __init__(self, path: bytes, kind: str, mode: int, uid: int, gid: int, mtime_ns: int, size: int = 0,
                 digest: bytes | None = None, link: bytes | None = None, source: str | None = None,
                 unsure: bool = False) -> None:
        self.path = path
        self.kind = kind  # f d l p s c b, as in the index
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime_ns = mtime_ns
        self.size = size
        self.digest = digest
        self.link = link
        self.source = source
        """Files: the backup whose archive holds the content (the index's `in`)."""
        self.unsure = unsure
        """The file changed while it was backed up: restored as stored, with a warning."""

    @property
    def parts(self) -> tuple[bytes, ...]:
        return tuple(self.path.split(b"/")) if self.path else ()

    @property
    def meta(self) -> Meta:
        return Meta(self.mode, self.uid, self.gid, self.mtime_ns)

    @property
    def sha256(self) -> str | None:
        return self.digest.hex() if self.digest is not None else None

    def __repr__(self) -> str:
        return f"Want({show(self.path)!r}, {self.kind!r}, source={self.source!r})"


@dataclass(frozen=True, slots=True)
class Present:
    """An entry found in a directory a restore would write (lstat, nothing followed)."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    link: bytes | None = None


@dataclass
class ComponentPlan:
    name: str
    dirs: list[Want] = field(default_factory=list)
    files: dict[str, dict[bytes, Want]] = field(default_factory=dict)
    """source backup id -> path -> entry: each archive is streamed once, only these members taken from it."""
    links: list[Want] = field(default_factory=list)
    fifos: list[Want] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Entries never restored (sockets: the program that listens recreates them), as report lines."""
    root_meta: Meta | None = None

    @property
    def file_count(self) -> int:
        return sum(len(group) for group in self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(w.size for group in self.files.values() for w in group.values())

    @property
    def sources(self) -> list[str]:
        return sorted(self.files)

    def wanted(self) -> dict[bytes, Want]:
        out = {w.path: w for w in (*self.dirs, *self.links, *self.fifos)}
        for group in self.files.values():
            out.update(group)
        return out


@dataclass(frozen=True)
class Changes:
    added: tuple[bytes, ...]
    changed: tuple[bytes, ...]
    removed: tuple[bytes, ...]

    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed)}

    def report(self, limit: int = REPORT_PATHS) -> dict[str, list[str]]:
        return {kind: [show(p) for p in paths[:limit]]
                for kind, paths in (("added", self.added), ("changed", self.changed), ("removed", self.removed))}


def parse_at(value: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` accepted); UsageError otherwise."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise UsageError(f"--at {value!r}: not an ISO 8601 time (e.g. 2026-12-03T17:30:00Z)") from err
    if moment.tzinfo is None:
        raise UsageError(f"--at {value!r}: give a time zone (e.g. ...Z or +01:00)")
    return moment


# -- what to write ------------------------------------------------------------------------------------------------
def plan_component(name: str, entries: Iterable[Want], chain: Sequence[str], *,
                   allow_symlinks_outside: bool = False) -> ComponentPlan:
    """Sort a component's index entries into the work a restore does. Refuses (before anything is written) an
    entry whose content lives outside the chain, a device node, and a symlink pointing out of the tree."""
    plan = ComponentPlan(name)
    files: dict[str, dict[bytes, Want]] = defaultdict(dict)
    in_chain = set(chain)
    for want in entries:
        if not want.path:
            if want.kind == "d":
                plan.root_meta = want.meta
                continue
            raise UnsafeMemberError(f"{name}: the index names the component root as a {want.kind!r} entry")
        if want.kind == "f":
            if want.source not in in_chain:
                raise IntegrityError(f"{name}: {show(want.path)!r} is stored in backup {want.source!r}, "
                                     f"which is not in the chain {', '.join(chain)}")
            files[want.source][want.path] = want
        elif want.kind == "d":
            plan.dirs.append(want)
        elif want.kind == "l":
            if want.link is None:
                raise IntegrityError(f"{name}: symlink {show(want.path)!r} has no target in the index")
            if not allow_symlinks_outside and not link_stays_inside(want.parts, want.link):
                raise UnsafeMemberError(
                    f"{name}: refused symlink {show(want.path)!r} -> {show(want.link)!r}: it points outside the "
                    "restored tree (set recovery.allow_symlinks_outside = true to restore such links)")
            plan.links.append(want)
        elif want.kind == "p":
            plan.fifos.append(want)
        elif want.kind == "s":
            plan.skipped.append(f"{name}: socket {show(want.path)} not restored (its program recreates it)")
        elif want.kind in ("c", "b"):
            raise UnsafeMemberError(f"{name}: refused device node {show(want.path)!r}: restores never create "
                                    "devices")
        else:
            raise IntegrityError(f"{name}: {show(want.path)!r} has unknown type {want.kind!r}")
    plan.dirs.sort(key=lambda w: w.path)
    plan.files = dict(files)
    return plan


_SOURCES: dict[str, str] = {}


def want_from_index(path: bytes, kind: str, *, mode: int, uid: int, gid: int, mtime_ns: int, size: int = 0,
                    sha256: str | None = None, link: bytes | None = None, source: str | None = None,
                    unsure: bool = False) -> Want:
    """A Want from index fields; the path is checked (absolute names and ``..`` refused) here."""
    parts = member_parts(path) if path not in (b"", b".") else ()
    normal = b"/".join(parts)
    try:
        digest = bytes.fromhex(sha256) if sha256 is not None else None
    except ValueError as err:
        raise IntegrityError(f"{show(path)!r}: the index holds a malformed hash") from err
    if source is not None:
        source = _SOURCES.setdefault(source, source)  # one string per backup id, not one per file
    return Want(normal, kind, mode, uid, gid, mtime_ns, size, digest, link, source, unsure)


def dirs_deepest_first(dirs: Iterable[Want]) -> list[Want]:
    """Directory metadata goes last and deepest first: writing below a directory changes its mtime."""
    return sorted(dirs, key=lambda w: (w.path.count(b"/"), w.path), reverse=True)


# -- what would change --------------------------------------------------------------------------------------------
def diff(wanted: Mapping[bytes, Want], present: Mapping[bytes, Present], *, owners: bool = True) -> Changes:
    """What restoring ``wanted`` over a directory holding ``present`` changes. A file counts as changed when its
    type, size, mtime, mode or owner differ (contents are not read: a same-size, same-mtime edit goes unseen);
    a directory when its mode or owner differ; a link when its target differs."""
    added, changed = [], []
    for path, want in wanted.items():
        have = present.get(path)
        if have is None:
            added.append(path)
        elif _differs(want, have, owners):
            changed.append(path)
    removed = [path for path in present if path not in wanted]
    return Changes(tuple(sorted(added)), tuple(sorted(changed)), tuple(sorted(removed)))


def _differs(want: Want, have: Present, owners: bool) -> bool:
    if want.kind != have.kind:
        return True
    if (want.mode & 0o7777) != (have.mode & 0o7777) and want.kind != "l":
        return True
    if owners and (want.uid, want.gid) != (have.uid, have.gid):
        return True
    if want.kind == "f":
        return want.size != have.size or want.mtime_ns != have.mtime_ns
    if want.kind == "l":
        return want.link != have.link
    return False


def removals(wanted: Mapping[bytes, Want], present: Mapping[bytes, Present]) -> list[tuple[bytes, ...]]:
    """Top-most entries ``--delete`` removes: present, not wanted, and not below something already removed.
    An entry whose type changed is replaced by the restore itself, not listed here."""
    out: list[tuple[bytes, ...]] = []
    for path in sorted(present):
        if path in wanted:
            continue
        parts = tuple(path.split(b"/"))
        if out and parts[:len(out[-1])] == out[-1]:
            continue
        out.append(parts)
    return out


# -- where ----------------------------------------------------------------------------------------------------
def destinations(components: Sequence[str], live: Mapping[str, Path], target: Path | None) -> dict[str, Path]:
    """Where each component goes: its live path (swap restore); with ``--target DIR`` a single component goes
    to DIR itself and several go to DIR/<name>."""
    if target is None:
        missing = [c for c in components if c not in live]
        if missing:
            raise UsageError(f"no live path known for component(s) {', '.join(missing)}: configure them "
                             "(target.components) or pass --target DIR / --component NAME=PATH")
        return {c: live[c] for c in components}
    if len(components) == 1:
        return {components[0]: target}
    return {c: target / c for c in components}


def side_names(live: Path, stamp: str, aside: str = "pre-restore") -> tuple[Path, Path]:
    """(staging, kept) paths beside ``live``: the new tree is built in the hidden staging dir on the same
    filesystem, then the live tree is renamed to ``NAME.<aside>.<stamp>`` and the staging dir to ``NAME``."""
    return (live.parent / f".{live.name}.restoring.{stamp}", live.parent / f"{live.name}.{aside}.{stamp}")


def stamp(moment: datetime) -> str:
    """A timestamp for file names: 20261203T173000Z."""
    return moment.strftime("%Y%m%dT%H%M%SZ")
