"""Drives the real daemon as an operator (and systemd) would: a `maintd run` subprocess, a datagram
NOTIFY_SOCKET owned by the test, maintctl subprocesses, raw socket clients, a slow HTTP endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from maintd import ctl, protocol
from tests.support.configs import write_config
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a daemon or maintctl child: our package importable, nothing inherited that would
    change its behaviour (systemd variables, MAINTD_ overrides)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAINTD_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM", "LISTEN_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; records every datagram, parsed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._messages: list[dict[str, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._lock:
                self._messages.append(fields)

    @property
    def messages(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, predicate: Callable[[dict[str, str]], bool], *, after: int = 0, timeout: float = 15.0,
                 message: str = "notify message") -> tuple[int, dict[str, str]]:
        """The first message (index, fields) at or after index `after` that satisfies predicate."""
        def find() -> tuple[int, dict[str, str]] | None:
            for index, fields in enumerate(self.messages[after:], start=after):
                if predicate(fields):
                    return index, fields
            return None
        return wait_for(find, timeout=timeout, message=message)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()


class Daemon:
    """`maintd run --config PATH` as a child process with its output in a file."""

    def __init__(self, config: Path, socket_path: Path, *, env: dict[str, str] | None = None,
                 log_file: Path | None = None) -> None:
        self.config = config
        self.socket = socket_path
        self.env = child_env(env)
        self.log_file = log_file or config.with_name("daemon.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> "Daemon":
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "maintd", "run", "--config", str(self.config),
                                          "--log-format", "json"], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=str(self.config.parent))
        if wait:
            wait_for(lambda: self.answers() or self._died(), timeout=START_TIMEOUT_S, message="daemon answering")
            assert self.proc.poll() is None, f"daemon exited with {self.proc.returncode}:\n{self.output()}"
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def answers(self) -> bool:
        try:
            return bool(ctl.Client(self.socket, timeout=2).call("ping").get("pong"))
        except ctl.CtlError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def output(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon's JSON log lines (optionally only one event name)."""
        out = []
        for line in self.output().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                out.append(entry)
        return out

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return maintctl("--socket", str(self.socket), *args, timeout=timeout)

    def call(self, op: str, **args: Any) -> Any:
        return ctl.Client(self.socket, timeout=30).call(op, **args)


def maintctl(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maintd.ctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(env), stdin=subprocess.DEVNULL)


def raw_client(path: Path, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def read_replies(sock: socket.socket) -> list[dict[str, Any]]:
    """Every reply line until the server closes (or resets) the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return [protocol.decode_reply(line) for line in data.splitlines() if line.strip()]


def request(path: Path, op: str, **args: Any) -> list[dict[str, Any]]:
    with raw_client(path) as sock:
        sock.sendall(protocol.request(op, **args))
        return read_replies(sock)


def as_user(uid: int, gid: int, func: Callable[[], int]) -> int:
    """Run func in a forked child that has dropped to uid/gid with no supplementary groups; its return value
    is the child's exit status. The tests run as root; this is the unprivileged client."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = func()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


class SlowHealthEndpoint:
    """An HTTP /health that answers only once released (or after `max_wait_s`): makes a health run as long as
    a test needs, without sleeping in the test."""

    def __init__(self, max_wait_s: float = 30.0) -> None:
        self.release = threading.Event()
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                endpoint.requests += 1
                endpoint.release.wait(max_wait_s)
                body = b'{"status": "healthy", "version": "1"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
    return wait_for(predicate, timeout=timeout, message=message)


def monotonic_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# -- fixtures (imported by the conftest files of tests/e2e and tests/integration/control) --------------------


class DaemonFactory:
    """Writes a config under the test's directory and starts daemons on it; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemons: list[Daemon] = []

    def config(self, extra: dict[str, Any] | None = None) -> Path:
        return write_config(self.root, extra)

    @property
    def socket(self) -> Path:
        return self.root / "run" / "maintd.sock"

    def start(self, extra: dict[str, Any] | None = None, *, env: dict[str, str] | None = None,
              wait: bool = True, write: bool = True) -> Daemon:
        config = self.config(extra) if write else self.root / "maintd.toml"
        socket_path = Path(_socket_of(extra) or self.socket)
        daemon = Daemon(config, socket_path, env=env, log_file=self.root / f"daemon-{len(self.daemons)}.log")
        self.daemons.append(daemon)
        return daemon.start(wait=wait)

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait(10)


def _socket_of(extra: dict[str, Any] | None) -> str | None:
    return ((extra or {}).get("control") or {}).get("socket")


@pytest.fixture
def daemons(tmp_path: Path, passphrase_file: Path):  # type: ignore[no-untyped-def]
    factory = DaemonFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def notify_socket(tmp_path: Path):  # type: ignore[no-untyped-def]
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def slow_endpoint():  # type: ignore[no-untyped-def]
    endpoint = SlowHealthEndpoint()
    yield endpoint
    endpoint.close()


def slow_probe(endpoint: SlowHealthEndpoint, timeout: float = 30.0) -> dict[str, Any]:
    """Config making `health` last until the endpoint is released."""
    return {"health": {"probes": [{"kind": "http", "name": "slow", "url": endpoint.url, "timeout": timeout}]}}
