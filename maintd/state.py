"""maintd's own memory: a local SQLite database (WAL) in the state dir.

Run history, last run / last success per job (catch-up after downtime), pauses, and a small key-value store of
JSON documents for job state (health counters, verify results, tier status). It must work when the maintained
Redis is down, so it never touches Redis. Thread-safe: one connection per thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .errors import StorageError
from .model import Outcome, RunRecord, Trigger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    job      TEXT NOT NULL,
    trigger  TEXT NOT NULL,
    started  TEXT NOT NULL,
    finished TEXT,
    outcome  TEXT NOT NULL,
    summary  TEXT NOT NULL DEFAULT '',
    error    TEXT,
    data     TEXT NOT NULL DEFAULT '{}',
    args     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_job_started ON runs (job, started);
CREATE TABLE IF NOT EXISTS kv (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StorageError(f"cannot open state database {path}: {err}") from err

    @classmethod
    def open(cls, state_dir: Path) -> "State":
        return cls(state_dir / "state.db")

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._connect().execute(sql, params)
        except sqlite3.Error as err:
            raise StorageError(f"state database {self.path}: {err}") from err

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- runs ------------------------------------------------------------------------------------------------
    def record_start(self, record: RunRecord) -> None:
        self._execute(
            "INSERT INTO runs (run_id, job, trigger, started, outcome, args) VALUES (?, ?, ?, ?, ?, ?)",
            (record.run_id, record.job, record.trigger.value, _iso(record.started), Outcome.RUNNING.value,
             json.dumps(record.args, default=str)))

    def record_finish(self, run_id: str, *, finished: datetime, outcome: Outcome, summary: str = "",
                      error: str | None = None, data: dict[str, Any] | None = None) -> None:
        self._execute(
            "UPDATE runs SET finished = ?, outcome = ?, summary = ?, error = ?, data = ? WHERE run_id = ?",
            (_iso(finished), outcome.value, summary, error, json.dumps(data or {}, default=str), run_id))

    def mark_stale_runs(self, finished: datetime) -> list[str]:
        """Runs left 'running' by a crash are recorded as interrupted. Returns their ids."""
        rows = self._execute("SELECT run_id FROM runs WHERE outcome = ?", (Outcome.RUNNING.value,)).fetchall()
        for (run_id,) in rows:
            self.record_finish(run_id, finished=finished, outcome=Outcome.INTERRUPTED,
                               summary="daemon stopped during the run", error="daemon died during the run")
        return [r[0] for r in rows]

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _record(row) if row else None

    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        if job:
            rows = self._execute("SELECT * FROM runs WHERE job = ? ORDER BY started DESC LIMIT ?", (job, limit))
        else:
            rows = self._execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
        return [_record(r) for r in rows.fetchall()]

    def last_run(self, job: str) -> RunRecord | None:
        rows = self.history(job, 1)
        return rows[0] if rows else None

    def last_success(self, job: str) -> RunRecord | None:
        row = self._execute(
            "SELECT * FROM runs WHERE job = ? AND outcome IN (?, ?) ORDER BY started DESC LIMIT 1",
            (job, Outcome.SUCCEEDED.value, Outcome.WARNING.value)).fetchone()
        return _record(row) if row else None

    def trim_history(self, keep: int) -> int:
        cursor = self._execute(
            "DELETE FROM runs WHERE run_id NOT IN (SELECT run_id FROM runs ORDER BY started DESC LIMIT ?)"
            " AND outcome != ?", (keep, Outcome.RUNNING.value))
        return cursor.rowcount

    # -- key/value -------------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self._execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        self._execute(
            "INSERT INTO kv (key, value, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (key, json.dumps(value, default=str), _iso(datetime.now(timezone.utc))))

    def delete(self, key: str) -> None:
        self._execute("DELETE FROM kv WHERE key = ?", (key,))

    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        rows = self._execute("SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                             (prefix, prefix + "\uffff")).fetchall()
        for key, value in rows:
            yield key, json.loads(value)

    # -- pauses (data, not a flag in memory: they survive restarts) -------------------------------------------
    def paused(self) -> set[str]:
        """Paused schedule entries; "*" pauses every scheduled run."""
        return set(self.get("paused", []))

    def set_paused(self, name: str, paused: bool) -> None:
        current = self.paused()
        current = current | {name} if paused else current - {name}
        self.put("paused", sorted(current))


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, job, trigger, started, finished, outcome, summary, error, data, args = row
    return RunRecord(run_id=run_id, job=job, trigger=Trigger(trigger), started=_parse(started),
                     finished=_parse(finished), outcome=Outcome(outcome), summary=summary, error=error,
                     data=json.loads(data), args=json.loads(args))
