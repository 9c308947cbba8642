"""The control socket under bad clients, other users and a second daemon (raw sockets, a real daemon)."""

from __future__ import annotations

import grp
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from maintd import ctl, protocol
from tests.e2e.daemon_harness import DaemonFactory, as_user, raw_client, read_replies, request, wait_until

NOBODY = 65534


def test_garbage_oversized_and_unfinished_requests_leave_other_clients_served(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"control": {"request_timeout": "1s", "max_request_bytes": 2048}})
    path = daemons.socket
    silent = raw_client(path)  # connects, never sends a whole line
    silent.sendall(b'{"v": 1, "op": "st')
    assert request(path, "ping")[0]["data"]["pong"]  # served while the silent one waits

    with raw_client(path) as garbage:
        garbage.sendall(b"\x00\xff not json at all\n")
        reply = read_replies(garbage)
    assert reply[0]["type"] == "error" and reply[0]["code"] == "bad_request"

    with raw_client(path) as wrong:
        wrong.sendall(b'{"v": 99, "op": "status"}\n["a list"]\n')
        assert read_replies(wrong)[0]["code"] == "bad_request"

    with raw_client(path) as unknown:
        unknown.sendall(protocol.request("format-disk"))
        assert "unknown op" in read_replies(unknown)[0]["message"]

    with raw_client(path) as huge:
        try:
            huge.sendall(b"x" * 200_000)  # no newline, far past max_request_bytes
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may hang up while we still send
        replies = read_replies(huge)
    assert replies[0]["code"] == "bad_request" and "longer than 2048" in replies[0]["message"]

    replies = read_replies(silent)  # the daemon gave up on it after request_timeout
    silent.close()
    assert replies[0]["code"] == "bad_request" and "within" in replies[0]["message"]
    assert daemon.call("status")["pid"] == daemon.pid


def test_extra_clients_beyond_the_limit_are_told_busy(daemons: DaemonFactory) -> None:
    daemons.start({"control": {"max_clients": 1, "request_timeout": "60s"}})
    holders = [raw_client(daemons.socket)]

    def held_then_busy() -> bool:
        # The slot may still be taken by the harness's own readiness ping for a moment, in which case the
        # holder itself was told busy and closed: connect it again until it really holds the slot.
        if _was_refused(holders[-1]):
            holders.append(raw_client(daemons.socket))
            return False
        return _busy_reply(daemons.socket)

    try:
        wait_until(held_then_busy, message="a busy reply while one client holds the slot")
    finally:
        for holder in holders:
            holder.close()
    wait_until(lambda: request(daemons.socket, "ping")[0]["type"] == "result", message="served again")


def _was_refused(sock) -> bool:
    """Whether the server already answered (busy) or closed this connection; a held one has nothing to read."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) is not None
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(10.0)


def _busy_reply(path: Path) -> bool:
    replies = request(path, "ping")
    return bool(replies) and replies[0].get("code") == "busy" and replies[0]["exit_code"] == 75


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A socket directory other users can reach (the test's own tmp dir is root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="maintd-ctl-"))
    directory.chmod(0o755)
    yield directory
    for child in sorted(directory.rglob("*"), reverse=True):
        child.unlink() if not child.is_dir() else child.rmdir()
    directory.rmdir()


def test_non_admin_is_denied_and_a_reader_may_only_read(daemons: DaemonFactory, shared_dir: Path) -> None:
    sock = shared_dir / "run" / "maintd.sock"
    reader_group = grp.getgrnam("nogroup").gr_gid
    outsider_group = grp.getgrnam("users").gr_gid
    daemon = daemons.start({"control": {"socket": str(sock), "admin_group": "root", "read_group": "nogroup"}})

    def status() -> int:
        return ctl.main(["--socket", str(sock), "status"])

    def run() -> int:
        return ctl.main(["--socket", str(sock), "run", "health"])

    assert as_user(NOBODY, outsider_group, status) == 77
    assert as_user(NOBODY, reader_group, status) == 0
    assert as_user(NOBODY, reader_group, run) == 77
    denied = daemon.events("control.denied")
    assert {d["op"] for d in denied} == {"status", "run"}
    assert all(d["peer_uid"] == NOBODY and d["peer_pid"] > 0 for d in denied)
    assert daemon.call("history") == []  # the refused run never started


def test_socket_mode_group_and_audit_log_of_mutating_requests(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"control": {"admin_group": "backup"}, "jobs": {"health": {"schedule": "0 2 * * *"}}})
    info = daemons.socket.stat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == grp.getgrnam("backup").gr_gid
    directory = daemons.socket.parent.stat()
    assert stat.S_IMODE(directory.st_mode) == 0o750 and directory.st_gid == info.st_gid

    assert daemon.ctl("pause", "health").returncode == 0
    daemon.call("status")
    audit = daemon.events("control.request")
    pauses = [e for e in audit if e.get("op") == "pause"]
    assert len(pauses) == 1 and pauses[0]["level"] == "info"
    assert pauses[0]["peer_uid"] == os.getuid() and pauses[0]["peer_pid"] > 0
    assert pauses[0]["args"] == {"job": "health"}
    assert all(e["level"] == "debug" for e in audit if e.get("op") in ("status", "ping"))

    daemons.config({"control": {"admin_group": "root"}})  # a reload moves the socket to the new group
    assert daemon.ctl("reload", "--wait").returncode == 0
    assert daemons.socket.stat().st_gid == 0 and daemons.socket.parent.stat().st_gid == 0


def test_a_second_daemon_on_a_live_socket_refuses_to_start(daemons: DaemonFactory) -> None:
    first = daemons.start()
    second = daemons.start(write=False, wait=False)
    assert second.wait_exit(20) == 69
    assert "another maintd" in second.output()
    assert first.call("ping")["pid"] == first.pid  # the first one is untouched, socket included


def test_a_live_socket_of_another_program_is_not_taken_over(daemons: DaemonFactory) -> None:
    daemons.socket.parent.mkdir(parents=True, exist_ok=True)
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(str(daemons.socket))
    squatter.listen(1)
    try:
        daemon = daemons.start(wait=False)
        assert daemon.wait_exit(20) == 69
        assert "already listening" in daemon.output()
        assert daemons.socket.exists()
    finally:
        squatter.close()


def test_a_stale_socket_file_is_replaced(daemons: DaemonFactory) -> None:
    daemons.socket.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(daemons.socket))
    dead.close()  # the file stays, nobody listens: what a kill -9 leaves
    daemon = daemons.start()
    assert daemon.call("ping")["pong"]
    assert daemon.events("control.stale_socket_removed")


def test_a_regular_file_at_the_socket_path_is_left_alone(daemons: DaemonFactory) -> None:
    daemons.socket.parent.mkdir(parents=True, exist_ok=True)
    daemons.socket.write_text("precious")
    daemon = daemons.start(wait=False)
    assert daemon.wait_exit(20) == 69
    assert daemons.socket.read_text() == "precious"


def test_a_missing_admin_group_is_a_config_error(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"control": {"admin_group": "no-such-group-here"}}, wait=False)
    assert daemon.wait_exit(20) == 78
    assert "no-such-group-here" in daemon.output()
