"""When runs happen: APScheduler 3 (BackgroundScheduler, own thread) over the `[jobs.*]` calendar.

One APScheduler job per enabled entry with a schedule, id = the entry key, `replace_existing`, `max_instances=1`,
`coalesce`, `misfire_grace_time = daemon.misfire_grace`. A fire only asks the Runner for a run
(`trigger=schedule`, waiting for locks): the runner records outcomes itself (APScheduler turns exceptions into
events nobody reads). Paused entries ("*" pauses all, stored in state) are skipped and logged; a fire while the
entry's previous run is still going is skipped too. Catch-up (systemd Persistent=true): at start, an entry whose
scheduled time passed while the daemon was down runs once with `trigger=catchup`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

import structlog
from apscheduler.events import EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from ..errors import ConfigError, MaintdError
from ..jobs.base import JobSpec
from ..model import Trigger
from ..cron import cron_trigger, missed_entries

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State
    from .handle import RunHandle
    from .runner import Runner

log = structlog.get_logger("maintd.scheduler")

FIRST_START_KEY = "daemon.first_start"
LAST_FIRE_PREFIX = "schedule.last_fire."


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def job_options(settings: "Settings") -> dict[str, Any]:
    """The APScheduler options of every calendar job."""
    return {"coalesce": True, "max_instances": 1,
            "misfire_grace_time": max(1, round(settings.daemon.misfire_grace))}


def validate_schedules(settings: "Settings") -> list[str]:
    """Every invalid cron expression in the calendar, as `jobs.<entry>.schedule: ...` (for check-config)."""
    problems: list[str] = []
    for key, entry in settings.jobs.items():
        if entry.schedule:
            try:
                trigger = cron_trigger(entry.schedule, settings.tz, entry=key)
            except ConfigError as err:
                problems.extend(err.problems)
                continue
            if entry.enabled and trigger.get_next_fire_time(None, datetime.now(settings.tz)) is None:
                problems.append(f"jobs.{key}.schedule: {entry.schedule!r} never fires (no such date); "
                                "use schedule = \"\" for on-demand only")
    return problems


def scheduled_entries(settings: "Settings", specs: Mapping[str, JobSpec]) -> dict[str, str]:
    """Entry key -> cron expression for every enabled entry with a schedule whose job exists."""
    return {key: entry.schedule for key, entry in settings.jobs.items()
            if entry.enabled and entry.schedule and entry.job_name(key) in specs}


class Scheduler:
    def __init__(self, settings: "Settings", state: "State", runner: "Runner",
                 specs: Mapping[str, JobSpec] | None = None, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self.state = state
        self.runner = runner
        self.specs = dict(specs if specs is not None else runner.specs)
        self.clock = clock
        self._aps = BackgroundScheduler(timezone=settings.tz, executors={"default": ThreadPoolExecutor(2)})
        self._installed: dict[str, tuple[str, str, int]] = {}  # key -> (expr, timezone, grace)
        self._lock = threading.Lock()
        self._warned_unknown: set[str] = set()
        self._aps.add_listener(self._on_missed, EVENT_JOB_MISSED)

    @property
    def aps(self) -> BackgroundScheduler:
        """The underlying APScheduler (diagnostics and tests)."""
        return self._aps

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Install the calendar, run missed entries once (catch-up), start the scheduler thread. Returns the
        entries caught up. ConfigError (nothing started) for an invalid expression."""
        now = self.clock()
        if self.state.get(FIRST_START_KEY) is None:
            self.state.put(FIRST_START_KEY, now.isoformat())
        self._install(self.settings)
        caught = self.catch_up(now) if self.settings.daemon.catch_up else []
        self._aps.start()
        log.info("schedule.started", entries=sorted(self._installed), caught_up=caught)
        return caught

    def reload(self, settings: "Settings") -> None:
        """Reschedule in place for new settings: changed entries are replaced, removed ones dropped, unchanged
        ones keep their next fire time. ConfigError (nothing changed) for an invalid expression."""
        self._install(settings)
        self.settings = settings
        log.info("schedule.reloaded", entries=sorted(self._installed))

    def shutdown(self, wait: bool = True) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=wait)

    def alive(self) -> bool:
        """The scheduler thread runs (the daemon's watchdog pings only while it does)."""
        thread = getattr(self._aps, "_thread", None)  # BackgroundScheduler keeps its thread there
        return bool(self._aps.running and thread is not None and thread.is_alive())

    # -- views ---------------------------------------------------------------------------------------------
    def next_runs(self) -> dict[str, datetime | None]:
        """Every calendar entry with its next fire time (None: not scheduled)."""
        out: dict[str, datetime | None] = {}
        for key in self.settings.jobs:
            job = self._aps.get_job(key)
            out[key] = getattr(job, "next_run_time", None) if job is not None else None
        return out

    def describe(self) -> dict[str, dict[str, Any]]:
        """Per entry: schedule, whether it is installed, next run, last fire, paused (for maintctl status)."""
        paused = self.state.paused()
        nexts = self.next_runs()
        out: dict[str, dict[str, Any]] = {}
        for key, entry in self.settings.jobs.items():
            job = self._aps.get_job(key)
            out[key] = {"job": entry.job_name(key), "schedule": entry.schedule, "enabled": entry.enabled,
                        "scheduled": job is not None, "next_run": nexts.get(key),
                        "last_fire": self.state.get(LAST_FIRE_PREFIX + key),
                        "paused": key in paused or "*" in paused,
                        "misfire_grace_s": job.misfire_grace_time if job is not None else None}
        return out

    # -- firing --------------------------------------------------------------------------------------------
    def catch_up(self, now: datetime | None = None) -> list[str]:
        """Fire, once each, the entries that missed a scheduled time since their last fire."""
        now = now or self.clock()
        entries = scheduled_entries(self.settings, self.specs)
        last = {key: _parse(self.state.get(LAST_FIRE_PREFIX + key)) for key in entries}
        missed = missed_entries(entries, last, _parse(self.state.get(FIRST_START_KEY)), now, self.settings.tz)
        for key in missed:
            log.info("schedule.catch_up", entry=key, last_fire=last.get(key))
            self.fire(key, Trigger.CATCHUP)
        return missed

    def fire(self, entry: str, trigger: Trigger = Trigger.SCHEDULE) -> "RunHandle | None":
        """What a scheduled time does: record the fire, then start the run unless paused or still running.
        Never raises (APScheduler would swallow it)."""
        try:
            self.state.put(LAST_FIRE_PREFIX + entry, self.clock().isoformat())
            paused = self.state.paused()
            if entry in paused or "*" in paused:
                log.info("schedule.skipped_paused", entry=entry, trigger=trigger.value)
                return None
            running = [h for h in self.runner.active() if h.entry == entry]
            if running:
                log.warning("schedule.skipped_running", entry=entry, trigger=trigger.value,
                            run_id=running[0].run_id)
                return None
            handle = self.runner.start(entry, trigger=trigger, wait_for_locks=True)
            log.info("schedule.fired", entry=entry, trigger=trigger.value, run_id=handle.run_id)
            return handle
        except MaintdError as err:
            log.error("schedule.start_failed", entry=entry, trigger=trigger.value, error=str(err))
        except Exception:  # noqa: BLE001 - a bug here must not stop the calendar
            log.exception("schedule.start_failed", entry=entry, trigger=trigger.value)
        return None

    # -- internals -----------------------------------------------------------------------------------------
    def _install(self, settings: "Settings") -> None:
        for key, entry in settings.jobs.items():
            job = entry.job_name(key)
            if entry.enabled and entry.schedule and job not in self.specs and key not in self._warned_unknown:
                self._warned_unknown.add(key)
                log.warning("schedule.unknown_job", entry=key, job=job,
                            note="not scheduled: this release has no such job")
        wanted = scheduled_entries(settings, self.specs)
        options = job_options(settings)
        triggers = {key: cron_trigger(expr, settings.tz, entry=key) for key, expr in wanted.items()}  # all or none
        with self._lock:
            for key in set(self._installed) - set(wanted):
                self._aps.remove_job(key)
                del self._installed[key]
            for key, expr in wanted.items():
                signature = (expr, settings.timezone, options["misfire_grace_time"])
                if self._installed.get(key) == signature:
                    continue
                self._aps.add_job(self._fire_scheduled, trigger=triggers[key], args=[key], id=key, name=key,
                                  replace_existing=True, **options)
                self._installed[key] = signature

    def _fire_scheduled(self, entry: str) -> None:
        self.fire(entry, Trigger.SCHEDULE)

    def _on_missed(self, event: JobEvent) -> None:
        log.warning("schedule.missed", entry=event.job_id, scheduled=event.scheduled_run_time,
                    misfire_grace_s=job_options(self.settings)["misfire_grace_time"])


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
