"""The daemon's lifecycle: start, the main loop, reload, stop. The only user of sdnotify.

Start: config (every problem on stderr, exit 78) -> logs -> the control socket claimed (a live one means another
daemon: exit 69) -> state -> stale runs interrupted -> unfinished backups removed -> runner -> scheduler
(catch-up) -> socket served -> ``READY=1``.

Signal handlers only set flags (the wake-up fd wakes the loop); the main loop acts. SIGHUP (or `maintctl reload`):
``RELOADING=1`` + ``MONOTONIC_USEC``, load and check the new config, swap it in or keep the old one and say why,
then always ``READY=1``. SIGTERM/SIGINT: ``STOPPING=1``, no new runs, the running ones cancelled and given
daemon.stop_timeout (``EXTEND_TIMEOUT_USEC`` meanwhile), the socket removed, exit 0; a second one exits at
once with status 1. ``WATCHDOG=1`` at half of ``WATCHDOG_USEC`` while the scheduler and control threads live.
"""

from __future__ import annotations

import collections
import importlib
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import sdnotify
import structlog

from . import config, logs
from .checkconfig import load_checked
from .errors import EX_FAILED, EX_OK, ConfigError, MaintdError, UnavailableError
from .jobs import registry
from .jobs.base import JobSpec
from .runtime import views
from .runtime.control import ControlServer
from .runtime.runner import Runner
from .runtime.scheduler import Scheduler
from .state import State

log = structlog.get_logger("maintd.daemon")

TICK_S = 1.0
RELOAD_WAIT_S = 120.0
STOP_EXTEND_MARGIN_S = 15.0
COLD_EXIT = EX_FAILED


