"""logs.configure: formats, redaction, stdlib routing, format choice."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from maintd import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "_maintd", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_format_has_one_object_per_line_with_bound_context():
    out = io.StringIO()
    assert logs.configure("json", "info", stream=out) == "json"
    log = structlog.get_logger("maintd.test")
    with bound_contextvars(job="health", run_id="r-1"):
        log.info("job.started", trigger="manual")
    log.debug("never.shown")
    [line] = json_lines(out)
    assert line["event"] == "job.started" and line["job"] == "health" and line["run_id"] == "r-1"
    assert line["level"] == "info" and line["logger"] == "maintd.test" and line["timestamp"].endswith("Z")


def test_stdlib_loggers_go_through_the_same_chain():
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    with bound_contextvars(job="backup"):
        logging.getLogger("apscheduler.scheduler").warning("Run time of job %s was missed", "x")
    logging.getLogger("httpx").info("HTTP Request: POST https://hc.example/secret-uuid")  # quietened
    [line] = json_lines(out)
    assert line["event"] == "Run time of job x was missed"
    assert line["logger"] == "apscheduler.scheduler" and line["level"] == "warning" and line["job"] == "backup"


def test_redaction_masks_secret_keys_and_url_userinfo_but_not_file_names():
    out = io.StringIO()
    logs.configure("json", "debug", stream=out)
    structlog.get_logger().info("config.loaded", password="hunter2", api_token="t0k", passphrase_file="/etc/p",
                                url="rediss://admin:s3cret@redis:6380/0",
                                argv=["curl", "https://u:pw@example.com/x"], nested={"secret": "x", "ok": 1})
    [line] = json_lines(out)
    assert line["password"] == "***" and line["api_token"] == "***"
    assert line["passphrase_file"] == "/etc/p"
    assert line["url"] == "rediss://***@redis:6380/0"
    assert line["argv"] == ["curl", "https://***@example.com/x"]
    assert line["nested"] == {"secret": "***", "ok": 1}
    assert "hunter2" not in out.getvalue() and "s3cret" not in out.getvalue()


def test_exceptions_are_rendered_as_text_in_json():
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("job.crashed")
    [line] = json_lines(out)
    assert "Traceback" in line["exception"] and "ValueError: boom" in line["exception"]


def test_console_format_has_no_colours_outside_a_tty():
    out = io.StringIO()
    logs.configure("console", "info", stream=out)
    structlog.get_logger().warning("health.probe_failed", probe="bridge")
    text = out.getvalue()
    assert "health.probe_failed" in text and "probe=bridge" in text and "\x1b[" not in text


def test_auto_picks_journal_only_when_journal_stream_names_our_stderr(tmp_path: Path):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        assert logs.choose_format("auto", {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream) == "journal"
        assert logs.choose_format("auto", {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream) == "json"
        assert logs.choose_format("auto", {}, stream) == "json"
        assert logs.choose_format("console", {}, stream) == "console"
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert logs.choose_format("auto", {}, tty) == "console"
    os.close(master)


def test_journal_without_socket_falls_back_to_json(tmp_path: Path):
    out = io.StringIO()
    assert logs.configure("journal", "info", stream=out, journal_socket=tmp_path / "missing.sock") == "json"
    structlog.get_logger().info("daemon.started")
    events = [line["event"] for line in json_lines(out)]
    assert events == ["logs.journal_unavailable", "daemon.started"]


def test_field_names_are_journal_safe():
    assert logs.field_name("run_id") == "MAINTD_RUN_ID"
    assert logs.field_name("peer-uid.x") == "MAINTD_PEER_UID_X"
    assert len(logs.field_name("k" * 100)) == 64


def test_native_encoding_uses_length_prefix_for_multiline_values():
    payload = logs.encode_native([("MESSAGE", "a\nb"), ("PRIORITY", "6")])
    assert payload == b"MESSAGE\n" + (3).to_bytes(8, "little") + b"a\nb\nPRIORITY=6\n"
