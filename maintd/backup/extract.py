"""Safe extraction: write a tree into a target directory without ever leaving it.

We do not rely on ``tarfile`` extraction filters (Debian 12's Python 3.11.2 has none) nor on path strings:
every path is split into components that are checked (no absolute names, no ``..``, no NUL) and then walked
one component at a time with ``os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=parent)``. A symlink met on the
way is refused, so nothing is ever written through a link, whether it came from the archive being extracted
or was in the target before. Files are created with ``O_NOFOLLOW | O_EXCL`` relative to their parent's fd;
metadata is applied through the file's own descriptor. Hard links must point at a path inside the target and
are made with ``follow_symlinks=False``; device nodes are refused; symlinks whose target leaves the tree are
refused unless the caller allows them (they are then created as links only: we still never write through one).

``SafeTree`` is the writer used by the restore (driven by the index) and by ``extract_tar`` (a whole archive,
e.g. a hand-made one in the tests or an emergency extraction).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import IntegrityError, StorageError
from .tar_reader import BLOCKDEV, CHAR, DIRECTORY, FIFO, HARDLINK, SYMLINK, TarReader

CHUNK = 1 << 20
DIR_FD_CACHE = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TMP_PREFIX = b".maintd-restore."


class UnsafeMemberError(IntegrityError):
    """A member would be written outside the target, through a link, or is a kind we never create."""


def show(path: bytes | tuple[bytes, ...]) -> str:
    """A path as it may be printed: raw bytes that are not UTF-8 as \\x escapes."""
    if isinstance(path, tuple):
        path = b"/".join(path)
    return path.decode("utf-8", "backslashreplace")


def member_parts(name: bytes) -> tuple[bytes, ...]:
    """Split a member/index path into checked components; () is the root itself.

    Refuses empty names, NUL bytes, absolute names and any ``..`` segment; drops ``.`` and empty segments."""
    if not name:
        raise UnsafeMemberError("refused member with an empty name")
    if b"\x00" in name:
        raise UnsafeMemberError(f"refused {show(name)!r}: NUL byte in the name")
    if name.startswith(b"/"):
        raise UnsafeMemberError(f"refused {show(name)!r}: absolute path")
    parts = tuple(p for p in name.split(b"/") if p not in (b"", b"."))
    if b".." in parts:
        raise UnsafeMemberError(f"refused {show(name)!r}: '..' segment leads outside the target")
    return parts


def link_stays_inside(parts: tuple[bytes, ...], target: bytes) -> bool:
    """Whether a symlink at ``parts`` pointing at ``target`` resolves inside the tree.

    Only targets of the shape ``../../a/b`` qualify: leading ``..`` resolve against the link's parent (real
    directories: we never create anything through a link), the rest only descends. ``a/../b`` is refused
    because ``a`` could itself be a link (``a -> .`` would turn ``a/..`` into the tree's parent)."""
    if not target or target.startswith(b"/") or b"\x00" in target:
        return False
    segments = [s for s in target.split(b"/") if s not in (b"", b".")]
    ups = 0
    while ups < len(segments) and segments[ups] == b"..":
        ups += 1
    if b".." in segments[ups:]:
        return False
    return ups <= len(parts) - 1


@dataclass(frozen=True, slots=True)
class Meta:
    mode: int
    uid: int
    gid: int
    mtime_ns: int


class SafeTree:
    """A directory tree we create entries in, component by component, never following a link.

    ``atomic``: files and links are written under a temporary name and renamed into place (a kill -9 never
    leaves a half-written file under its real name); used when writing into a directory that is in use. A fresh
    staging directory is written directly (it only goes live by a rename once complete)."""

    def __init__(self, root: Path, *, atomic: bool = True, owners: bool | None = None) -> None:
        self.root = root
        self.atomic = atomic
        self.owners = os.geteuid() == 0 if owners is None else owners
        self._euid, self._egid = os.geteuid(), os.getegid()
        try:
            self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise StorageError(f"cannot open restore target {root}: {err.strerror}") from err
        self._fds: OrderedDict[tuple[bytes, ...], int] = OrderedDict()
        self._counter = 0

    # -- lifecycle --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._drop_cache()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __enter__(self) -> "SafeTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_cache(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    # -- walking ----------------------------------------------------------------------------------------------
    def dir_fd(self, parts: tuple[bytes, ...], *, create: bool = False) -> int:
        """An fd of the directory at ``parts`` (borrowed: do not close), walked without following links."""
        if not parts:
            return self._root_fd
        cached = self._fds.get(parts)
        if cached is not None:
            self._fds.move_to_end(parts)
            return cached
        parent = self.dir_fd(parts[:-1], create=create)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            try:
                # A parent the caller did not create itself (e.g. /etc/nginx for a `system` file): an ordinary
                # directory. Directories the restore knows about get their recorded mode at the end.
                os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass  # raced with ourselves: open it below
            fd = self._open_dir_checked(parent, parts)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._not_a_dir(parent, parts) from err
            raise StorageError(f"cannot open {self.root}/{show(parts)}: {err.strerror}") from err
        self._fds[parts] = fd
        if len(self._fds) > DIR_FD_CACHE:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def _open_dir_checked(self, parent: int, parts: tuple[bytes, ...]) -> int:
        try:
            return os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        except OSError as err:
            raise self._not_a_dir(parent, parts) from err

    def _not_a_dir(self, parent: int, parts: tuple[bytes, ...]) -> MaintdErrorLike:
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError:
            return StorageError(f"cannot open directory {show(parts)!r} in {self.root}")
        if stat.S_ISLNK(st.st_mode):
            return UnsafeMemberError(f"refused to write through symlink {show(parts)!r} in {self.root}")
        return UnsafeMemberError(f"{show(parts)!r} in {self.root} is not a directory")

    def lstat(self, parts: tuple[bytes, ...]) -> os.stat_result | None:
        """lstat of an entry (None when absent); its parents are walked without following links."""
        if not parts:
            return os.fstat(self._root_fd)
        try:
            parent = self.dir_fd(parts[:-1])
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except UnsafeMemberError:
            return None  # below a link or a file: nothing of ours is there

    # -- creating ---------------------------------------------------------------------------------------------
    def _tmp_name(self) -> bytes:
        self._counter += 1
        return _TMP_PREFIX + b"%d.%d" % (os.getpid(), self._counter)

    def make_dir(self, parts: tuple[bytes, ...]) -> None:
        """A directory at ``parts`` (parents too); a non-directory already there is replaced."""
        if not parts:
            return
        parent = self.dir_fd(parts[:-1], create=True)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
            return
        except FileExistsError:
            pass
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            return
        self._forget(parts)
        os.unlink(parts[-1], dir_fd=parent)  # a file or a link where the backup has a directory
        os.mkdir(parts[-1], 0o700, dir_fd=parent)

    def write_file(self, parts: tuple[bytes, ...], source: BinaryIO, size: int, meta: Meta | None, *,
                   expect_sha256: str | None = None) -> str:
        """Copy exactly ``size`` bytes of ``source`` into a regular file at ``parts``; returns their sha256 hex.
        An existing entry there (file, link, directory) is replaced, never written through. With
        ``expect_sha256``, a mismatch raises IntegrityError and (in atomic mode) leaves the old entry in place."""
        if not parts:
            raise UnsafeMemberError("refused a file member naming the target root itself")
        parent = self.dir_fd(parts[:-1], create=True)
        name = self._tmp_name() if self.atomic else parts[-1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=parent)
        except FileExistsError:
            self._remove_entry(parent, name, parts[:-1] + (name,))
            fd = os.open(name, flags, 0o600, dir_fd=parent)
        digest = hashlib.sha256()
        try:
            left = size
            while left > 0:
                block = source.read(min(left, CHUNK))
                if not block:
                    raise IntegrityError(f"{show(parts)!r}: archive member ended {left} bytes early")
                digest.update(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(block)
            if expect_sha256 is not None and digest.hexdigest() != expect_sha256:
                raise IntegrityError(f"{show(parts)!r}: content does not match its recorded sha256 "
                                     f"(got {digest.hexdigest()[:16]}..., recorded {expect_sha256[:16]}...)")
            if meta is not None:
                self._fd_meta(fd, meta)
        except BaseException:
            os.close(fd)
            _unlink_quietly(parent, name)
            raise
        os.close(fd)
        if self.atomic:
            self._rename_into_place(parent, name, parts)
        return digest.hexdigest()

    def make_symlink(self, parts: tuple[bytes, ...], target: bytes, meta: Meta | None, *,
                     allow_outside: bool = False) -> None:
        if not parts:
            raise UnsafeMemberError("refused a symlink member naming the target root itself")
        if not allow_outside and not link_stays_inside(parts, target):
            raise UnsafeMemberError(f"refused symlink {show(parts)!r} -> {show(target)!r}: it points outside the "
                                    "restored tree (recovery.allow_symlinks_outside allows such links)")
        parent = self.dir_fd(parts[:-1], create=True)
        name = self._tmp_name()
        os.symlink(target, name, dir_fd=parent)
        try:
            if meta is not None:
                if self.owners:
                    os.chown(name, meta.uid, meta.gid, dir_fd=parent, follow_symlinks=False)
                os.utime(name, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=parent, follow_symlinks=False)
        except BaseException:
            _unlink_quietly(parent, name)
            raise
        self._rename_into_place(parent, name, parts)

    def make_fifo(self, parts: tuple[bytes, ...], meta: Meta | None) -> None:
        if not parts:
            raise UnsafeMemberError("refused a fifo member naming the target root itself")
        parent = self.dir_fd(parts[:-1], create=True)
        name = self._tmp_name()
        os.mkfifo(name, 0o600, dir_fd=parent)
        try:
            if meta is not None:
                if self.owners:
                    os.chown(name, meta.uid, meta.gid, dir_fd=parent, follow_symlinks=False)
                os.chmod(name, meta.mode & 0o7777, dir_fd=parent)
                os.utime(name, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=parent, follow_symlinks=False)
        except BaseException:
            _unlink_quietly(parent, name)
            raise
        self._rename_into_place(parent, name, parts)

    def make_hardlink(self, parts: tuple[bytes, ...], source: tuple[bytes, ...]) -> None:
        """A hard link at ``parts`` to the entry at ``source`` (inside the tree, its parents walked safely)."""
        if not parts or not source:
            raise UnsafeMemberError("refused a hard link naming the target root")
        source_parent = self.dir_fd(source[:-1])
        st = os.stat(source[-1], dir_fd=source_parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeMemberError(f"refused hard link {show(parts)!r} to directory {show(source)!r}")
        parent = self.dir_fd(parts[:-1], create=True)
        name = self._tmp_name()
        os.link(source[-1], name, src_dir_fd=source_parent, dst_dir_fd=parent, follow_symlinks=False)
        self._rename_into_place(parent, name, parts)

    def _rename_into_place(self, parent: int, name: bytes, parts: tuple[bytes, ...]) -> None:
        if name == parts[-1]:
            return
        try:
            os.rename(name, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as err:
            if err.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                _unlink_quietly(parent, name)
                raise
            self._remove_entry(parent, parts[-1], parts)  # a directory where the backup has a file or a link
            os.rename(name, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)

    # -- metadata and removal ---------------------------------------------------------------------------------
    def _fd_meta(self, fd: int, meta: Meta) -> None:
        # A file we just created in a fresh tree is owned by our euid/egid (no set-gid directory exists there
        # until directory modes are applied at the end): chown only when that is not what the index says.
        if self.owners and (self.atomic or meta.uid != self._euid or meta.gid != self._egid):
            os.fchown(fd, meta.uid, meta.gid)
        os.fchmod(fd, meta.mode & 0o7777)  # after chown: chown clears set-id bits
        os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))

    def set_dir_meta(self, parts: tuple[bytes, ...], meta: Meta) -> None:
        """Owner, mode and mtime of a directory (call deepest first, after everything below is written)."""
        self._fd_meta(self.dir_fd(parts), meta)

    def remove(self, parts: tuple[bytes, ...]) -> None:
        """Remove the entry at ``parts`` (a directory with everything below it); links are removed, not followed."""
        if not parts:
            raise UnsafeMemberError("refused to remove the target root")
        parent = self.dir_fd(parts[:-1])
        self._remove_entry(parent, parts[-1], parts)

    def _forget(self, parts: tuple[bytes, ...]) -> None:
        """Close cached fds at or below ``parts`` (about to be removed or replaced)."""
        for key in [k for k in self._fds if k[:len(parts)] == parts]:
            os.close(self._fds.pop(key))

    def _remove_entry(self, parent: int, name: bytes, parts: tuple[bytes, ...]) -> None:
        self._forget(parts)
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent)  # fd based (rmtree is symlink-attack safe on Linux)
        else:
            os.unlink(name, dir_fd=parent)


MaintdErrorLike = IntegrityError | StorageError


def _unlink_quietly(parent: int, name: bytes) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass


def remove_leftover_temps(root: Path) -> int:
    """Remove temporary files an interrupted restore left below ``root`` (never following links)."""
    removed = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(os.fsencode(root)):
        for name in [n for n in filenames + dirnames if n.startswith(_TMP_PREFIX)]:
            _unlink_quietly(dirfd, name)  # temps are files, links or fifos: never directories
            removed += 1
    return removed


def extract_tar(fileobj: BinaryIO, tree: SafeTree, *, allow_symlinks_outside: bool = False) -> int:
    """Extract a whole tar stream into ``tree`` with every containment check; returns the member count.

    The first refused member stops the extraction with an UnsafeMemberError naming it (what was written so far
    is inside the tree). Directory metadata is applied last, deepest first."""
    dirs: list[tuple[tuple[bytes, ...], Meta]] = []
    reader = TarReader(fileobj)
    count = 0
    for member in reader:
        count += 1
        parts = member_parts(member.name)
        meta = Meta(member.mode, member.uid, member.gid, round(member.mtime * 1_000_000_000))
        if member.type == DIRECTORY:
            tree.make_dir(parts)
            dirs.append((parts, meta))
        elif member.is_file:
            tree.write_file(parts, reader, member.size, meta)
        elif member.type == SYMLINK:
            tree.make_symlink(parts, member.linkname, meta, allow_outside=allow_symlinks_outside)
        elif member.type == HARDLINK:
            tree.make_hardlink(parts, member_parts(member.linkname))
        elif member.type == FIFO:
            tree.make_fifo(parts, meta)
        elif member.type in (CHAR, BLOCKDEV):
            raise UnsafeMemberError(f"refused device node {show(parts)!r}: restores never create devices")
        else:
            raise UnsafeMemberError(f"refused {show(parts)!r}: unsupported member type {member.type!r}")
    for parts, meta in sorted(dirs, key=lambda d: len(d[0]), reverse=True):
        tree.set_dir_meta(parts, meta)
    return count
