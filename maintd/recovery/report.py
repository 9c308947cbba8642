"""The JSON reports drills and recoveries leave in ``paths.reports_dir`` (``drill-<time>.json``,
``recover-<mode>-<time>.json``): the backup used, each step with its duration, the measured time against its
objective, Redis key counts, the outcome. Written atomically (temporary name, fsync, rename, fsync the directory),
on success and on failure alike."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backup.durable import write_atomic
from ..errors import Cancelled, MaintdError

FORMAT = 1


@dataclass
class StepLog:
    """Steps of a staged procedure with the time each took (until the next one started, or the end)."""

    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def begin(self, name: str, line: str | None = None) -> float:
        """Record the start of a step; returns the seconds elapsed since the procedure started."""
        elapsed = time.monotonic() - self.started
        self.steps.append({"step": name, "line": line or name, "at_s": round(elapsed, 3)})
        return elapsed

    def timed(self, end: float | None = None) -> list[dict[str, Any]]:
        """The steps with ``duration_s`` (the last one until ``end``, default now)."""
        finish = (time.monotonic() if end is None else end) - self.started
        out = []
        for index, step in enumerate(self.steps):
            until = self.steps[index + 1]["at_s"] if index + 1 < len(self.steps) else finish
            out.append({**step, "duration_s": round(max(0.0, until - step["at_s"]), 3)})
        return out


def outcome_of(error: BaseException | None, failed: bool = False, warnings: bool = False) -> str:
    """The outcome word the runner will record for this run (succeeded, warning, failed, interrupted, crashed)."""
    if isinstance(error, Cancelled):
        return error.reason
    if isinstance(error, MaintdError) or failed:
        return "failed"
    if error is not None:
        return "crashed"
    return "warning" if warnings else "succeeded"


def write_report(directory: Path, name: str, data: dict[str, Any]) -> Path:
    """``directory/name`` holding ``data`` as JSON, atomically; OSError when it cannot be written."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = directory / name
    payload = (json.dumps({"format": FORMAT, **data}, indent=2, default=str, ensure_ascii=False) + "\n").encode()
    write_atomic(path, payload, mode=0o640)
    return path


def save(ctx: Any, name: str, data: dict[str, Any]) -> Path | None:
    """Write a report into ``ctx.settings.paths.reports_dir``; a failure is a warning (the run's own outcome
    stands), never an error."""
    try:
        return write_report(ctx.settings.paths.reports_dir, name, data)
    except OSError as err:
        ctx.warn(f"cannot write the report {name} into {ctx.settings.paths.reports_dir}: {err.strerror or err}")
        return None