class Notifier:
    """sd_notify(3) through the sdnotify library: a no-op without NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier()

    def send(self, *lines: str) -> None:
        self._notifier.notify("\n".join(lines))


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC when it is meant for us (WATCHDOG_PID unset or ours)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    owner = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (owner and owner != str(os.getpid())):
        return None
    return int(usec) / 2 / 1e6


@dataclass
class _ReloadTicket:
    done: threading.Event = field(default_factory=threading.Event)
    error: MaintdError | None = None
    message: str = ""


class Daemon:
    def __init__(self, config_path: Path, *, log_format: str | None = None) -> None:
        self._config_path = config_path
        self._log_format = log_format
        self._settings: config.Settings | None = None
        self._state: State | None = None
        self._runner: Runner | None = None
        self._run_notifier: Any = None
        self._scheduler: Scheduler | None = None
        self._control: ControlServer | None = None
        self._specs: dict[str, JobSpec] = {}
        self._started = datetime.now(timezone.utc)
        self._notify = Notifier()
        self._signals: collections.deque[int] = collections.deque()
        self._reloads: collections.deque[_ReloadTicket] = collections.deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping = False
        self._stop_deadline = 0.0
        self._runs_stopped = threading.Event()
        self._status_line = ""
        self._status_note = ""

    # -- ControlHost ---------------------------------------------------------------------------------------
    @property
    def settings(self) -> config.Settings:
        assert self._settings is not None
        return self._settings

    @property
    def state(self) -> State:
        assert self._state is not None
        return self._state

    @property
    def runner(self) -> Runner:
        assert self._runner is not None
        return self._runner

    @property
    def specs(self) -> Mapping[str, JobSpec]:
        return self._specs

    @property
    def config_path(self) -> Path:
        return self._config_path

    @property
    def started(self) -> datetime:
        return self._started

    def next_runs(self) -> Mapping[str, datetime | None]:
        return self._scheduler.next_runs() if self._scheduler is not None else {}

    def reload(self, wait: bool) -> dict[str, Any]:
        if self._stopping:
            raise UnavailableError("daemon is stopping")
        ticket = _ReloadTicket()
        self._reloads.append(ticket)
        self._wake()
        if not wait:
            return {"reloaded": None, "message": "reload requested"}
        if not ticket.done.wait(RELOAD_WAIT_S):
            raise UnavailableError("the reload did not finish in time")
        if ticket.error is not None:
            raise ticket.error
        return {"reloaded": True, "message": ticket.message}

    # -- run -----------------------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self._specs = registry()
            settings = load_checked(self._config_path, self._specs)
        except ConfigError as err:
            for problem in err.problems or [err.message]:
                print(problem, file=sys.stderr)
            return err.exit_code
        self._settings = settings
        logs.configure(self._log_format or settings.logging.format, settings.logging.level)
        self._install_signals()
        try:
            self._start(settings)
        except MaintdError as err:
            log.error("daemon.start_failed", error=str(err))
            print(f"maintd: {err}", file=sys.stderr)
            self._teardown()
            return err.exit_code
        self._notify.send("READY=1", f"STATUS={self._current_status()}")
        log.info("daemon.ready", pid=os.getpid(), config=str(self._config_path), socket=str(settings.control.socket),
                 jobs=sorted(self._specs))
        return self._loop()

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)  # the main loop acts; the wake-up fd has woken it

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # already awake

    def _start(self, settings: config.Settings) -> None:
        self._control = ControlServer(self)
        self._control.claim()  # first: a second daemon must not touch the first one's runs
        self._state = State.open(settings.paths.state_dir)
        if self._state.get("daemon.first_start") is None:
            self._state.put("daemon.first_start", self._started.isoformat())
        self._run_notifier = _notifier(settings)
        self._runner = Runner(settings, self._state, self._specs, notifier=self._run_notifier,
                              on_change=self._wake)
        self._runner.recover_stale()
        _cleanup_incomplete_backups(settings)
        self._scheduler = Scheduler(settings, self._state, self._runner)
        self._scheduler.start()
        self._control.serve()

    # -- the main loop -------------------------------------------------------------------------------------
    def _loop(self) -> int:
        interval = watchdog_interval()
        next_ping = time.monotonic()
        next_extend = 0.0
        while True:
            now = time.monotonic()
            timeout = TICK_S if interval is None else max(0.0, min(TICK_S, next_ping - now))
            try:
                select.select([self._wake_r], [], [], timeout)
            except InterruptedError:
                pass
            self._drain_wake()
            while self._signals:
                signum = self._signals.popleft()
                if signum == signal.SIGHUP:
                    if not self._stopping:
                        self._reload(None)
                elif not self._stopping:
                    log.info("daemon.stopping", signal=signal.Signals(signum).name)
                    self._begin_stop()
                    next_extend = 0.0
                else:
                    return self._cold_exit(signum)
            while self._reloads:
                ticket = self._reloads.popleft()
                if self._stopping:
                    ticket.error = UnavailableError("daemon is stopping")
                    ticket.done.set()
                else:
                    self._reload(ticket)
            now = time.monotonic()
            if interval is not None and now >= next_ping:
                self._watchdog()
                next_ping = now + interval
            if self._stopping:
                if self._runs_stopped.is_set():
                    return self._finish_stop()
                if now >= next_extend:
                    self._extend_stop_timeout()
                    next_extend = now + 5.0
            else:
                self._update_status()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _watchdog(self) -> None:
        control_ok = self._control is not None and self._control.alive()
        scheduler_ok = self._stopping or (self._scheduler is not None and self._scheduler.alive())
        if control_ok and scheduler_ok:
            self._notify.send("WATCHDOG=1")
        else:
            log.error("daemon.watchdog_withheld", control_alive=control_ok, scheduler_alive=scheduler_ok)

    def _current_status(self) -> str:
        active = [h.snapshot() for h in self.runner.active()] if self._runner is not None else []
        recent = self.state.history(None, 1) if self._state is not None else []
        line = views.status_line(active, recent[0] if recent else None)
        return f"{line}; {self._status_note}" if self._status_note else line

    def _update_status(self) -> None:
        try:
            line = self._current_status()
        except MaintdError as err:
            line = f"status unavailable: {err}"
        if line != self._status_line:
            self._status_line = line
            self._notify.send(f"STATUS={line}")

    # -- reload --------------------------------------------------------------------------------------------
    def _reload(self, ticket: _ReloadTicket | None) -> None:
        self._notify.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")
        log.info("daemon.reloading", config=str(self._config_path))
        try:
            new = load_checked(self._config_path, self._specs)
        except ConfigError as err:
            problems = err.problems or [err.message]
            log.error("daemon.reload_failed", problems=problems)
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self._status_note = f"reload failed, previous config kept: {problems[0]}{more}"
            self._status_line = self._current_status()
            self._notify.send("READY=1", f"STATUS={self._status_line}")
            if ticket is not None:
                ticket.error = ConfigError(f"reload refused, the previous configuration stays: {problems[0]}{more}",
                                           problems)
                ticket.done.set()
            return
        old = self.settings
        self._settings = new
        self.runner.update_settings(new)
        if self._run_notifier is not None:
            self._run_notifier.update_settings(new)
        assert self._scheduler is not None and self._control is not None
        self._scheduler.reload(new)
        self._control.update_settings()
        if (new.logging.format, new.logging.level) != (old.logging.format, old.logging.level):
            logs.configure(self._log_format or new.logging.format, new.logging.level)
        if new.paths.state_dir != old.paths.state_dir:
            log.warning("daemon.state_dir_change_needs_restart", state_dir=str(old.paths.state_dir))
        self._status_note = ""
        self._status_line = self._current_status()
        self._notify.send("READY=1", f"STATUS={self._status_line}")
        log.info("daemon.reloaded", config=str(self._config_path))
        if ticket is not None:
            ticket.message = f"configuration reloaded from {self._config_path}"
            ticket.done.set()

    # -- stop ----------------------------------------------------------------------------------------------
    def _begin_stop(self) -> None:
        self._stopping = True
        self._notify.send("STOPPING=1", "STATUS=stopping: ending the running jobs")
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self._stop_deadline = time.monotonic() + self.settings.daemon.stop_timeout
        stopper = threading.Thread(target=self._stop_runs, args=(self.settings.daemon.stop_timeout,),
                                   name="stopper", daemon=True)
        stopper.start()

    def _stop_runs(self, deadline_s: float) -> None:
        try:
            if not self.runner.stop(deadline_s):
                log.warning("daemon.runs_abandoned", stop_timeout_s=deadline_s)
        finally:
            self._runs_stopped.set()
            self._wake()

    def _extend_stop_timeout(self) -> None:
        remaining = max(0.0, self._stop_deadline - time.monotonic()) + STOP_EXTEND_MARGIN_S
        self._notify.send(f"EXTEND_TIMEOUT_USEC={int(remaining * 1e6)}")

    def _finish_stop(self) -> int:
        self._teardown()
        log.info("daemon.stopped")
        return EX_OK

    def _cold_exit(self, signum: int) -> int:
        log.warning("daemon.cold_stop", signal=signal.Signals(signum).name)
        if self._control is not None:
            self._control.remove_file()
        sys.stderr.flush()
        os._exit(COLD_EXIT)

    def _teardown(self) -> None:
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception as err:  # noqa: BLE001 - shutting down anyway
                log.warning("daemon.scheduler_shutdown_failed", error=str(err))
        if self._control is not None:
            self._control.close()
        if self._state is not None:
            self._state.close()


def _notifier(settings: config.Settings) -> Any:
    try:
        notify = importlib.import_module("maintd.runtime.notify")
    except ImportError:
        return None
    return notify.Notifier(settings)


def _cleanup_incomplete_backups(settings: config.Settings) -> None:
    """Remove backups a dead writer left half-written (never visible as backups anyway), under the backup root's
    writer lock; when another process (an offline restore) holds it, leave them for the next start."""
    try:
        catalog_module = importlib.import_module("maintd.backup.catalog")
    except ImportError:
        return
    if not settings.paths.backup_root.exists():
        return
    catalog = catalog_module.Catalog.from_settings(settings)
    try:
        with catalog.writer_lock():
            removed = catalog.cleanup_incomplete()
    except MaintdError as err:
        log.warning("daemon.backup_cleanup_skipped", error=str(err))
        return
    if removed:
        log.warning("daemon.incomplete_backups_removed", backup_ids=list(removed))


def run(config_path: Path | None = None, log_format: str | None = None) -> int:
    """`maintd run`: the daemon in the foreground until stopped. Returns the exit status."""
    return Daemon(config_path or config.default_path(), log_format=log_format).run()
