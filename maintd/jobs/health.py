"""The `health` job: run the configured probes, remember the results, restart units Monit-style.

Outcome: every probe ok -> succeeded; some degraded (none failed) -> warning; any probe failed -> failed, with
the full report still returned as data (JobResult.outcome = FAILED, so `maintctl run health` exits 1 and shows
why). Remediation restarts appear in the report; a restart that itself fails is a warning line. While a run of
a job that stops services on purpose (recover, restore, update) is in progress, restarts are deferred.
Dry run: probes run, the plan is reported ("would restart"), nothing is stored and nothing restarted.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import Cancelled, MaintdError, UsageError
from ..health import store
from ..health.check import run_probes
from ..health.remediation import BUDGET_EXHAUSTED, RESTART, Action, Observation, plan
from ..health.result import DEGRADED, FAILED, ProbeResult, human_age, worst
from ..model import Outcome
from .base import JobContext, JobResult, JobSpec

SERVICE_JOBS = ("recover", "restore", "update")
"""Jobs that stop and start units on purpose: no remediation restart while one of them runs."""


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"dry_run"}
    if extra:
        raise UsageError(f"health takes no argument(s) {', '.join(sorted(extra))} (only dry_run)")
    return {"dry_run": as_bool(args.get("dry_run", False), "dry_run")}


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{name} must be true or false, not {value!r}")


def report_line(result: ProbeResult) -> str:
    label = {FAILED: "FAILED", DEGRADED: "degraded"}.get(result.status, "ok")
    return f"{label:<8} {result.name} ({result.kind}): {result.message}"


def action_line(action: Action, outcome: str, policy_window: float, error: str | None = None) -> str:
    why = f"{action.failures} consecutive failure(s) of {', '.join(action.probes)}"
    if action.kind == BUDGET_EXHAUSTED:
        return (f"remediation: restart budget exhausted for {action.unit} ({action.restarts_in_window} restart(s) "
                f"in the last {human_age(policy_window)}); not restarting after {why}")
    if outcome == "deferred":
        return f"remediation: restart of {action.unit} deferred ({error}) after {why}"
    if outcome == "would":
        return f"remediation: would restart {action.unit} after {why} (dry run)"
    if outcome == "failed":
        return f"remediation: restart of {action.unit} after {why} FAILED: {error}"
    return f"remediation: restarted {action.unit} after {why}"


def _service_job_running(ctx: JobContext) -> str | None:
    for record in ctx.state.history(limit=50):
        if record.outcome is Outcome.RUNNING and record.job in SERVICE_JOBS and record.run_id != ctx.run_id:
            return record.job
    return None


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    settings = ctx.settings
    dry_run = bool(args.get("dry_run")) or ctx.dry_run
    now = ctx.now()
    policy = settings.health.remediation
    if not settings.health.probes:
        return JobResult("no probes configured", data={"ok": True, "probes": [], "actions": [],
                                                       "report": ["no probes configured (health.probes)"]})
    ctx.progress(phase="probes", total_files=len(settings.health.probes),
                 message=f"running {len(settings.health.probes)} probe(s)")
    results = run_probes(settings, ctx.state, now, ctx.services)
    ctx.check_cancelled()
    ctx.progress(phase="remediation", done_files=len(results), total_files=len(results))

    memory = store.load_memory(ctx.state)
    observations = [Observation(r.name, r.unit, r.failed) for r in results]
    planned = plan(observations, memory, now, policy)
    busy = _service_job_running(ctx) if planned.actions and not dry_run else None
    if busy:  # counters go on; the restart waits until that job has ended
        kept = plan(observations, memory, now, policy.model_copy(update={"enabled": False})).memory
    else:
        kept = planned.memory

    lines = [report_line(r) for r in results]
    records: list[dict[str, Any]] = []
    for action in planned.actions:
        outcome, error = _act(ctx, action, dry_run=dry_run, busy=busy)
        lines.append(action_line(action, outcome, policy.window, error))
        records.append({"time": now.isoformat(), "unit": action.unit, "action": action.kind, "outcome": outcome,
                        "probes": list(action.probes), "failures": action.failures, "error": error})

    status = worst([r.status for r in results])
    document = {"time": now.isoformat(), "ok": status != FAILED, "status": status,
                "probes": [r.as_dict() for r in results], "actions": records}
    if not dry_run:
        store.update_probe_counters(ctx.state, results, now)
        store.save_memory(ctx.state, kept)
        store.record_actions(ctx.state, records)
        store.save_last(ctx.state, document)

    failed = [r.name for r in results if r.failed]
    degraded = [r.name for r in results if r.status == DEGRADED]
    summary = f"{len(results) - len(failed) - len(degraded)}/{len(results)} probe(s) ok"
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    if degraded:
        summary += f"; degraded: {', '.join(degraded)}"
    restarted = [r["unit"] for r in records if r["outcome"] == "restarted"]
    if restarted:
        summary += f"; restarted {', '.join(restarted)}"
    warnings = [f"{r.name}: {r.message}" for r in results if r.status == DEGRADED]
    warnings += [f"restart of {r['unit']} failed: {r['error']}" for r in records if r["outcome"] == "failed"]
    ctx.log.info("health.checked", status=status, failed=failed, degraded=degraded, dry_run=dry_run)
    return JobResult(summary, data={**document, "dry_run": dry_run, "report": lines}, warnings=warnings,
                     outcome=Outcome.FAILED if failed else None)


def _act(ctx: JobContext, action: Action, *, dry_run: bool, busy: str | None) -> tuple[str, str | None]:
    """Carry out one planned action: (outcome, error) with outcome restarted | failed | would | deferred |
    budget_exhausted."""
    fields = {"unit": action.unit, "probes": list(action.probes), "failures": action.failures,
              "restarts_in_window": action.restarts_in_window}
    if action.kind == BUDGET_EXHAUSTED:
        ctx.log.warning("health.restart_budget_exhausted", **fields)
        return BUDGET_EXHAUSTED, None
    assert action.kind == RESTART
    if dry_run:
        return "would", None
    if busy:
        ctx.log.warning("health.remediation_deferred", running=busy, **fields)
        return "deferred", f"{busy} is running"
    if ctx.services is None:
        ctx.log.error("health.remediation_failed", error="no service manager", **fields)
        return "failed", "no service manager"
    try:
        ctx.services.restart(action.unit)
    except Cancelled:
        raise
    except MaintdError as err:
        ctx.log.error("health.remediation_failed", error=err.message, **fields)
        return "failed", err.message
    ctx.log.warning("health.remediated", action="restart", **fields)
    return "restarted", None


JOB = JobSpec(name="health", run=run, parse_args=parse_args, mutating=True, locks=(),
              description="Probe the service (HTTP, Redis, units, disk, file and backup age); restart failing "
                          "units Monit-style")
