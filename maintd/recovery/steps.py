"""The steps recovery procedures are made of: units down and up through the service manager, Redis up, health,
the function test, putting a backup's RDB under the maintained Redis. Each reports itself with ctx.step and
adds a line to the recovery's report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backup.catalog import Manifest
from ..backup.restore_rdb import copy_rdb
from ..backup.restore_run import RestoreEnv
from ..edges import http as http_edge
from ..edges import redis as redis_edge
from ..errors import HealthError, MaintdError, UnavailableError, UsageError
from ..health.check import wait_healthy
from .redis_restore import RedisLayout, ask_layout, configured_layout, key_problems, place_snapshot, require_layout
from .report import StepLog

if TYPE_CHECKING:
    from ..job_contract import JobContext


@dataclass
class Run:
    """One recovery in progress: the context, the clock it is measured with, what it did."""

    ctx: "JobContext"
    mode: str
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    """Units this run stopped and has not started again (restarted best-effort when the run fails)."""
    log: StepLog = field(init=False)
    """The steps with their start times, for the JSON report."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What the JSON report needs to know early (the backup used), even when the run fails later."""

    def __post_init__(self) -> None:
        self.log = StepLog(started=self.started)

    @property
    def settings(self) -> Any:
        return self.ctx.settings

    def step(self, name: str, line: str | None = None, **fields: Any) -> None:
        self.ctx.check_cancelled()
        elapsed = self.log.begin(name, line)
        self.ctx.step(name, elapsed_s=round(elapsed, 3), **fields)
        self.lines.append(f"[{elapsed:6.1f} s] {line or name}")

    def note(self, line: str) -> None:
        self.lines.append(f"         {line}")


# -- units --------------------------------------------------------------------------------------------------------
def stop_units(run: Run) -> None:
    units = list(run.settings.services.units)
    for unit in reversed(units):
        run.step("stop unit", f"stop {unit}", unit=unit)
        run.ctx.services.stop(unit)
        run.stopped.append(unit)


def start_units(run: Run) -> None:
    for unit in run.settings.services.units:
        run.step("start unit", f"start {unit}", unit=unit)
        run.ctx.services.start(unit)
        if unit in run.stopped:
            run.stopped.remove(unit)


def restart_stopped(run: Run) -> None:
    """After a failure: start again, best-effort, what this run stopped (in start order)."""
    order = [run.settings.redis.unit, *run.settings.services.units]
    for unit in [u for u in order if u and u in run.stopped]:
        try:
            run.ctx.services.start(unit)
            run.note(f"started {unit} again after the failure")
        except MaintdError as err:
            run.note(f"could not start {unit} again: {err.message}")
    run.stopped.clear()


def ensure_redis(run: Run) -> None:
    """Redis runs and answers: started through the service manager when it is a managed unit."""
    unit = run.settings.redis.unit
    if unit:
        run.step("redis up", f"make sure {unit} runs", unit=unit)
        if not run.ctx.services.is_active(unit):
            run.ctx.services.start(unit)
            run.note(f"{unit} was not running: started")
        if unit in run.stopped:
            run.stopped.remove(unit)
    else:
        run.step("redis up", "check Redis answers (not a managed unit)")
    with redis_edge.connect(run.settings.redis) as client:
        client.wait_ready(timeout=run.settings.services.start_timeout, cancel=run.ctx.cancel_event)


# -- verification -------------------------------------------------------------------------------------------------
@dataclass
class Verification:
    probes: list[dict[str, Any]]
    function_test: dict[str, Any] | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(run: Run) -> Verification:
    """Health probes until they pass (services.start_timeout), then the function test."""
    settings = run.settings
    run.step("health", "wait for the health checks")
    results = wait_healthy(settings, run.ctx.state, run.ctx.now, run.ctx.services,
                           timeout=settings.services.start_timeout, cancel=run.ctx.cancel_event)
    problems = [f"health {r.name}: {r.message}" for r in results if r.failed]
    for result in results:
        run.note(f"{result.name}: {result.status} ({result.message})")
    tested = function_test(run)
    if tested is not None and not tested["ok"]:
        problems.append(f"function test: {tested['message']}")
    return Verification([r.as_dict() for r in results], tested, problems)


def function_test(run: Run) -> dict[str, Any] | None:
    test = run.settings.recovery.function_test
    if not test.url:
        run.note("function test: none configured")
        return None
    run.step("function test", f"function test: {test.method} {test.url}")
    try:
        reply = http_edge.request_json(test.method, test.url, timeout=test.timeout,
                                       body=test.json_body if test.method == "POST" else None)
    except UnavailableError as err:
        run.note(f"function test failed: {err.message}")
        return {"ok": False, "message": err.message}
    ok = reply.status == test.expect_status
    message = f"HTTP {reply.status}" + ("" if ok else f", expected {test.expect_status}")
    run.note(f"function test: {message}")
    return {"ok": ok, "message": message, "status": reply.status}


def require_healthy(verification: Verification) -> None:
    if not verification.ok:
        raise HealthError("recovered, but the service is not healthy: " + "; ".join(verification.problems))


# -- redis ------------------------------------------------------------------------------------------------------
def redis_layout(run: Run) -> RedisLayout:
    """Where the maintained Redis reads its data: asked from it (before it is stopped), else the configured
    fallback. Fails before anything is touched when neither works or Redis is not a managed unit."""
    if not run.settings.redis.unit:
        raise UsageError("redis.unit is not set: maintd cannot stop Redis to restore its snapshot")
    try:
        with redis_edge.connect(run.settings.redis) as client:
            asked: RedisLayout | None = ask_layout(client)
        reason = ""
    except UnavailableError as err:
        asked, reason = None, err.message
    recovery = run.settings.recovery
    return require_layout(asked, configured_layout(recovery.redis_rdb_path, recovery.redis_aof_dir), reason)


def restore_redis(run: Run, env: RestoreEnv, manifest: Manifest, layout: RedisLayout) -> dict[str, Any]:
    """Stop Redis, keep its files aside, place the backup's RDB (seeding the AOF in append-only mode), start it,
    compare key counts with the manifest. Returns what was found."""
    settings = run.settings
    unit = settings.redis.unit
    run.step("stop redis", f"stop {unit}", unit=unit)
    run.ctx.services.stop(unit)
    run.stopped.append(unit)
    run.step("place snapshot", f"place the RDB of {manifest.id} at {layout.rdb}"
             + (" (append-only: AOF seeded from it)" if layout.appendonly else ""))
    for line in place_snapshot(layout, lambda tmp: copy_rdb(env.catalog, env.gpg, manifest, tmp), env.stamp):
        run.note(line)
    run.step("start redis", f"start {unit}", unit=unit)
    run.ctx.services.start(unit)
    run.stopped.remove(unit)
    with redis_edge.connect(settings.redis) as client:
        client.wait_ready(timeout=settings.services.start_timeout, cancel=run.ctx.cancel_event)
        found = client.keyspace()
    expected = dict((manifest.redis or {}).get("keys", {}))
    problems = key_problems(expected, found, settings.recovery.key_count_tolerance)
    run.note(f"redis keys: {sum(found.values())} loaded, {sum(expected.values())} in the backup")
    return {"expected": expected, "found": found, "problems": problems}
