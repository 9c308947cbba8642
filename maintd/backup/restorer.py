"""Acting on a restore plan: rebuild a component's tree from the archives of a chain, into a fresh staging dir
that is then swapped in, or into a target directory; check every file's hash on the way.

Order of work for one tree: directories (all, empty ones too), then each needed archive streamed once (oldest
backup first) taking only the members the plan wants from it, then fifos and symlinks (last: nothing is written
after a link exists), then ``--delete`` removals, then directory metadata deepest first.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Protocol, Sequence

from .durable import fsync_dir as _fsync_dir
from ..errors import IntegrityError, StorageError
from .catalog import crash_point
from .extract import _TMP_PREFIX, Meta, SafeTree, remove_leftover_temps, show
from .restore_carry import carry_over, would_carry
from .restore_plan import ComponentPlan, Present, Want, diff, dirs_deepest_first, removals, side_names
from .tar_reader import TarReader

PROGRESS_EVERY_S = 0.5

OpenArchive = Callable[[str], ContextManager[BinaryIO]]
"""backup id -> the plaintext tar stream of this component's archive in that backup."""


class Reporter(Protocol):
    """What the restore needs of its caller (a JobContext fits; the offline command has its own)."""

    def progress(self, **fields: Any) -> None: ...

    def warn(self, message: str, **fields: Any) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass
class TreeResult:
    component: str
    path: Path
    files: int = 0
    bytes: int = 0
    dirs: int = 0
    links: int = 0
    removed: int = 0
    kept: Path | None = None
    """The previous live tree, moved aside by a swap."""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    """Excluded entries of the live tree moved into the restored one (relative paths)."""
    left: list[str] = field(default_factory=list)
    """Excluded entries that stayed in the kept tree, with why."""

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "path": str(self.path), "files": self.files, "bytes": self.bytes,
                "dirs": self.dirs, "links": self.links, "removed": self.removed,
                "kept": str(self.kept) if self.kept else None, "seconds": round(self.seconds, 3),
                "carried_over": self.carried, "left_in_kept_tree": self.left}


class _Ticker:
    """Rate-limited progress for one component."""

    def __init__(self, reporter: Reporter, plan: ComponentPlan) -> None:
        self.reporter = reporter
        self.component = plan.name
        self.total_files = plan.file_count
        self.total_bytes = plan.total_bytes
        self.files = 0
        self.bytes = 0
        self._last = 0.0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.reporter.check_cancelled()
            self.emit()

    def emit(self) -> None:
        self.reporter.progress(phase=f"restore {self.component}", done_files=self.files,
                               total_files=self.total_files, done_bytes=self.bytes, total_bytes=self.total_bytes)


# -- the tree -----------------------------------------------------------------------------------------------------
def write_tree(plan: ComponentPlan, chain: list[str], open_archive: OpenArchive, tree: SafeTree,
               reporter: Reporter, *, remove: list[tuple[bytes, ...]] = (), allow_symlinks_outside: bool = False,
               result: TreeResult) -> TreeResult:
    """Rebuild ``plan`` in ``tree``. Raises IntegrityError naming the backup and member when an archive lacks a
    wanted member or a file's content does not match its recorded hash."""
    started = time.monotonic()
    for parts in remove:
        tree.remove(parts)
        result.removed += 1
    for want in plan.dirs:
        tree.make_dir(want.parts)
    result.dirs = len(plan.dirs)
    ticker = _Ticker(reporter, plan)
    for source in [b for b in chain if b in plan.files]:
        reporter.check_cancelled()
        _take_members(plan, source, plan.files[source], open_archive, tree, reporter, ticker, result)
    for want in plan.fifos:
        tree.make_fifo(want.parts, want.meta)
    for want in plan.links:
        tree.make_symlink(want.parts, want.link or b"", want.meta, allow_outside=allow_symlinks_outside)
    result.links = len(plan.links)
    for want in dirs_deepest_first(plan.dirs):
        tree.set_dir_meta(want.parts, want.meta)
    if plan.root_meta is not None:
        tree.set_dir_meta((), plan.root_meta)
    ticker.emit()
    result.files, result.bytes = ticker.files, ticker.bytes
    result.seconds = time.monotonic() - started
    return result


