"""Tiny jobs for the runtime tests (they are jobs, not mocks: the runner runs them as it runs real ones)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from maintd.config import Settings
from maintd.errors import StorageError, UsageError
from maintd.jobs.base import JobContext, JobResult, JobSpec
from maintd.runtime.runner import Runner
from maintd.state import State


class Gate:
    """A job that reports progress, then waits (cancellably) until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def run(self, ctx: JobContext, args: dict[str, Any]) -> JobResult:
        ctx.progress(phase="working", done_files=1, total_files=2)
        self.entered.set()
        while not self.opened.is_set():
            ctx.check_cancelled()
            ctx.cancel_event.wait(0.01)
        ctx.step("second-half", note="gate opened")
        ctx.progress(phase="working", done_files=2, total_files=2)
        return JobResult("gate passed", data={"args": args})


def _ok(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    return JobResult("all fine", data={"args": args, "dry_run": ctx.dry_run})


def _warn(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    ctx.warn("disk almost full")
    return JobResult("done with a warning", warnings=["file changed while read"])


def _fail(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    raise StorageError("no space left on /backups")


def _crash(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    return {"not": "a result"}["missing"]  # KeyError: a bug


def _parse_count(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"count", "mode", "dry_run"}
    if extra:
        raise UsageError(f"unexpected argument(s): {', '.join(sorted(extra))}")
    out = dict(args)
    if "count" in out:
        try:
            out["count"] = int(out["count"])
        except ValueError as err:
            raise UsageError(f"count must be a number, not {out['count']!r}") from err
    return out


class Jobs:
    def __init__(self) -> None:
        self.gate = Gate()
        self.gate2 = Gate()
        self.stubborn_release = threading.Event()
        self.specs = {
            "ok": JobSpec(name="ok", run=_ok, description="succeeds", parse_args=_parse_count),
            "warn": JobSpec(name="warn", run=_warn, description="warns"),
            "fail": JobSpec(name="fail", run=_fail, description="fails"),
            "crash": JobSpec(name="crash", run=_crash, description="crashes"),
            "slow": JobSpec(name="slow", run=self.gate.run, description="waits for the gate", locks=("target",)),
            "other": JobSpec(name="other", run=self.gate2.run, description="waits too", locks=("target",)),
            "stubborn": JobSpec(name="stubborn", run=self._stubborn, description="ignores cancellation"),
        }

    def _stubborn(self, ctx: JobContext, args: dict[str, Any]) -> JobResult:
        self.stubborn_release.wait(30)
        return JobResult("finally")


@pytest.fixture
def jobs() -> Iterator[Jobs]:
    made = Jobs()
    yield made
    made.gate.opened.set()
    made.gate2.opened.set()
    made.stubborn_release.set()


@pytest.fixture
def make_runner(settings: Callable[..., Settings], jobs: Jobs) -> Iterator[Callable[..., Runner]]:
    """Factory: a Runner over the test jobs with a real State in the temp dir."""
    made: list[Runner] = []

    def make(extra: dict[str, Any] | None = None, **kw: Any) -> Runner:
        config = settings(extra)
        state = State.open(config.paths.state_dir)
        kw.setdefault("services_factory", lambda s, cancel: None)
        runner = Runner(config, state, jobs.specs, **kw)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop(5)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
