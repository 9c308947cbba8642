"""A JobContext built directly (the job's public interface) with a settable clock."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
import structlog

from maintd.config import Settings
from maintd.jobs.base import JobContext
from maintd.model import Trigger
from maintd.state import State

NOW = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., JobContext]]:
    opened: list[State] = []

    def make(settings: Settings, *, dry_run: bool = False, now: datetime = NOW) -> JobContext:
        state = State.open(settings.paths.state_dir)
        opened.append(state)
        return JobContext(settings=settings, job="cleanup", run_id="run-1", trigger=Trigger.MANUAL, state=state,
                          log=structlog.get_logger("test"), now=lambda: now, dry_run=dry_run)

    yield make
    for state in opened:
        state.close()
