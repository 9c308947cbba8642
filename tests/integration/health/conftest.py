"""A JobContext built directly (the job's public interface): settings, a State on tmp, a logger, a clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import structlog

from maintd.config import Settings
from maintd.edges import services as services_edge
from maintd.jobs.base import JobContext
from maintd.model import Trigger
from maintd.state import State


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_ctx(tmp_path: Path, clock: Clock) -> Callable[..., JobContext]:
    states: dict[Path, State] = {}

    def make(settings: Settings, *, job: str = "health", run_id: str = "run-1", dry_run: bool = False,
             services: Any = "build") -> JobContext:
        path = settings.paths.state_dir
        state = states.setdefault(path, State.open(path))
        ctx = JobContext(settings=settings, job=job, run_id=run_id, trigger=Trigger.MANUAL, state=state,
                         log=structlog.get_logger("test"), now=clock, dry_run=dry_run)
        ctx.services = services_edge.build(settings, ctx.cancel_event) if services == "build" else services
        return ctx

    yield make
    for state in states.values():
        state.close()
