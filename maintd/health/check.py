"""Running probes: one thread per probe, each with its own deadline, results in configuration order.

Each probe's own I/O is bounded by its timeout (HTTP and Redis socket timeouts, the service manager's command
timeout); the thread deadline (timeout + a grace) catches what cannot be bounded that way (statvfs on a hung
network mount). A probe that is still running at its deadline is reported failed and left to end on its own
(a daemon thread: it never holds up a stop).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import structlog

from ..config import DiskProbe, FileAgeProbe, HttpProbe, RedisProbe, UnitProbe
from ..edges import http as http_edge
from ..edges import redis as redis_edge
from ..errors import Cancelled, MaintdError
from .judge import judge_age, judge_disk, judge_http
from .result import DEGRADED, FAILED, OK, ProbeResult, human_ms

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State

log = structlog.get_logger("maintd.health")

_EVENTS = {OK: "health.probed", DEGRADED: "health.probe_degraded", FAILED: "health.probe_failed"}

DEADLINE_GRACE_S = 1.0
"""Added to a probe's timeout before its thread is given up on: its own timeout should fire first."""


@dataclass(frozen=True)
class ProbeEnv:
    settings: "Settings"
    state: "State"
    now: datetime
    services: Any


def check_http(probe: HttpProbe, env: ProbeEnv) -> tuple[str, str]:
    expected: str | None = None
    if probe.expect_version_file is not None:
        try:
            expected = probe.expect_version_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            return FAILED, f"cannot read version file {probe.expect_version_file}: {err.strerror}"
    status, body, elapsed = http_edge.get_json(probe.url, probe.timeout)
    return judge_http(probe, status, body, elapsed, expected)


def check_redis(probe: RedisProbe, env: ProbeEnv) -> tuple[str, str]:
    with redis_edge.connect(env.settings.redis, timeout=probe.timeout) as client:
        elapsed = client.ping()
    return OK, f"PONG in {human_ms(elapsed)}"


def check_unit(probe: UnitProbe, env: ProbeEnv) -> tuple[str, str]:
    if env.services is None:
        return FAILED, "no service manager configured"
    unit = probe.unit or ""
    if env.services.is_active(unit):
        return OK, f"{unit} is active"
    return FAILED, f"{unit} is not active"


def check_disk(probe: DiskProbe, env: ProbeEnv) -> tuple[str, str]:
    try:
        stats = os.statvfs(probe.path)
    except OSError as err:
        return FAILED, f"cannot stat {probe.path}: {err.strerror}"
    return judge_disk(probe, stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize)


def newest_entry(path: Path) -> tuple[Path, float] | None:
    """(path, mtime) of a file; for a directory its newest entry, looking one level into subdirectories.
    Entries are not followed when they are symlinks. None for an empty directory."""
    info = path.stat()
    if not path.is_dir():
        return path, info.st_mtime
    best: tuple[Path, float] | None = None
    with os.scandir(path) as top:
        for entry in top:
            candidates = [entry]
            if entry.is_dir(follow_symlinks=False):
                try:
                    with os.scandir(entry.path) as inner:
                        candidates.extend(inner)
                except OSError:
                    pass  # unreadable subdirectory: its own mtime still counts
            for candidate in candidates:
                try:
                    mtime = candidate.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue  # removed meanwhile
                if best is None or mtime > best[1]:
                    best = (Path(candidate.path), mtime)
    return best


def check_file_age(probe: FileAgeProbe, env: ProbeEnv) -> tuple[str, str]:
    try:
        found = newest_entry(probe.path)
    except OSError as err:
        return FAILED, f"cannot read {probe.path}: {err.strerror}"
    if found is None:
        return FAILED, f"{probe.path} is empty"
    path, mtime = found
    return judge_age(str(path), env.now.timestamp() - mtime, probe.max_age)


def check_backup_age(probe: Any, env: ProbeEnv) -> tuple[str, str]:
    from .backups import check_backups  # the catalog and tiers are imported only when this probe runs
    return check_backups(env.settings, env.state, env.now)


CHECKS: dict[str, Callable[[Any, ProbeEnv], tuple[str, str]]] = {
    "http": check_http, "redis": check_redis, "unit": check_unit, "disk": check_disk,
    "file_age": check_file_age, "backup_age": check_backup_age,
}


def run_one(probe: Any, env: ProbeEnv) -> ProbeResult:
    """One probe, timed; an expected error is a failed probe with its message, a bug is one too (logged)."""
    started = time.monotonic()
    try:
        status, message = CHECKS[probe.kind](probe, env)
    except Cancelled:
        status, message = FAILED, "cancelled"  # the caller checks its cancel event after the run
    except MaintdError as err:
        status, message = FAILED, err.message
    except Exception as err:  # noqa: BLE001 - a broken probe must not hide the others
        log.exception("health.probe_crashed", probe=probe.name, kind=probe.kind)
        status, message = FAILED, f"probe crashed: {err!r}"
    finally:
        env.state.close()  # this thread's sqlite connection, if the probe opened one
    return ProbeResult(name=probe.name, kind=probe.kind, status=status, message=message,
                       duration_s=time.monotonic() - started, unit=probe.unit)


def run_probes(settings: "Settings", state: "State", now: datetime, services: Any, *,
               names: Iterable[str] | None = None) -> list[ProbeResult]:
    """Run settings.health.probes (or those named) concurrently; results in configuration order.
    ``services`` is a ServiceManager (unit probes) or None."""
    wanted = set(names) if names is not None else None
    probes = [p for p in settings.health.probes if wanted is None or p.name in wanted]
    env = ProbeEnv(settings, state, now, services)
    slots: list[ProbeResult | None] = [None] * len(probes)

    def work(index: int, probe: Any) -> None:
        slots[index] = run_one(probe, env)

    threads = [threading.Thread(target=work, args=(i, p), daemon=True, name=f"probe-{p.name}")
               for i, p in enumerate(probes)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    results: list[ProbeResult] = []
    for index, (thread, probe) in enumerate(zip(threads, probes)):
        thread.join(max(0.0, started + probe.timeout + DEADLINE_GRACE_S - time.monotonic()))
        result = slots[index]
        if result is None:
            result = ProbeResult(name=probe.name, kind=probe.kind, status=FAILED,
                                 message=f"no answer within {probe.timeout:g}s",
                                 duration_s=time.monotonic() - started, unit=probe.unit)
        results.append(result)
        emit = log.info if result.ok else log.warning
        emit(_EVENTS[result.status], probe=result.name, kind=result.kind, status=result.status,
             message=result.message, duration_s=round(result.duration_s, 4))
    return results


def wait_healthy(settings: "Settings", state: "State", clock: Callable[[], datetime], services: Any, *,
                 timeout: float, names: Iterable[str] | None = None,
                 cancel: threading.Event | None = None) -> list[ProbeResult]:
    """Run the probes (or those named) until none has failed or ``timeout`` seconds passed; returns the last
    results (the caller judges them). For recovery: "started, now wait until the service answers"."""
    names = list(names) if names is not None else None
    deadline = time.monotonic() + timeout
    interval = 0.2
    while True:
        results = run_probes(settings, state, clock(), services, names=names)
        if not any(r.failed for r in results) or time.monotonic() >= deadline:
            return results
        if cancel is not None and cancel.wait(min(interval, max(0.0, deadline - time.monotonic()))):
            raise Cancelled("cancelled while waiting for the service to become healthy")
        if cancel is None:
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 2.0)
