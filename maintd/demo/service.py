"""A stand-in for the maintained service: a tiny HTTP app for the demo and the tests.

GET  /health  -> 200 {"status": "healthy", "version": <VERSION file>}; 503 {"status": "unhealthy"} while the
                 file named by --fail-flag exists (lets a test or an operator break it on purpose).
POST /notify  -> 200, appends the JSON body as one line to --notify-log (the recovery function test).
Runs in the foreground: ``python -m maintd.demo.service --port 8080 --version-file VERSION``.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_handler(version_file: Path | None, fail_flag: Path | None, notify_log: Path | None):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read stdout
            pass

        def _reply(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/health":
                self._reply(404, {"error": "not found"})
                return
            if fail_flag is not None and fail_flag.exists():
                self._reply(503, {"status": "unhealthy"})
                return
            version = version_file.read_text().strip() if version_file and version_file.exists() else "unknown"
            self._reply(200, {"status": "healthy", "version": version})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/notify":
                self._reply(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                message = json.loads(body or b"{}")
            except json.JSONDecodeError:
                self._reply(400, {"error": "bad json"})
                return
            if notify_log is not None:
                with notify_log.open("a") as handle:
                    handle.write(json.dumps(message) + "\n")
            self._reply(200, {"ok": True})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version-file", type=Path)
    parser.add_argument("--fail-flag", type=Path)
    parser.add_argument("--notify-log", type=Path)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port),
                                 make_handler(args.version_file, args.fail_flag, args.notify_log))
    server.serve_forever()


if __name__ == "__main__":
    main()
