"""A run as the outside sees it while it goes on: identity, progress events, cancel, wait.

The Runner creates one RunHandle per run; the control server subscribes maintctl clients to it.
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime
from typing import Any, Callable

import structlog

from ..model import RunRecord, Trigger

log = structlog.get_logger("maintd.runner")

Listener = Callable[[dict[str, Any]], None]


def new_run_id(now: datetime) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort by start; a UUID, as healthchecks-style `rid` needs."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = rand >> 68 & 0xFFF, rand & ((1 << 62) - 1)
    value = millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


class RunHandle:
    """One run, from `Runner.start()` until its record is written. Thread-safe."""

    def __init__(self, *, run_id: str, job: str, entry: str, trigger: Trigger, started: datetime,
                 args: dict[str, Any], timeout_s: float) -> None:
        self.run_id = run_id
        self.job = job
        self.entry = entry
        self.trigger = trigger
        self.started = started
        self.args = args
        self.timeout_s = timeout_s
        self.cancel_event = threading.Event()
        self.cancel_reason: str | None = None
        self.phase = "waiting"  # waiting (for locks) -> running -> finished
        self.thread: threading.Thread | None = None
        self._ctx: Any = None  # the JobContext, once the job runs
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._progress: dict[str, Any] | None = None
        self._record: RunRecord | None = None
        self._done = threading.Event()

    def __repr__(self) -> str:
        return f"<RunHandle {self.entry} {self.run_id} {self.phase}>"

    # -- events --------------------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Receive every later event; the latest progress, if any, is delivered at once."""
        with self._lock:
            self._listeners.append(listener)
            latest = self._progress
        if latest is not None:
            self._deliver(listener, latest)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def emit(self, name: str, fields: dict[str, Any]) -> None:
        """Send an event ({"event": name, "run_id": ..., **fields}) to every subscriber."""
        event = {"event": name, "run_id": self.run_id, "job": self.job, **fields}
        with self._lock:
            if name == "progress":
                self._progress = event
            listeners = list(self._listeners)
        for listener in listeners:
            self._deliver(listener, event)

    def _deliver(self, listener: Listener, event: dict[str, Any]) -> None:
        try:
            listener(event)
        except Exception as err:  # noqa: BLE001 - a broken client must not break the run
            log.debug("run.listener_failed", run_id=self.run_id, error=repr(err))
            self.unsubscribe(listener)

    # -- control -------------------------------------------------------------------------------------------
    def cancel(self, reason: str = "interrupted") -> None:
        """Ask the run to end: the job sees Cancelled at its next check. The first reason given wins."""
        with self._lock:
            if self.cancel_reason is None:
                self.cancel_reason = reason
                if self._ctx is not None:
                    self._ctx.cancel_reason = reason
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> RunRecord | None:
        """The final record, or None if the run has not ended within `timeout` seconds."""
        self._done.wait(timeout)
        return self._record if self._done.is_set() else None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def record(self) -> RunRecord | None:
        return self._record

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            progress = dict(self._progress) if self._progress else None
        return {"run_id": self.run_id, "job": self.job, "entry": self.entry, "trigger": self.trigger.value,
                "started": self.started.isoformat(), "state": self.phase, "timeout_s": self.timeout_s,
                "cancel_requested": self.cancel_reason, "progress": progress}

    # -- used by the Runner --------------------------------------------------------------------------------
    def _attach(self, ctx: Any) -> None:
        with self._lock:
            self._ctx = ctx
            if self.cancel_reason is not None:
                ctx.cancel_reason = self.cancel_reason

    def _claim_final(self, record: RunRecord) -> bool:
        """Store the final record once; False when the run was already finalised (timeout after abandon)."""
        with self._lock:
            if self._record is not None:
                return False
            self._record = record
            self.phase = "finished"
            return True

    def _set_done(self) -> None:
        self._done.set()
