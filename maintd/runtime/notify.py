"""Notifications after runs: healthchecks-style pings and a webhook.

- Healthchecks (notify.healthchecks_url_file holds the base URL): `<base>/start?rid=<run_id>` when a run starts,
  `<base>?rid=` when it ends succeeded/warning, `<base>/fail?rid=` otherwise. The run id is a UUID, as
  healthchecks.io requires for `rid`.
- Webhook (notify.webhook_url_file): a JSON POST {job, entry, run_id, trigger, outcome, summary, error,
  duration_s, started, finished, host} for each run whose outcome is listed in notify.on, and for every
  `recover` run.

URLs are secrets (they carry tokens): read from their files at send time, never logged. Sending happens on one
background thread, in order, so a slow or dead endpoint never delays a job; a failure is a logged warning,
never a failed run. The webhook is retried on network errors and 5xx replies.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import structlog

from ..config import read_secret
from ..edges.http import request_json
from ..errors import MaintdError
from ..model import RunRecord

if TYPE_CHECKING:
    from ..config import Settings
    from .handle import RunHandle

log = structlog.get_logger("maintd.notify")

RETRY_DELAYS_S = (2.0, 10.0)


def ping_url(base: str, kind: str, run_id: str) -> str:
    """`kind` is "start", "success" or "fail"."""
    base = base.rstrip("/")
    return f"{base}?rid={run_id}" if kind == "success" else f"{base}/{kind}?rid={run_id}"


def webhook_body(record: RunRecord, host: str) -> dict[str, Any]:
    error = record.error.strip().splitlines()[-1] if record.error and record.error.strip() else None
    return {"job": record.job, "entry": record.args.get("_entry", record.job), "run_id": record.run_id,
            "trigger": record.trigger.value, "outcome": record.outcome.value, "summary": record.summary,
            "error": error, "duration_s": round(record.duration_s or 0.0, 3),
            "started": record.started.isoformat(),
            "finished": record.finished.isoformat() if record.finished else None, "host": host}


class Notifier:
    def __init__(self, settings: "Settings", *, host: str | None = None,
                 retry_delays: Sequence[float] = RETRY_DELAYS_S) -> None:
        self.settings = settings
        self.host = host or socket.gethostname()
        self.retry_delays = tuple(retry_delays)
        self._queue: "queue.Queue[Callable[[], None] | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def update_settings(self, settings: "Settings") -> None:
        self.settings = settings

    # -- what the runner calls -----------------------------------------------------------------------------
    def run_started(self, handle: "RunHandle") -> None:
        if self.settings.notify.healthchecks_url_file is not None:
            self._submit(lambda: self._ping("start", handle.run_id, None))

    def run_finished(self, record: RunRecord) -> None:
        notify = self.settings.notify
        if notify.healthchecks_url_file is not None:
            kind = "success" if record.outcome.ok else "fail"
            self._submit(lambda: self._ping(kind, record.run_id, {"outcome": record.outcome.value,
                                                                  "summary": record.summary}))
        # Every recovery is reported (its summary carries the measured time against the objective), whatever
        # notify.on says: the operator must hear that the service was rebuilt.
        if notify.webhook_url_file is not None and (record.outcome.value in notify.on or record.job == "recover"):
            body = webhook_body(record, self.host)
            self._submit(lambda: self._webhook(body))

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far was sent (or given up); False on timeout."""
        with self._lock:
            if self._thread is None:
                return True
        marker = threading.Event()
        self._queue.put(marker.set)
        return marker.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush within `timeout`, then end the sender thread."""
        flushed = self.flush(timeout)
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread = None
        return flushed

    # -- sending -------------------------------------------------------------------------------------------
    def _submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="notify", daemon=True)
                self._thread.start()
        self._queue.put(task)

    def _drain(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # noqa: BLE001 - a bug in a notification must not end the sender
                log.exception("notify.failed", target="internal")

    def _ping(self, kind: str, run_id: str, body: Any) -> None:
        path = self.settings.notify.healthchecks_url_file
        if path is None:
            return
        self._send("healthchecks", path, lambda url: ping_url(url, kind, run_id), body, attempts=1,
                   run_id=run_id, ping=kind)

    def _webhook(self, body: dict[str, Any]) -> None:
        path = self.settings.notify.webhook_url_file
        if path is None:
            return
        self._send("webhook", path, lambda url: url, body, attempts=1 + len(self.retry_delays),
                   run_id=body["run_id"], outcome=body["outcome"])

    def _send(self, target: str, url_file: Any, make_url: Callable[[str], str], body: Any, *, attempts: int,
              **fields: Any) -> None:
        try:
            url = make_url(read_secret(url_file))
        except MaintdError as err:
            log.warning("notify.failed", target=target, error=str(err), **fields)
            return
        for attempt in range(1, attempts + 1):
            try:
                reply = request_json("POST", url, body=body, timeout=self.settings.notify.timeout, secret=True)
            except MaintdError as err:
                problem, retry = str(err), True
            else:
                if 200 <= reply.status < 300:
                    log.debug("notify.sent", target=target, status=reply.status, **fields)
                    return
                problem, retry = f"HTTP {reply.status}", reply.status >= 500
            if not retry or attempt == attempts:
                log.warning("notify.failed", target=target, error=problem, attempts=attempt, **fields)
                return
            time.sleep(self.retry_delays[attempt - 1])
