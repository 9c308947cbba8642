"""Who is on the other end of a control connection, and what they may do.

``SO_PEERCRED`` gives the peer's pid, uid and gid as the kernel saw them at connect time; the supplementary
groups come from ``/proc/<pid>/status`` (the process's real groups, also right after a ``setgroups``), else from
the user database. ``access_for`` is pure: root and admin-group members may do anything, read-group members may
use the read operations, everybody else nothing.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

_UCRED = struct.Struct("3i")


class Access(enum.Enum):
    NONE = "none"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    """Every group of the peer: the primary one and the supplementary ones."""


def access_for(uid: int, groups: frozenset[int], admin_gid: int | None, read_gid: int | None) -> Access:
    if uid == 0 or (admin_gid is not None and admin_gid in groups):
        return Access.ADMIN
    if read_gid is not None and read_gid in groups:
        return Access.READ
    return Access.NONE


def peer_of(conn: socket.socket, proc: Path = Path("/proc")) -> Peer:
    """The credentials of a connected AF_UNIX peer."""
    pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid=pid, uid=uid, gid=gid, groups=frozenset({gid}) | _supplementary(pid, uid, gid, proc))


def _supplementary(pid: int, uid: int, gid: int, proc: Path) -> frozenset[int]:
    groups = _proc_groups(proc / str(pid) / "status", uid)
    if groups is not None:
        return groups
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return frozenset()
    return frozenset(os.getgrouplist(name, gid))


def _proc_groups(status: Path, uid: int) -> frozenset[int] | None:
    """The ``Groups:`` line, if the file belongs to a process still running as ``uid`` (guards pid reuse)."""
    try:
        text = status.read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        effective_uid = int(fields["Uid"].split()[1])
        return frozenset(int(g) for g in fields.get("Groups", "").split()) if effective_uid == uid else None
    except (KeyError, IndexError, ValueError):
        return None


def group_id(name: str, key: str) -> int:
    """The gid of a group name (or a number); a ConfigError naming the setting `key` when the group is missing."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        message = (f"control.{key}: group {name!r} does not exist (create it, e.g. with "
                   "packaging/sysusers.d/maintd.conf, or name an existing group)")
        raise ConfigError(message, [message]) from None
