"""Journal entries through a real datagram socket, parsed as journald would."""

from __future__ import annotations

import array
import io
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from maintd import logs


def parse_native(payload: bytes) -> dict[str, list[str]]:
    """journald's native protocol reader (docs/JOURNAL_NATIVE_PROTOCOL.md)."""
    fields: dict[str, list[str]] = {}
    pos = 0
    while pos < len(payload):
        end = payload.index(b"\n", pos)
        line = payload[pos:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            pos = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", payload[end + 1:end + 9])
            value = payload[end + 9:end + 9 + size]
            assert payload[end + 9 + size:end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields.setdefault(name.decode(), []).append(value.decode())
    return fields


class FakeJournald:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(5)

    def receive(self) -> dict[str, list[str]]:
        data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        for level, kind, raw in ancdata:  # a memfd for entries too large for a datagram
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fd = array.array("i", raw[:4])[0]
                with os.fdopen(fd, "rb") as memfd:
                    memfd.seek(0)
                    data = memfd.read()
        return parse_native(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[FakeJournald]:
    server = FakeJournald(tmp_path / "journal.sock")
    root = logging.getLogger()
    level = root.level
    yield server
    server.close()
    for handler in [h for h in root.handlers if getattr(h, "_maintd", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.reset_defaults()


def test_journal_entry_has_priority_identifier_and_prefixed_fields(journald):
    assert logs.configure("journal", "info", journal_socket=journald.path) == "journal"
    with bound_contextvars(job="health", run_id="0190-abc"):
        structlog.get_logger("maintd.runner").warning("job.finished", outcome="failed", duration_s=1.5,
                                                      summary="probe bridge:\nconnection refused")
    entry = journald.receive()
    assert entry["PRIORITY"] == ["4"]
    assert entry["SYSLOG_IDENTIFIER"] == ["maintd"]
    assert entry["MAINTD_JOB"] == ["health"] and entry["MAINTD_RUN_ID"] == ["0190-abc"]
    assert entry["MAINTD_OUTCOME"] == ["failed"] and entry["MAINTD_DURATION_S"] == ["1.5"]
    assert entry["MAINTD_EVENT"] == ["job.finished"] and entry["MAINTD_LOGGER"] == ["maintd.runner"]
    assert entry["MAINTD_SUMMARY"] == ["probe bridge:\nconnection refused"]  # length-prefixed form
    assert entry["MESSAGE"][0].startswith("job.finished ")
    assert "outcome=failed" in entry["MESSAGE"][0]
    assert all(name.replace("_", "").isalnum() and name.isupper() and not name.startswith("_")
               for name in entry)
    assert "\x1b[" not in entry["MESSAGE"][0]


def test_journal_priorities_follow_levels_and_stdlib_records_arrive_too(journald):
    logs.configure("journal", "debug", journal_socket=journald.path)
    log = structlog.get_logger()
    log.debug("a.debug")
    log.info("a.info")
    log.error("a.error")
    logging.getLogger("apscheduler.scheduler").critical("scheduler exploded")
    got = [journald.receive() for _ in range(4)]
    assert [(e["MAINTD_EVENT"][0], e["PRIORITY"][0]) for e in got] == [
        ("a.debug", "7"), ("a.info", "6"), ("a.error", "3"), ("scheduler exploded", "2")]


def test_traceback_goes_into_the_message(journald):
    logs.configure("journal", "info", journal_socket=journald.path)
    try:
        raise KeyError("missing")
    except KeyError:
        structlog.get_logger().exception("job.crashed")
    entry = journald.receive()
    assert entry["PRIORITY"] == ["3"]
    assert "Traceback" in entry["MESSAGE"][0] and "KeyError: 'missing'" in entry["MESSAGE"][0]


def test_huge_entry_travels_in_a_sealed_memfd(journald):
    logs.configure("journal", "info", journal_socket=journald.path)
    big = "x" * (4 << 20)  # beyond any datagram size
    structlog.get_logger().info("report.written", report=big)
    entry = journald.receive()
    assert entry["MAINTD_REPORT"] == [big]


def test_secrets_never_reach_the_journal(journald):
    logs.configure("journal", "info", journal_socket=journald.path)
    structlog.get_logger().info("notify.sent", token="abc", url="https://user:pw@hc.example/ping")
    entry = journald.receive()
    assert entry["MAINTD_TOKEN"] == ["***"] and entry["MAINTD_URL"] == ["https://***@hc.example/ping"]
    assert "pw@" not in entry["MESSAGE"][0]


def test_socket_gone_after_start_falls_back_to_stream(journald):
    out = io.StringIO()
    logs.configure("journal", "info", stream=out, journal_socket=journald.path)
    journald.close()
    journald.path.unlink()
    structlog.get_logger().info("still.logged", job="x")
    assert '"MAINTD_EVENT": "still.logged"' in out.getvalue()