def _take_members(plan: ComponentPlan, source: str, wanted: dict[bytes, Want], open_archive: OpenArchive,
                  tree: SafeTree, reporter: Reporter, ticker: _Ticker, result: TreeResult) -> None:
    left = set(wanted)
    with open_archive(source) as stream:
        reader = TarReader(stream)
        for member in reader:
            if not member.is_file:
                continue
            path = member.name
            if path not in left:
                continue
            want = wanted[path]
            if member.size != want.size:
                raise IntegrityError(f"{plan.name}: backup {source}: member {show(path)!r} holds {member.size} "
                                     f"bytes, the index says {want.size}")
            expect = None if want.unsure else want.sha256
            try:
                digest = tree.write_file(want.parts, reader, member.size, want.meta, expect_sha256=expect)
            except IntegrityError as err:
                raise IntegrityError(f"{plan.name}: backup {source}: {err.message}") from err
            if want.unsure and digest != want.sha256:
                message = (f"{plan.name}: {show(path)} changed while it was backed up and does not match its "
                           "recorded hash: restored as stored")
                result.warnings.append(message)
                reporter.warn(message)
            elif want.unsure:
                message = f"{plan.name}: {show(path)} changed while it was backed up: restored as stored"
                result.warnings.append(message)
                reporter.warn(message)
            left.discard(path)
            ticker.add(member.size)
            if not left:
                break  # the rest of this archive holds nothing we need
    if left:
        missing = sorted(left)
        raise IntegrityError(f"{plan.name}: backup {source} lacks {len(missing)} member(s) its index relies on, "
                             f"e.g. {show(missing[0])!r}")


# -- reading what is there ------------------------------------------------------------------------------------
def scan_present(root: Path) -> dict[bytes, Present]:
    """Every entry below ``root`` (lstat, links not followed, ``root`` itself excluded). Empty if ``root`` is
    missing."""
    out: dict[bytes, Present] = {}
    base = os.fsencode(root)
    if not os.path.isdir(base):
        return out
    stack = [b""]
    while stack:
        rel = stack.pop()
        try:
            listing = os.scandir(base + b"/" + rel if rel else base)
        except FileNotFoundError:
            continue
        with listing:
            for child in listing:
                path = rel + b"/" + child.name if rel else child.name
                st = child.stat(follow_symlinks=False)
                kind = _kind(st.st_mode)
                link = os.readlink(child.path) if kind == "l" else None
                out[path] = Present(kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                                    st.st_size if kind == "f" else 0, st.st_mtime_ns, link)
                if kind == "d":
                    stack.append(path)
    return out


def _kind(mode: int) -> str:
    import stat as st

    for test, letter in ((st.S_ISREG, "f"), (st.S_ISDIR, "d"), (st.S_ISLNK, "l"), (st.S_ISFIFO, "p"),
                         (st.S_ISSOCK, "s"), (st.S_ISCHR, "c"), (st.S_ISBLK, "b")):
        if test(mode):
            return letter
    return "?"


def preview(plan: ComponentPlan, dest: Path, *, swap: bool, excludes: Sequence[str] = ()) -> dict[str, Any]:
    """What restoring ``plan`` to ``dest`` would change (dry run): counts and the first paths of each kind.
    A swap replaces the whole tree, so everything not in the backup counts as removed from the live path, except
    the excluded entries it carries over."""
    wanted, present = plan.wanted(), scan_present(dest)
    if swap and excludes:
        for path in would_carry(present, wanted, excludes):
            del present[path]
    changes = diff(wanted, present, owners=os.geteuid() == 0)
    return {"component": plan.name, "path": str(dest), "swap": swap, **changes.summary(),
            "paths": changes.report()}


# -- placing a tree ---------------------------------------------------------------------------------------------
def restore_by_swap(plan: ComponentPlan, chain: list[str], open_archive: OpenArchive, live: Path, *, stamp: str,
                    reporter: Reporter, aside: str = "pre-restore", allow_symlinks_outside: bool = False,
                    excludes: Sequence[str] = ()) -> TreeResult:
    """Build the tree in a staging dir beside ``live`` (same filesystem), carry the live tree's entries that
    ``excludes`` match (never backed up: caches, logs) over into it, then rename ``live`` to
    ``NAME.<aside>.<stamp>`` and the staging dir to ``live``. Any failure before the swap moves carried entries
    back, removes the staging dir and leaves ``live`` as it was. OSErrors (a full disk...) propagate: the caller
    words them."""
    staging, kept = side_names(live, stamp, aside)
    live.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(live, excludes)
    os.mkdir(staging, 0o700)  # an OSError (full, read-only) becomes a clear StorageError in restore_run.execute
    result = TreeResult(plan.name, live)
    try:
        with SafeTree(staging, atomic=False) as tree:
            write_tree(plan, chain, open_archive, tree, reporter, allow_symlinks_outside=allow_symlinks_outside,
                       result=result)
            if plan.root_meta is None:
                _copy_root_meta(live, tree)
        crash_point("restore-tree-written")
        if excludes:
            carried = carry_over(live, staging, excludes)
            result.carried = [show(p) for p in carried.moved]
            result.left = [f"{show(p)} ({why})" for p, why in carried.left]
            crash_point("restore-carried")
        sync_filesystem(staging)  # the new tree is on disk before it goes live (instead of an fsync per file)
        if os.path.lexists(live) and not _removed_if_empty(live):
            _rename(live, kept, live)
            result.kept = kept
        crash_point("restore-between-renames")
        _rename(staging, live, live)
        _fsync_dir(live.parent)
    except BaseException:
        if result.carried:  # back into the old tree, wherever it is now
            carry_over(staging, result.kept or live, excludes)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def restore_into(plan: ComponentPlan, chain: list[str], open_archive: OpenArchive, dest: Path, *, delete: bool,
                 reporter: Reporter, stamp: str, allow_symlinks_outside: bool = False,
                 keep: Sequence[str] = ()) -> TreeResult:
    """Write the tree into ``dest``. A missing or empty ``dest`` is built beside it and renamed into place (a
    partial tree never sits under its name); otherwise (and always for a mount point, which cannot be renamed)
    every file goes through a temporary name renamed into place, and with ``delete`` entries the backup does not
    have are removed first, except those ``keep`` (exclude patterns) matches."""
    if builds_beside(dest):
        return restore_by_swap(plan, chain, open_archive, dest, stamp=stamp, reporter=reporter,
                               allow_symlinks_outside=allow_symlinks_outside)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"cannot create restore target {dest}: {err.strerror}") from err
    remove_leftover_temps(dest)
    remove: list[tuple[bytes, ...]] = []
    if delete:
        wanted, present = plan.wanted(), scan_present(dest)
        for path in would_carry(present, wanted, keep) if keep else ():
            del present[path]
        remove = removals(wanted, present)
    result = TreeResult(plan.name, dest)
    with SafeTree(dest, atomic=True) as tree:
        write_tree(plan, chain, open_archive, tree, reporter, remove=remove,
                   allow_symlinks_outside=allow_symlinks_outside, result=result)
    return result


