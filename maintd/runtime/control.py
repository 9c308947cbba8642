"""The control socket server: newline-delimited JSON (maintd/protocol.py) on a Unix stream socket.

One accept thread, one thread per connection (at most control.max_clients; more are answered `busy`). Each
connection: SO_PEERCRED -> access (root/admin group: everything; read group: READ_OPS; others: `denied`, logged
`control.denied`); one request line within control.request_timeout and control.max_request_bytes (else
`bad_request` and close); the reply. `run` streams the run's events and ends with its record; a client that goes
away mid-run leaves the run going. A bad client never disturbs the daemon or other clients: every failure of a
connection ends that connection only.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from .. import protocol
from ..errors import MaintdError, NotFoundError, UsageError
from ..model import Trigger
from . import sockfile
from .control_ops import HANDLERS, ControlHost
from .peer import Access, Peer, access_for, group_id, peer_of
from .views import record_view

log = structlog.get_logger("maintd.control")

WRITE_TIMEOUT_S = 30.0
"""A client that does not read its replies for this long is dropped (the run it follows goes on)."""
EVENT_QUEUE = 1000
"""Events buffered per following client; progress events beyond it are dropped (the next one supersedes)."""


class _Gone(Exception):
    """The client closed its end or stopped reading."""


class RequestTimeout(UsageError):
    pass


class ControlServer:
    def __init__(self, host: ControlHost) -> None:
        self.host = host
        self.path: Path = host.settings.control.socket
        self._listener: socket.socket | None = None
        self._inode = 0
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closing = threading.Event()
        self._mutex = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._admin_gid: int | None = None
        self._read_gid: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def claim(self) -> None:
        """Make sure we are the only daemon on this socket, before anything else starts: check the path and
        groups, create the directory, take the instance lock, remove a stale socket file. ConfigError (bad group,
        path too long), UnavailableError (another daemon runs, or the path is taken by something else)."""
        sockfile.check_path(self.path)
        self._resolve_groups()
        modes = sockfile.modes_for(self.host.settings.control.read_group is not None)
        sockfile.prepare_dir(self.path.parent, self._admin_gid, modes.directory)
        self._lock_fd = sockfile.acquire_instance_lock(self.path)
        try:
            if sockfile.clear_stale(self.path):
                log.warning("control.stale_socket_removed", path=str(self.path))
        except BaseException:
            self._release_lock()
            raise

    def serve(self) -> None:
        """Bind the socket (mode and group set before it appears under its name) and start accepting."""
        control = self.host.settings.control
        if self._lock_fd is None:
            self.claim()
        modes = sockfile.modes_for(control.read_group is not None)
        self._listener, self._inode = sockfile.bind(self.path, self._admin_gid, modes.socket)
        self._thread = threading.Thread(target=self._accept_loop, name="control-accept", daemon=True)
        self._thread.start()
        log.info("control.listening", path=str(self.path), admin_group=control.admin_group,
                 read_group=control.read_group)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _resolve_groups(self) -> None:
        """Both gids or, with a ConfigError for a missing group, neither."""
        control = self.host.settings.control
        admin = group_id(control.admin_group, "admin_group")
        reader = group_id(control.read_group, "read_group") if control.read_group else None
        self._admin_gid, self._read_gid = admin, reader

    def update_settings(self) -> None:
        """After a reload: new groups and limits apply to the next connections. The socket path cannot change
        without a restart."""
        settings = self.host.settings
        if settings.control.socket != self.path:
            log.warning("control.socket_change_needs_restart", path=str(self.path),
                        configured=str(settings.control.socket))
        previous = (self._admin_gid, self._read_gid)
        try:
            self._resolve_groups()
        except MaintdError as err:
            log.warning("control.group_change_ignored", error=str(err))
            return
        if (self._admin_gid, self._read_gid) != previous and self._listener is not None:
            modes = sockfile.modes_for(self._read_gid is not None)
            try:
                sockfile.prepare_dir(self.path.parent, self._admin_gid, modes.directory)
                sockfile.set_mode(self.path, self._admin_gid, modes.socket)
            except MaintdError as err:
                log.warning("control.socket_permissions_unchanged", error=str(err))

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, grace_s: float = 2.0) -> None:
        """Stop accepting, give connections `grace_s` to finish their replies, then cut them; remove the socket
        file (ours only) and release the instance lock."""
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        self.remove_file()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self._connection_count():
            time.sleep(0.02)
        with self._mutex:
            for conn in list(self._connections):
                _shutdown(conn)
        self._release_lock()

    def remove_file(self) -> None:
        """Close the listening socket and remove its file (if it is still ours). Safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            sockfile.remove_if_ours(self.path, self._inode)

    def _connection_count(self) -> int:
        with self._mutex:
            return len(self._connections)

    # -- accepting -------------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([listener, self._wake_r], [], [])
            except OSError as err:
                log.error("control.accept_failed", error=str(err))
                return
            if self._closing.is_set():
                return
            if listener not in ready:
                continue
            try:
                conn, _ = listener.accept()
            except OSError as err:  # EMFILE and friends: log, back off a little, keep serving
                log.warning("control.accept_failed", error=str(err))
                time.sleep(0.1)
                continue
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        with self._mutex:
            full = len(self._connections) >= self.host.settings.control.max_clients
            if not full:
                self._connections.add(conn)
        if full:
            log.warning("control.too_many_clients", limit=self.host.settings.control.max_clients)
            conn.settimeout(1.0)
            try:
                conn.sendall(protocol.error("busy", "too many control connections, try again", 75))
            except OSError:
                pass
            conn.close()
            return
        try:
            threading.Thread(target=self._serve, args=(conn,), name="control-conn", daemon=True).start()
        except RuntimeError as err:  # no more threads: refuse this client, keep the daemon
            log.error("control.thread_failed", error=str(err))
            with self._mutex:
                self._connections.discard(conn)
            conn.close()

    # -- one connection --------------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        try:
            peer = peer_of(conn)
            try:
                self._handle(conn, peer)
            except MaintdError as err:
                _send(conn, protocol.error(err.code, str(err), err.exit_code))
            except _Gone:
                pass
            except Exception as err:  # noqa: BLE001 - a bug in one request must not take the daemon down
                log.exception("control.crashed", peer_pid=peer.pid, peer_uid=peer.uid)
                _send(conn, protocol.error("internal", f"internal error: {err}", 70))
        except (_Gone, OSError):
            pass
        finally:
            with self._mutex:
                self._connections.discard(conn)
            _shutdown(conn)
            conn.close()

    def _handle(self, conn: socket.socket, peer: Peer) -> None:
        control = self.host.settings.control
        line = read_line(conn, control.max_request_bytes, control.request_timeout)
        op, args = protocol.decode_request(line)
        access = access_for(peer.uid, peer.groups, self._admin_gid, self._read_gid)
        if access is Access.NONE or (access is Access.READ and op not in protocol.READ_OPS):
            log.warning("control.denied", peer_uid=peer.uid, peer_pid=peer.pid, peer_gid=peer.gid, op=op,
                        access=access.value)
            _send(conn, protocol.error("denied", f"uid {peer.uid} may not {op!r}: ask an administrator to "
                                                 f"add you to the group {control.admin_group!r}", 77))
            return
        if op in protocol.MUTATING_OPS:
            log.info("control.request", peer_uid=peer.uid, peer_pid=peer.pid, op=op, args=args)
        else:
            log.debug("control.request", peer_uid=peer.uid, peer_pid=peer.pid, op=op)
        if op == "run":
            self._run(conn, args)
        elif op == "watch":
            self._watch(conn, args)
        else:
            _send(conn, protocol.result(HANDLERS[op](self.host, args)))

    def _run(self, conn: socket.socket, args: dict[str, Any]) -> None:
        job = args.get("job")
        job_args = args.get("args", {})
        if not isinstance(job, str) or not job:
            raise UsageError("run: argument 'job' must name a job or a schedule entry")
        if not isinstance(job_args, dict):
            raise UsageError("run: argument 'args' must be a JSON object")
        wait, detach = args.get("wait", False), args.get("detach", False)
        if not isinstance(wait, bool) or not isinstance(detach, bool):
            raise UsageError("run: 'wait' and 'detach' must be true or false")
        handle = self.host.runner.start(job, args=job_args, trigger=Trigger.MANUAL, wait_for_locks=wait)
        if detach:
            _send(conn, protocol.result({"run_id": handle.run_id, "job": handle.job, "entry": handle.entry}))
            return
        self._follow(conn, handle)

    def _watch(self, conn: socket.socket, args: dict[str, Any]) -> None:
        run_id = args.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise UsageError("watch: argument 'run_id' is required")
        for handle in self.host.runner.active():
            if handle.run_id == run_id:
                self._follow(conn, handle)
                return
        record = self.host.state.get_run(run_id)
        if record is None:
            raise NotFoundError(f"no run {run_id}")
        _send(conn, protocol.result(record_view(record)))

    def _follow(self, conn: socket.socket, handle: Any) -> None:
        """Stream a run's events to the client, then its record. Leaving early never cancels the run."""
        events: queue.Queue[dict[str, Any]] = queue.Queue(EVENT_QUEUE)

        def listener(event: dict[str, Any]) -> None:
            try:
                events.put_nowait(dict(event))
            except queue.Full:
                pass

        handle.subscribe(listener)
        warnings: list[str] = []
        try:
            _send(conn, protocol.event("started", run_id=handle.run_id, job=handle.job, entry=handle.entry))
            while True:
                try:
                    event = events.get(timeout=0.25)
                except queue.Empty:
                    if handle.done:
                        break
                    if _client_gone(conn):
                        log.info("control.client_left", run_id=handle.run_id)
                        return
                    continue
                self._forward(conn, handle, event, warnings)
            while not events.empty():
                self._forward(conn, handle, events.get_nowait(), warnings)
            record = handle.wait()
            view = record_view(record)
            view["warnings"] = view["warnings"] or warnings
            _send(conn, protocol.result(view))
        finally:
            handle.unsubscribe(listener)

    @staticmethod
    def _forward(conn: socket.socket, handle: Any, event: dict[str, Any], warnings: list[str]) -> None:
        name = str(event.pop("event", "progress"))
        if name == "warning":
            warnings.append(str(event.get("message", "")))
        event.pop("type", None)
        event.setdefault("run_id", handle.run_id)
        _send(conn, protocol.encode({"type": "event", "event": name, **event}))


def read_line(conn: socket.socket, limit: int, timeout: float) -> bytes:
    """One request line (without its newline) within `timeout` seconds and `limit` bytes."""
    deadline = time.monotonic() + timeout
    buffer = bytearray()
    while True:
        end = buffer.find(b"\n")
        if end >= 0:
            if end > limit:
                break
            return bytes(buffer[:end])
        if len(buffer) > limit:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(f"no complete request line within {timeout:g}s")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            raise RequestTimeout(f"no complete request line within {timeout:g}s") from None
        except OSError as err:
            raise _Gone() from err
        if not chunk:
            if buffer:
                raise UsageError("connection closed before the end of the request line")
            raise _Gone()
        buffer += chunk
    raise UsageError(f"request line longer than {limit} bytes")


def _send(conn: socket.socket, payload: bytes) -> None:
    conn.settimeout(WRITE_TIMEOUT_S)
    try:
        conn.sendall(payload)
    except OSError as err:
        raise _Gone() from err


def _client_gone(conn: socket.socket) -> bool:
    try:
        ready, _, _ = select.select([conn], [], [], 0)
        if not ready:
            return False
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
