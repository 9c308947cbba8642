"""Creating the control socket file safely: directory and socket modes, group, stale and live sockets.

A socket file left by a crash (nobody listening: ECONNREFUSED) is replaced; a live one, or a held instance lock
beside it, means another daemon runs and we refuse to start (UnavailableError, exit 69). The socket is bound
under a temporary name (mode 0755 from the umask: nobody but us can connect), given its mode and group, and
renamed into place while already listening, so a client never sees a half-set-up socket.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, StorageError, UnavailableError

MAX_PATH = 107  # sun_path is 108 bytes including the terminating NUL


@dataclass(frozen=True)
class Modes:
    directory: int
    socket: int


def modes_for(shared_with_readers: bool) -> Modes:
    """0750/0660 with the admin group. With a read group, one file group cannot admit two groups: the socket is
    then connectable by everyone (0755/0666) and SO_PEERCRED alone decides, as it does on every connection."""
    return Modes(0o755, 0o666) if shared_with_readers else Modes(0o750, 0o660)


def check_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_PATH:
        message = f"control.socket: path is longer than {MAX_PATH} bytes: {path}"
        raise ConfigError(message, [message])


def prepare_dir(directory: Path, gid: int, mode: int) -> None:
    """Create the socket directory; give it our mode and group unless it is a shared directory (sticky or
    world-writable, like /tmp), which we never change."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=mode)
        info = directory.stat()
    except OSError as err:
        raise StorageError(f"cannot create the control socket directory {directory}: {err.strerror}") from err
    if info.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
        return
    if info.st_uid == os.geteuid():
        _chown_group(directory, gid)
        try:
            os.chmod(directory, mode)
        except OSError as err:
            raise StorageError(f"cannot set the mode of {directory}: {err.strerror}") from err


def acquire_instance_lock(path: Path) -> int:
    """An flock beside the socket, held for the daemon's life (released by the kernel when it dies)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StorageError(f"cannot open the instance lock {lock_path}: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UnavailableError(f"another maintd is running: {lock_path} is locked") from None
    return fd


def clear_stale(path: Path) -> bool:
    """Remove a socket file nobody listens on. Returns True when one was removed. UnavailableError when a
    daemon answers there, or when the path is something else than a socket."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(info.st_mode):
        raise UnavailableError(f"{path} exists and is not a socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(os.fspath(path))
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise UnavailableError(f"cannot check the existing socket {path}: {err.strerror}") from err
    else:
        raise UnavailableError(f"another maintd is already listening on {path}")
    finally:
        probe.close()
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise StorageError(f"cannot remove the stale socket {path}: {err.strerror}") from err
    return True


def bind(path: Path, gid: int, mode: int, backlog: int = 64) -> tuple[socket.socket, int]:
    """Bind and listen on `path` with `mode` and group `gid`. Returns the socket and the file's inode (so that
    close removes our file only, never a successor's)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(os.fspath(temporary))
        os.chmod(temporary, mode)
        _chown_group(temporary, gid)
        server.listen(backlog)
        os.rename(temporary, path)
    except OSError as err:
        server.close()
        temporary.unlink(missing_ok=True)
        raise UnavailableError(f"cannot create the control socket {path}: {err.strerror}") from err
    except BaseException:
        server.close()
        temporary.unlink(missing_ok=True)
        raise
    return server, path.stat().st_ino


def set_mode(path: Path, gid: int, mode: int) -> None:
    """Give an existing socket file a new mode and group (after a reload changed the groups)."""
    try:
        os.chmod(path, mode)
    except OSError as err:
        raise StorageError(f"cannot set the mode of {path}: {err.strerror}") from err
    _chown_group(path, gid)


def remove_if_ours(path: Path, inode: int) -> None:
    try:
        if path.lstat().st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass


def _chown_group(path: Path, gid: int) -> None:
    try:
        os.chown(path, -1, gid)
    except PermissionError as err:
        message = (f"control.admin_group: cannot give {path} the group {gid}: {err.strerror} "
                   "(run as root, or name a group this user belongs to)")
        raise ConfigError(message, [message]) from err
