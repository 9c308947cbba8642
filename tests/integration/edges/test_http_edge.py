"""The HTTP edge against the real stand-in app and small servers in the test process."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading
from typing import Iterator

import pytest

from maintd.edges import http as http_edge
from maintd.errors import UnavailableError
from tests.conftest import StandInService
from tests.support.waiting import free_port


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow":
            threading.Event().wait(2)
        if self.path == "/big":
            body = b"[" + b"1," * (http_edge.MAX_BODY_BYTES) + b"1]"
        elif self.path == "/text":
            body = b"not json"
        else:
            body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_json_reads_status_body_and_time(stand_in: StandInService) -> None:
    status, body, elapsed = http_edge.get_json(stand_in.url, timeout=5)
    assert status == 200
    assert body == {"status": "healthy", "version": "1.2.3"}
    assert 0 < elapsed < 5


def test_get_json_reports_an_unhealthy_status_with_its_body(stand_in: StandInService) -> None:
    stand_in.fail_flag.write_text("")
    status, body, _ = http_edge.get_json(stand_in.url, timeout=5)
    assert (status, body) == (503, {"status": "unhealthy"})


def test_post_json_delivers_the_body(stand_in: StandInService) -> None:
    status = http_edge.post_json(stand_in.url.replace("/health", "/notify"), {"title": "t"}, timeout=5)
    assert status == 200
    assert stand_in.notify_log.read_text().strip() == '{"title": "t"}'


def test_non_json_and_oversized_bodies_give_none(local_server: str) -> None:
    assert http_edge.get_json(f"{local_server}/text", timeout=5)[1] is None
    reply = http_edge.request_json("GET", f"{local_server}/big", timeout=5)
    assert reply.status == 200 and reply.json is None


def test_refused_connection_is_unavailable_with_the_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    with pytest.raises(UnavailableError, match="Connection refused|connect") as caught:
        http_edge.get_json(url, timeout=2)
    assert url in str(caught.value)


def test_slow_reply_is_unavailable_after_the_timeout(local_server: str) -> None:
    with pytest.raises(UnavailableError, match="no reply within 0.3s"):
        http_edge.get_json(f"{local_server}/slow", timeout=0.3)


def test_secret_urls_never_appear_in_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/T0KEN-s3cret?key=abc"
    with pytest.raises(UnavailableError) as caught:
        http_edge.post_json(url, {"x": 1}, timeout=2, secret=True)
    assert "T0KEN" not in str(caught.value) and "abc" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_invalid_and_unsupported_urls_are_unavailable() -> None:
    with pytest.raises(UnavailableError):
        http_edge.get_json("ftp://example.invalid/x", timeout=1)
    with pytest.raises(UnavailableError):
        http_edge.get_json("http://[::1/x", timeout=1)


def test_a_password_in_a_probe_url_is_hidden_in_errors() -> None:
    port = free_port()
    with pytest.raises(UnavailableError) as caught:
        http_edge.get_json(f"http://monitor:hunter2@127.0.0.1:{port}/health", timeout=2)
    assert "hunter2" not in str(caught.value)
    assert f"http://monitor:***@127.0.0.1:{port}/health" in str(caught.value)
