"""Notifications against a real HTTP server in the test process."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from structlog.testing import capture_logs

from maintd.errors import StorageError
from maintd.jobs.base import JobResult, JobSpec
from maintd.model import Outcome
from maintd.runtime.notify import Notifier
from maintd.runtime.runner import Runner
from maintd.state import State


class Recorder:
    """A tiny HTTP server that records every request and answers with `status` (or a queue of them)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorder.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                          "json": json.loads(raw) if raw else None})
                status = recorder.statuses.pop(0) if recorder.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def _ok(ctx, args):
    return JobResult("3 probes healthy")


def _fail(ctx, args):
    raise StorageError("no space left on /backups")


SPECS = {"ok": JobSpec(name="ok", run=_ok, description=""), "fail": JobSpec(name="fail", run=_fail, description="")}


def make(tmp_path: Path, settings, recorder: Recorder, **notify: Any) -> tuple[Runner, Notifier]:
    hc = tmp_path / "secrets" / "hc.url"
    hook = tmp_path / "secrets" / "webhook.url"
    hc.parent.mkdir(parents=True, exist_ok=True)
    hc.write_text(f"{recorder.base}/ping/0c8f1e2a-secret-uuid\n")
    hook.write_text(f"{recorder.base}/hook/tok3n\n")
    config = settings({"notify": {"healthchecks_url_file": str(hc), "webhook_url_file": str(hook), "timeout": 5,
                                  **notify}})
    notifier = Notifier(config, host="host-a", retry_delays=(0.05,))
    runner = Runner(config, State.open(config.paths.state_dir), SPECS, notifier=notifier,
                    services_factory=lambda s, c: None)
    return runner, notifier


def test_healthchecks_start_and_success_pings_carry_the_run_id(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder)
    record = runner.run_sync("ok")
    assert notifier.flush(10)
    assert [(r["path"], r["query"]) for r in recorder.requests] == [
        ("/ping/0c8f1e2a-secret-uuid/start", {"rid": [record.run_id]}),
        ("/ping/0c8f1e2a-secret-uuid", {"rid": [record.run_id]}),
    ]
    assert recorder.requests[1]["json"] == {"outcome": "succeeded", "summary": "3 probes healthy"}


def test_failed_run_pings_fail_and_posts_the_webhook(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder)
    record = runner.run_sync("fail")
    assert notifier.flush(10)
    paths = [r["path"] for r in recorder.requests]
    assert paths == ["/ping/0c8f1e2a-secret-uuid/start", "/ping/0c8f1e2a-secret-uuid/fail", "/hook/tok3n"]
    body = recorder.requests[2]["json"]
    assert body["job"] == "fail" and body["run_id"] == record.run_id and body["outcome"] == "failed"
    assert body["summary"] == "no space left on /backups" and body["host"] == "host-a"
    assert body["error"] == "no space left on /backups" and isinstance(body["duration_s"], float)


def test_webhook_only_for_outcomes_listed_in_notify_on(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder, on=["succeeded"])
    runner.run_sync("fail")
    runner.run_sync("ok")
    assert notifier.flush(10)
    hooks = [r["json"]["outcome"] for r in recorder.requests if r["path"].startswith("/hook")]
    assert hooks == ["succeeded"]


def test_webhook_is_retried_after_a_server_error(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder)
    recorder.statuses = [200, 200, 503]  # start ping, fail ping, first webhook attempt
    runner.run_sync("fail")
    assert notifier.flush(10)
    assert [r["path"] for r in recorder.requests].count("/hook/tok3n") == 2


def test_unreachable_endpoint_is_a_warning_never_a_failed_run_and_urls_stay_secret(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder)
    recorder.close()  # nothing listens any more
    with capture_logs() as logs:
        record = runner.run_sync("fail")
        assert notifier.flush(20)
    assert record.outcome is Outcome.FAILED and runner.state.get_run(record.run_id).outcome is Outcome.FAILED
    failures = [e for e in logs if e["event"] == "notify.failed"]
    assert {e["target"] for e in failures} == {"healthchecks", "webhook"}
    assert "secret-uuid" not in repr(logs) and "tok3n" not in repr(logs)


def test_missing_url_file_is_a_warning(tmp_path, settings, recorder):
    runner, notifier = make(tmp_path, settings, recorder)
    (tmp_path / "secrets" / "hc.url").unlink()
    with capture_logs() as logs:
        assert runner.run_sync("ok").outcome is Outcome.SUCCEEDED
        assert notifier.flush(10)
    assert [e["target"] for e in logs if e["event"] == "notify.failed"] == ["healthchecks", "healthchecks"]
