"""The job contract: what a job is and what it receives. Pure, so domain code may take a JobContext too.

Jobs never import the runtime: the runner builds a JobContext and calls
``spec.run(ctx, args)``; the job plans (pure functions) then acts through the context.

A job module exposes ``JOB = JobSpec(...)`` (or ``JOBS = (...)``); ``maintd.jobs.registry()`` finds it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import Cancelled, UsageError
from .model import Outcome, Trigger

if TYPE_CHECKING:
    import structlog

    from .config import Settings
    from .state import State


@dataclass
class JobResult:
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    """JSON-able details: stored with the run and returned to maintctl (e.g. {"id": backup_id})."""
    warnings: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    """None: SUCCEEDED, or WARNING when there are warnings (job or ctx). Set FAILED for a verify that found
    damage but wants to return its report as data."""


@dataclass
class JobContext:
    settings: "Settings"
    job: str
    run_id: str
    trigger: Trigger
    state: "State"
    log: "structlog.typing.FilteringBoundLogger"
    now: Callable[[], datetime]
    """Timezone-aware UTC now; injectable in tests."""
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "interrupted"
    dry_run: bool = False
    emit: Callable[[str, dict[str, Any]], None] = lambda name, fields: None
    """Sends an event (progress, step) to the maintctl clients following this run."""
    warnings: list[str] = field(default_factory=list)
    services: Any = None
    """A maintd.edges.services.ServiceManager built from settings.services (None until built)."""

    def progress(self, **fields: Any) -> None:
        """Report progress: phase, done_bytes, total_bytes, done_files, total_files, message."""
        self.emit("progress", fields)

    def step(self, name: str, **fields: Any) -> None:
        """Report a named step of a staged procedure (recovery)."""
        self.log.info("job.step", step=name, **fields)
        self.emit("step", {"step": name, **fields})

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append(message)
        self.log.warning("job.warning", message=message, **fields)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Call between units of work; raises Cancelled once a timeout or a stop asked the run to end."""
        if self.cancel_event.is_set():
            raise Cancelled(f"run cancelled ({self.cancel_reason})", reason=self.cancel_reason)


ArgParser = Callable[[Mapping[str, Any]], dict[str, Any]]


def no_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"dry_run"}
    if extra:
        raise UsageError(f"unexpected argument(s): {', '.join(sorted(extra))}")
    return dict(args)


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: Callable[[JobContext, dict[str, Any]], JobResult]
    description: str
    locks: tuple[str, ...] = ()
    """Named kernel locks held for the run besides the job's own: jobs sharing a name exclude each other
    (backup, restore, prune, update, recover, drill take "target")."""
    parse_args: ArgParser = no_args
    """Validates and normalises args from config or maintctl; raises UsageError. Must accept `dry_run`."""
    mutating: bool = True