def builds_beside(dest: Path) -> bool:
    """Whether ``restore_into`` builds a whole new tree beside ``dest`` (missing or empty) and renames it in.
    Never for a mount point: it cannot be renamed, so it is written in place."""
    if os.path.ismount(dest):
        return False
    return not os.path.lexists(dest) or _empty_dir(dest)


class FreshTarget:
    """A --target that did not exist or was empty: what the restore created there goes again when it fails, so
    a failed restore never leaves a partial tree that looks like a restored one. In a target that was empty only
    the top-level names this restore writes go (``remove(names)``): what others wrote there meanwhile stays."""

    def __init__(self, target: Path | None) -> None:
        self.target = target
        self.top: Path | None = None
        self.was_empty = False
        if target is None:
            return
        if not os.path.lexists(target):
            top = target.absolute()
            while not os.path.lexists(top.parent) and top.parent != top:
                top = top.parent
            self.top = top
        else:
            self.was_empty = target.is_dir() and not target.is_symlink() and not any(target.iterdir())

    def remove(self, names: Iterable[bytes] = ()) -> None:
        """``names``: the top-level entries of the target this restore writes (its temporary files go too)."""
        if self.top is not None:
            shutil.rmtree(self.top, ignore_errors=True)
        elif self.was_empty and self.target is not None and os.path.isdir(self.target):
            ours = set(names)
            mine = _TMP_PREFIX + str(os.getpid()).encode() + b"."
            for child in self.target.iterdir():
                name = os.fsencode(child.name)
                if name not in ours and not name.startswith(mine):
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def remove_stale_staging(live: Path, excludes: Sequence[str] = ()) -> list[Path]:
    """Staging dirs an interrupted restore left beside ``live`` (never live: they only go live by rename). Entries
    it had carried over from the live tree (matched by ``excludes``) go back first."""
    gone = []
    for path in live.parent.glob(f".{live.name}.restoring.*"):
        if excludes and os.path.isdir(live) and not os.path.islink(live):
            carry_over(path, live, excludes)
        shutil.rmtree(path, ignore_errors=True)
        gone.append(path)
    return gone


def _empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as listing:
            return path.is_dir() and not path.is_symlink() and next(listing, None) is None
    except (NotADirectoryError, FileNotFoundError):
        return False


def _removed_if_empty(path: Path) -> bool:
    """An empty directory (a fresh --target) is removed rather than kept aside."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


def _copy_root_meta(live: Path, tree: SafeTree) -> None:
    """The index holds no entry for the component root: keep the live root's owner and mode (0755 when none)."""
    try:
        st = os.stat(live)
        meta = Meta(st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns)
    except OSError:
        meta = Meta(0o755, os.geteuid(), os.getegid(), time.time_ns())
    tree.set_dir_meta((), meta)


def _rename(source: Path, dest: Path, live: Path) -> None:
    try:
        os.rename(source, dest)
    except OSError as err:
        if err.errno in (errno.EBUSY, errno.EXDEV):
            raise StorageError(f"cannot swap {live}: it is a mount point; restore in place with "
                               f"--target {live} --delete instead") from err
        raise StorageError(f"cannot rename {source} to {dest}: {err.strerror}") from err


def sync_filesystem(path: Path) -> None:
    """syncfs(2) on the filesystem holding ``path`` (os.sync() where libc lacks it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "syncfs") else None
    except OSError:
        return None


_LIBC = _load_libc()



