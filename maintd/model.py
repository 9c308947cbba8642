"""Plain values shared by every layer: outcomes, triggers, run records. Stdlib only."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Outcome(str, enum.Enum):
    SUCCEEDED = "succeeded"
    WARNING = "warning"  # completed, with warnings
    FAILED = "failed"  # a MaintdError
    CRASHED = "crashed"  # a bug: traceback logged
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # daemon stop
    SKIPPED = "skipped"
    RUNNING = "running"  # only while in progress, in state

    @property
    def ok(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.WARNING)


class Trigger(str, enum.Enum):
    SCHEDULE = "schedule"
    CATCHUP = "catchup"  # missed while the daemon was down
    MANUAL = "manual"  # maintctl
    CHAINED = "chained"  # started by another job (prune after backup)


class BackupType(str, enum.Enum):
    FULL = "full"
    INCREMENTAL = "incremental"
    DIFFERENTIAL = "differential"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    trigger: Trigger
    started: datetime
    finished: datetime | None = None
    outcome: Outcome = Outcome.RUNNING
    summary: str = ""
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()
