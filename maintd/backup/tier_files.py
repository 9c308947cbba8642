"""File primitives for tier copies: copy while hashing, fsync, read back past the page cache, remove safely."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

from .durable import fsync_dir
from ..errors import StorageError

CHUNK = 1 << 20

Check = Callable[[], None]
"""Called between chunks: raises Cancelled when the run must stop."""
Progress = Callable[[int], None]
"""Called with the number of bytes just handled."""


def _noop(*_: object) -> None:
    return None


def copy_hashed(source: Path, target: Path, *, check: Check = _noop, progress: Progress = _noop) -> str:
    """Copy source to a new file target (mode of the source), fsync it; returns the sha256 of the bytes read."""
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader:
            mode = os.fstat(reader.fileno()).st_mode & 0o777
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "wb") as writer:
                while chunk := reader.read(CHUNK):
                    check()
                    digest.update(chunk)
                    writer.write(chunk)
                    progress(len(chunk))
                writer.flush()
                os.fsync(writer.fileno())
    except OSError as err:
        raise StorageError(f"copying {source} to {target}: {err.strerror or err}") from err
    return digest.hexdigest()


def read_back_sha256(path: Path, *, check: Check = _noop) -> str:
    """sha256 of a file as stored. The file's cached pages are dropped first (posix_fadvise DONTNEED, after the
    fsync done by the copy), so on a local disk the bytes come from the device, not from what we just wrote;
    best effort: network file systems may still answer from a cache."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as reader:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(reader.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while chunk := reader.read(CHUNK):
                check()
                digest.update(chunk)
    except OSError as err:
        raise StorageError(f"reading back {path}: {err.strerror or err}") from err
    return digest.hexdigest()


def sha256_file(path: Path, *, check: Check = _noop) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as reader:
            while chunk := reader.read(CHUNK):
                check()
                digest.update(chunk)
    except OSError as err:
        raise StorageError(f"reading {path}: {err.strerror or err}") from err
    return digest.hexdigest()


def remove_tree(path: Path, trash: Path) -> None:
    """Rename path into trash (same file system, atomic), fsync, then delete it: a crash leaves either the
    whole directory in place or a leftover under trash, never a half-deleted directory under its real name."""
    try:
        trash.mkdir(parents=True, exist_ok=True, mode=0o700)
        doomed = trash / path.name
        if doomed.exists():
            shutil.rmtree(doomed)
        os.rename(path, doomed)
        fsync_dir(path.parent)
        shutil.rmtree(doomed)
    except OSError as err:
        raise StorageError(f"removing {path}: {err.strerror or err}") from err


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under path (what deleting it frees, give or take the blocks)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total
