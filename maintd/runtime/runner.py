"""The job runner: the one path every run takes (schedule, catch-up, maintctl, offline CLI, tests).

For each run it resolves the calendar entry, validates args, takes kernel locks, records start and finish in
State, binds structlog context (job, run_id), enforces the timeout by cancelling cooperatively, maps exceptions
to outcomes, feeds progress events to subscribers, then calls metrics and the notifier. It never dies: a job's
bug is recorded as `crashed` and the runner keeps serving.

Timeout: at `timeout` seconds the cancel event is set with reason "timeout"; the job raises Cancelled at its
next check. If it has not returned `cancel_grace_s` later, the run is recorded as `timeout` anyway and its
thread is left behind (a daemon thread); its locks stay held until its code actually returns.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import structlog
from structlog.contextvars import bound_contextvars

from ..errors import BusyError, Cancelled, MaintdError, NotFoundError, UnavailableError, UsageError
from ..jobs.base import JobContext, JobResult, JobSpec
from ..model import Outcome, RunRecord, Trigger
from . import metrics
from .handle import RunHandle, new_run_id
from .locks import LockSet, describe_holder, read_holder

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State
    from .notify import Notifier

log = structlog.get_logger("maintd.runner")

DEFAULT_TIMEOUT_S = 3600.0
CANCEL_GRACE_S = 30.0
ServicesFactory = Callable[["Settings", threading.Event], Any]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Resolved:
    entry: str  # the [jobs.X] key, or the job name when no key matched
    spec: JobSpec
    args: dict[str, Any]  # the entry's default args (the caller's override them)
    timeout_s: float


def resolve_entry(settings: "Settings", specs: Mapping[str, JobSpec], entry: str) -> Resolved:
    """A [jobs.X] key gives its job, default args and timeout. A job name gives the job; its timeout comes from
    the first calendar entry running that job (not its args: `run backup` is not `run backup-full`), else 1 h."""
    schedule = settings.jobs.get(entry)
    if schedule is not None:
        job = schedule.job_name(entry)
        if job not in specs:
            raise NotFoundError(f"entry {entry!r} runs job {job!r}, which this release does not have")
        return Resolved(entry, specs[job], dict(schedule.args), schedule.timeout)
    if entry in specs:
        timeout = next((s.timeout for k, s in settings.jobs.items() if s.job_name(k) == entry), DEFAULT_TIMEOUT_S)
        return Resolved(entry, specs[entry], {}, timeout)
    known = sorted(set(settings.jobs) | set(specs))
    raise NotFoundError(f"no job or calendar entry named {entry!r} (known: {', '.join(known)})")


def outcome_of(result: Any, ctx_warnings: list[str]) -> tuple[Outcome, str, dict[str, Any], str | None]:
    """(outcome, summary, data, error) for a value the job returned."""
    if not isinstance(result, JobResult):
        return Outcome.CRASHED, "job returned no JobResult", {}, f"job returned {type(result).__name__}"
    warnings = list(dict.fromkeys([*result.warnings, *ctx_warnings]))
    data = dict(result.data)
    if warnings:
        data.setdefault("warnings", warnings)
    outcome = result.outcome or (Outcome.WARNING if warnings else Outcome.SUCCEEDED)
    return outcome, result.summary, data, None


class _RunContext(JobContext):
    """The job's context; warnings also go to the run's subscribers."""

    def warn(self, message: str, **fields: Any) -> None:
        super().warn(message, **fields)
        self.emit("warning", {"message": message, **fields})


class Runner:
    def __init__(self, settings: "Settings", state: "State", specs: Mapping[str, JobSpec], *,
                 clock: Callable[[], datetime] = utcnow, services: Any = None,
                 notifier: "Notifier | None" = None, on_change: Callable[[], None] | None = None,
                 services_factory: ServicesFactory | None = None, cancel_grace_s: float = CANCEL_GRACE_S) -> None:
        self.settings = settings
        self.state = state
        self.specs = dict(specs)
        self.clock = clock
        self.notifier = notifier
        self.on_change = on_change
        self.cancel_grace_s = cancel_grace_s
        self._services = services
        self._services_factory = services_factory
        self._lock = threading.Lock()
        self._active: dict[str, RunHandle] = {}
        self._stopping = False

    @property
    def locks_dir(self) -> Path:
        return self.settings.paths.state_dir / "locks"

    # -- public --------------------------------------------------------------------------------------------
    def start(self, entry: str, *, args: dict[str, Any] | None = None, trigger: Trigger = Trigger.MANUAL,
              wait_for_locks: bool = False) -> RunHandle:
        """Start a run in a worker thread. UsageError for bad args, NotFoundError for an unknown entry,
        BusyError when a lock is held (unless wait_for_locks), UnavailableError once stop() was called."""
        self._refuse_if_stopping()
        settings = self.settings
        resolved = resolve_entry(settings, self.specs, entry)
        try:
            parsed = dict(resolved.spec.parse_args({**resolved.args, **(args or {})}))
        except UsageError:
            raise
        except (TypeError, ValueError) as err:
            raise UsageError(f"{entry}: invalid arguments: {err}") from err
        started = self.clock()
        handle = RunHandle(run_id=new_run_id(started), job=resolved.spec.name, entry=resolved.entry,
                           trigger=trigger, started=started, args=parsed, timeout_s=resolved.timeout_s)
        locks = LockSet(self.locks_dir, [f"job-{resolved.spec.name}", *resolved.spec.locks],
                        holder={"run_id": handle.run_id, "job": handle.job, "entry": handle.entry,
                                "trigger": trigger.value, "since": started.isoformat()})
        if not wait_for_locks:
            busy = locks.try_acquire()
            if busy is not None:
                holder = describe_holder(read_holder(self.locks_dir, busy))
                raise BusyError(f"{handle.entry} cannot start: lock {busy!r} is {holder}")
        with self._lock:
            if self._stopping:
                locks.release()
                raise UnavailableError("daemon is stopping")
            self._active[handle.run_id] = handle
        handle.thread = threading.Thread(target=self._work, args=(handle, resolved.spec, settings, locks),
                                         name=f"run-{handle.entry}", daemon=True)
        handle.thread.start()
        return handle

    def run_sync(self, entry: str, **kw: Any) -> RunRecord:
        record = self.start(entry, **kw).wait()
        assert record is not None
        return record

    def active(self) -> list[RunHandle]:
        with self._lock:
            return [h for h in self._active.values() if not h.done]

    def get(self, run_id: str) -> RunHandle | None:
        """An active run by id (for `maintctl watch` / `cancel`)."""
        with self._lock:
            return self._active.get(run_id)

    def stop(self, deadline_s: float) -> bool:
        """Refuse new runs, cancel the running ones (interrupted), wait until the deadline. Runs that did not
        end are recorded as interrupted anyway. True when every run ended by itself."""
        with self._lock:
            self._stopping = True
            handles = list(self._active.values())
        end = time.monotonic() + deadline_s
        for handle in handles:
            handle.cancel("interrupted")
        for handle in handles:
            handle.wait(max(0.0, end - time.monotonic()))
        ended = all(h.done for h in handles)
        for handle in handles:
            if not handle.done:
                log.error("job.abandoned", job=handle.job, run_id=handle.run_id, reason="stop deadline")
                self._finish(handle, Outcome.INTERRUPTED, "daemon stopped before the job ended",
                             "the job did not stop within the stop timeout", {})
        for handle in handles:  # let the finishing steps (notifier) complete within the deadline
            if handle.thread is not None:
                handle.thread.join(max(0.0, end - time.monotonic()))
        close = getattr(self.notifier, "close", None)
        if close is not None:  # flush pending notifications within what is left of the deadline
            self._call_safely("notify.close_failed", close, max(0.0, end - time.monotonic()))
        return ended

    def update_settings(self, settings: "Settings") -> None:
        """Later runs use these settings; running ones keep theirs."""
        self.settings = settings

    def recover_stale(self) -> list[str]:
        """Runs a dead daemon left 'running' become interrupted. Call once at daemon start."""
        ids = self.state.mark_stale_runs(self.clock())
        if ids:
            log.warning("runner.stale_runs", run_ids=ids, count=len(ids))
        return ids

    # -- the worker ----------------------------------------------------------------------------------------
    def _refuse_if_stopping(self) -> None:
        with self._lock:
            if self._stopping:
                raise UnavailableError("daemon is stopping")

    def _work(self, handle: RunHandle, spec: JobSpec, settings: "Settings", locks: LockSet) -> None:
        with bound_contextvars(job=handle.job, run_id=handle.run_id):
            try:
                if not locks.held:
                    log.info("job.waiting_for_locks", job=handle.job, run_id=handle.run_id, locks=locks.names)
                    try:
                        locks.acquire(cancel=handle.cancel_event)
                    except Cancelled:
                        self._record_never_started(handle)
                        return
                self._run(handle, spec, settings, locks)
            except BaseException as err:  # noqa: BLE001 - the runner never dies; record what we can
                log.exception("runner.internal_error", job=handle.job, run_id=handle.run_id)
                self._finish(handle, Outcome.CRASHED, "runner error", _traceback(err), {})
            finally:
                locks.release()
                self.state.close()  # this thread's sqlite connection

    def _record_never_started(self, handle: RunHandle) -> None:
        handle.started = self.clock()
        reason = handle.cancel_reason or "interrupted"
        self.state.record_start(self._initial_record(handle))
        self._finish(handle, _cancel_outcome(reason), f"cancelled ({reason}) while waiting for locks", None, {})

    def _initial_record(self, handle: RunHandle) -> RunRecord:
        return RunRecord(run_id=handle.run_id, job=handle.job, trigger=handle.trigger, started=handle.started,
                         args={**handle.args, "_entry": handle.entry})

    def _run(self, handle: RunHandle, spec: JobSpec, settings: "Settings", locks: LockSet) -> None:
        handle.started = self.clock()
        handle.phase = "running"
        self.state.record_start(self._initial_record(handle))
        log.info("job.started", job=handle.job, run_id=handle.run_id, entry=handle.entry,
                 trigger=handle.trigger.value)
        if self.notifier is not None:
            self._call_safely("notify.failed", self.notifier.run_started, handle)
        self._changed()
        timer = threading.Timer(handle.timeout_s, self._on_timeout, args=(handle,))
        timer.daemon = True
        timer.start()
        ctx = _RunContext(settings=settings, job=handle.job, run_id=handle.run_id, trigger=handle.trigger,
                          state=self.state, now=self.clock, cancel_event=handle.cancel_event,
                          log=structlog.get_logger(f"maintd.jobs.{handle.job}").bind(job=handle.job,
                                                                                     run_id=handle.run_id),
                          dry_run=bool(handle.args.get("dry_run", False)), emit=handle.emit)
        handle._attach(ctx)
        error: str | None
        try:
            ctx.services = self._build_services(settings, handle.cancel_event)
            result = spec.run(ctx, handle.args)
            outcome, summary, data, error = outcome_of(result, ctx.warnings)
        except Cancelled as err:
            reason = handle.cancel_reason if handle.cancel_event.is_set() and handle.cancel_reason else err.reason
            outcome, summary, data, error = _cancel_outcome(reason), f"cancelled ({reason})", {}, str(err)
            if outcome is Outcome.TIMEOUT:
                summary = f"timed out after {handle.timeout_s:g}s"
        except MaintdError as err:
            # The error's class travels with the record, so maintctl can exit 64/65/69 rather than a bare 1.
            outcome, summary, error = Outcome.FAILED, _first_line(str(err)), str(err)
            data = {"error_code": err.code, "exit_code": err.exit_code}
        except BaseException as err:  # noqa: BLE001 - a job's bug is an outcome, not the runner's death
            error = _traceback(err)
            log.error("job.crashed", job=handle.job, run_id=handle.run_id, error=repr(err), exc_info=err)
            outcome, summary, data = Outcome.CRASHED, f"crashed: {_first_line(repr(err))}", {}
        finally:
            timer.cancel()
        self._finish(handle, outcome, summary, error, data, locks=locks)

    def _build_services(self, settings: "Settings", cancel: threading.Event) -> Any:
        if self._services is not None:
            return self._services
        factory = self._services_factory or _default_services_factory()
        return factory(settings, cancel) if factory is not None else None

    def _on_timeout(self, handle: RunHandle) -> None:
        if handle.done:
            return
        with bound_contextvars(job=handle.job, run_id=handle.run_id):
            log.warning("job.timeout", job=handle.job, run_id=handle.run_id, timeout_s=handle.timeout_s)
        handle.cancel("timeout")
        grace = threading.Timer(self.cancel_grace_s, self._on_grace_over, args=(handle,))
        grace.daemon = True
        grace.start()

    def _on_grace_over(self, handle: RunHandle) -> None:
        if handle.done:
            return
        with bound_contextvars(job=handle.job, run_id=handle.run_id):
            log.error("job.abandoned", job=handle.job, run_id=handle.run_id, grace_s=self.cancel_grace_s,
                      reason="timeout")
        self._finish(handle, Outcome.TIMEOUT,
                     f"timed out after {handle.timeout_s:g}s; did not stop within {self.cancel_grace_s:g}s",
                     "the job ignored cancellation; its thread was left running", {})
        self.state.close()  # this timer thread's sqlite connection

    def _finish(self, handle: RunHandle, outcome: Outcome, summary: str, error: str | None,
                data: dict[str, Any], locks: LockSet | None = None) -> None:
        """Write the final record exactly once, then the log line, metrics, notifier. `locks` (given only by the
        job's own thread) are released before waiters hear of the end, so a next run can start at once; an
        abandoned job keeps its locks until its thread ends."""
        record = RunRecord(run_id=handle.run_id, job=handle.job, trigger=handle.trigger, started=handle.started,
                           finished=self.clock(), outcome=outcome, summary=summary, error=error, data=data,
                           args={**handle.args, "_entry": handle.entry})
        if not handle._claim_final(record):
            return
        with bound_contextvars(job=handle.job, run_id=handle.run_id):
            self._call_safely("job.record_failed", self.state.record_finish, record.run_id,
                              finished=record.finished, outcome=outcome, summary=summary, error=error, data=data)
            level = {Outcome.SUCCEEDED: "info", Outcome.FAILED: "error", Outcome.CRASHED: "error"}.get(
                outcome, "warning")
            fields: dict[str, Any] = {"job": handle.job, "run_id": handle.run_id, "entry": handle.entry,
                                      "trigger": handle.trigger.value, "outcome": outcome.value,
                                      "duration_s": round(record.duration_s or 0.0, 3), "summary": summary}
            if error and outcome is not Outcome.CRASHED:
                fields["error"] = error
            getattr(log, level)("job.finished", **fields)
            self._call_safely("metrics.failed", metrics.record_run, self.state, record,
                              self.settings.paths.metrics_file)
            self._call_safely("runner.trim_failed", self.state.trim_history, self.settings.daemon.history_keep)
            if locks is not None:
                locks.release()
            with self._lock:
                self._active.pop(handle.run_id, None)
            handle._set_done()
            self._changed()
            if self.notifier is not None:
                self._call_safely("notify.failed", self.notifier.run_finished, record)

    def _changed(self) -> None:
        if self.on_change is not None:
            self._call_safely("runner.on_change_failed", self.on_change)

    @staticmethod
    def _call_safely(event: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - side duties never fail a run
            log.warning(event, error=str(err) or repr(err))


def _default_services_factory() -> ServicesFactory | None:
    """maintd.edges.services.build, once that module exists."""
    if importlib.util.find_spec("maintd.edges.services") is None:
        return None
    return importlib.import_module("maintd.edges.services").build


def _cancel_outcome(reason: str) -> Outcome:
    return Outcome.TIMEOUT if reason == "timeout" else Outcome.INTERRUPTED


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _traceback(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))
