"""Named kernel locks: ``fcntl.flock`` on ``state_dir/locks/<name>.lock``.

The file is opened anew for every acquisition, so two threads of one process exclude each other as two
processes do. The kernel drops the lock when the descriptor is closed or the holder dies (kill -9 included):
there is never a stale lock to clear by hand. The holder writes its pid, run id and job into the file; that
text is informational (status display, the BusyError message) and may outlive the holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable

from ..errors import BusyError, Cancelled, StorageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
POLL_S = 0.1


def lock_path(locks_dir: Path, name: str) -> Path:
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"invalid lock name {name!r}")
    return locks_dir / f"{name}.lock"


class NamedLock:
    """One held lock. Release with ``release()`` (idempotent) or by leaving a ``with`` block."""

    def __init__(self, name: str, path: Path, fd: int) -> None:
        self.name = name
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # the holder text goes with the lock (a kill -9 leaves it: harmless)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> "NamedLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock must not outlive its object
        self.release()


def _open(locks_dir: Path, name: str) -> tuple[Path, int]:
    path = lock_path(locks_dir, name)
    try:
        locks_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as err:
        raise StorageError(f"cannot open lock file {path}: {err.strerror}") from err
    return path, fd


def _write_holder(fd: int, holder: dict[str, Any]) -> None:
    text = json.dumps({"pid": os.getpid(), **holder}, default=str).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:
        pass  # informational only


def try_acquire(locks_dir: Path, name: str, holder: dict[str, Any] | None = None) -> NamedLock | None:
    """Take the lock without waiting; None when someone (this process included) holds it."""
    path, fd = _open(locks_dir, name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise StorageError(f"cannot lock {path}: {err.strerror}") from err
    _write_holder(fd, holder or {})
    return NamedLock(name, path, fd)


def acquire(locks_dir: Path, name: str, holder: dict[str, Any] | None = None, *,
            cancel: threading.Event | None = None, timeout: float | None = None,
            poll_s: float = POLL_S) -> NamedLock:
    """Wait for the lock, polling so that `cancel` (raises Cancelled) and `timeout` (raises BusyError) are
    honoured; a blocking flock could not be interrupted from another thread."""
    waited = 0.0
    while True:
        lock = try_acquire(locks_dir, name, holder)
        if lock is not None:
            return lock
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled while waiting for lock {name}")
        if timeout is not None and waited >= timeout:
            raise BusyError(f"lock {name} is busy ({describe_holder(read_holder(locks_dir, name))})")
        if cancel is not None:
            cancel.wait(poll_s)
        else:
            threading.Event().wait(poll_s)
        waited += poll_s


def read_holder(locks_dir: Path, name: str) -> dict[str, Any] | None:
    """What the last holder wrote into the lock file; None when empty or unreadable."""
    try:
        text = lock_path(locks_dir, name).read_text(encoding="utf-8", errors="replace")
        value = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "holder unknown"
    parts = []
    if holder.get("run_id"):
        parts.append(f"run {holder['run_id']}")
    if holder.get("job"):
        parts.append(f"job {holder['job']}")
    if holder.get("pid"):
        parts.append(f"pid {holder['pid']}")
    return "held by " + ", ".join(parts) if parts else "holder unknown"


def is_held(locks_dir: Path, name: str) -> bool:
    """Whether someone holds the lock now. Takes a shared lock for an instant: a concurrent try_acquire in that
    instant sees the lock busy (only use this for status display)."""
    path = lock_path(locks_dir, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def held_locks(locks_dir: Path) -> dict[str, dict[str, Any]]:
    """Every lock currently held, with what its holder wrote: for `maintctl status`."""
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(p.name[:-5] for p in locks_dir.iterdir() if p.name.endswith(".lock"))
    except OSError:
        return out
    for name in names:
        if _NAME.match(name) and is_held(locks_dir, name):
            out[name] = read_holder(locks_dir, name) or {}
    return out


class LockSet:
    """Several named locks taken in sorted order (no deadlock between runs needing overlapping sets)."""

    def __init__(self, locks_dir: Path, names: Iterable[str], holder: dict[str, Any] | None = None) -> None:
        self.locks_dir = locks_dir
        self.names = sorted(set(names))
        self.holder = dict(holder or {})
        self._held: list[NamedLock] = []
        for name in self.names:
            lock_path(locks_dir, name)  # validate early

    def try_acquire(self) -> str | None:
        """Take all or none. Returns None on success, else the name of the busy lock."""
        for name in self.names:
            lock = try_acquire(self.locks_dir, name, self.holder)
            if lock is None:
                self.release()
                return name
            self._held.append(lock)
        return None

    def acquire(self, cancel: threading.Event | None = None, poll_s: float = POLL_S) -> None:
        """Wait for every lock in order; Cancelled (nothing held) when `cancel` is set meanwhile."""
        try:
            for name in self.names:
                self._held.append(acquire(self.locks_dir, name, self.holder, cancel=cancel, poll_s=poll_s))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()

    @property
    def held(self) -> bool:
        return bool(self._held)
