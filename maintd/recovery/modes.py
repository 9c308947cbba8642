"""The four recovery scenarios of the runbook, each a staged procedure measured against its objective.

- service:       stop the units (reverse order), make sure Redis runs, start them in order, wait for health.
- configuration: restore the config component from the newest usable backup (the current tree kept as
                 ``<dir>.broken.<time>``), restart the units, health and function test.
- data:          restore the data component and Redis, restart the units, health and function test.
- full:          stop everything, restore application, configuration, data (and `system` when the backup holds
                 it, in place) and Redis from the newest usable chain, start in order, verify.

The backup: ``--backup ID``, else the one restore and drill use too (``select_backup``): the newest good backup
whose whole chain passes the pre-restore integrity check, an older one (with a warning naming the damaged
backup) when it does not.

The key is read into memory before anything is touched; the backup, its whole chain and every index are checked
before the first unit is stopped. A failure after units were stopped starts them again (best effort).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backup.catalog import Catalog, Manifest
from ..backup.restore_plan import stamp
from ..backup.restore_run import (SYSTEM, Prepared, RestoreEnv, RestoreRequest, choose, components_of, execute,
                                  carried_patterns, open_key, prepare, prune_previous_trees)
from ..backup.restorer import preview
from ..job_contract import JobResult
from ..model import Outcome
from .redis_restore import aside_moves
from .report import outcome_of, save
from .rto import verdict
from .steps import Run, ensure_redis, redis_layout, restart_stopped, restore_redis, start_units, stop_units, verify

if TYPE_CHECKING:
    from ..job_contract import JobContext

MODES = ("service", "configuration", "data", "full")
WHAT = {"service": "recovered the service", "configuration": "recovered the configuration",
        "data": "recovered data", "full": "recovered the full system"}


@dataclass(frozen=True)
class ModePlan:
    mode: str
    components: tuple[str, ...]
    redis: bool
    aside: str
    objective_s: float
    steps: tuple[str, ...]


def plan_mode(mode: str, settings: Any) -> ModePlan:
    """What a mode does with these settings (pure: the dry run prints it, the run follows it)."""
    target, units = settings.target, list(settings.services.units)
    redis = bool(settings.backup.redis) and mode in ("data", "full")
    components = {"service": (), "configuration": (target.config_component,), "data": (target.data_component,),
                  "full": (target.application_component, target.config_component, target.data_component)}[mode]
    steps = [f"stop {u}" for u in reversed(units)]
    if mode == "service":
        steps.append(f"make sure {settings.redis.unit or 'Redis'} runs")
    steps += [f"restore {c} (swap; the current tree kept as {c}.{_aside(mode)}.<time>)" for c in components]
    if mode == "full":
        steps.append("restore system paths in place (when the backup holds them)")
    if redis:
        steps.append(f"stop {settings.redis.unit}, keep its RDB/AOF aside, place the backup's RDB, start it, "
                     "compare key counts")
    steps += [f"start {u}" for u in units] + ["wait for the health checks", "function test"]
    objective = getattr(settings.recovery.objectives, mode)
    return ModePlan(mode, tuple(dict.fromkeys(components)), redis, _aside(mode), objective, tuple(steps))


def _aside(mode: str) -> str:
    return "broken" if mode == "configuration" else "pre-restore"


def recover(ctx: "JobContext", mode: str, backup: str | None, dry_run: bool) -> JobResult:
    """Run a mode; unless it is a dry run, leave a JSON report in paths.reports_dir, whatever the outcome."""
    run = Run(ctx, mode)
    plan = plan_mode(mode, ctx.settings)
    began = ctx.now()
    try:
        result = _recover(run, plan, backup, dry_run)
    except BaseException as err:
        if not dry_run:
            _save_report(run, plan, began, error=err)
        raise
    if not dry_run:
        path = _save_report(run, plan, began, result=result)
        if path is not None:
            result.data["report_file"] = str(path)
            result.data["report"].append(f"report: {path}")
    return result


def _recover(run: Run, plan: ModePlan, backup: str | None, dry_run: bool) -> JobResult:
    ctx, mode = run.ctx, plan.mode
    env = prepared = layout = None
    if plan.components or plan.redis:
        run.step("key", "read the backup key into memory")
        env = _env(ctx)
        run.step("check backup", f"choose {backup or 'the newest usable backup'} and check its chain")

        def components(manifest: Manifest) -> tuple[list[str], bool]:
            names = list(plan.components) + ([SYSTEM] if mode == "full" and SYSTEM in manifest.components else [])
            return components_of(manifest, tuple(names))[0], plan.redis

        chosen = choose(env, RestoreRequest(backup=backup, need_redis=plan.redis), components)
        run.facts.update(backup=chosen.manifest.id, using=chosen.using, backup_age_s=chosen.age_s)
        run.note(f"{chosen.using}; chain of {len(chosen.chain)} checked")
        for line in [f"WARNING: {w}" for w in chosen.warnings] + chosen.notes:
            run.note(line)
        prepared = prepare(env, chosen)
        if plan.redis:
            layout = redis_layout(run)
            run.note(f"redis reads {layout.rdb}" + (" with append-only on" if layout.appendonly else ""))
    if dry_run:
        return _dry(run, plan, prepared, env)
    try:
        stop_units(run)
        if mode == "service":
            ensure_redis(run)
        redis_found = None
        swapped: list[Path] = []
        if prepared is not None and env is not None:
            swapped = _restore_trees(run, env, prepared, plan)
            if plan.redis and layout is not None:
                redis_found = restore_redis(run, env, prepared.manifest, layout)
                swapped += [current for current, _ in aside_moves(layout, env.stamp)]
        if mode == "full" and not plan.redis:
            ensure_redis(run)
        start_units(run)
    except BaseException:
        restart_stopped(run)
        raise
    checked = verify(run)
    removed: list[str] = []
    if env is not None and checked.ok and not (redis_found or {}).get("problems"):
        removed = prune_previous_trees(swapped, ctx.settings.recovery.keep_previous_trees, ctx)
        if removed:
            run.note(f"removed older previous trees (recovery.keep_previous_trees = "
                     f"{ctx.settings.recovery.keep_previous_trees}): {', '.join(removed)}")
    return _result(run, plan, prepared, checked, redis_found, removed)


def _save_report(run: Run, plan: ModePlan, began: Any, *, result: JobResult | None = None,
                 error: BaseException | None = None) -> Path | None:
    """``recover-<mode>-<time>.json`` in paths.reports_dir."""
    data = result.data if result is not None else {}
    failed = result is not None and result.outcome is Outcome.FAILED
    elapsed = time.monotonic() - run.started
    report = {
        "kind": "recover", "mode": plan.mode, "time": began.isoformat(), "finished": run.ctx.now().isoformat(),
        "outcome": outcome_of(error, failed=failed, warnings=bool(run.ctx.warnings)),
        "summary": result.summary if result is not None else None,
        "error": str(error) if error is not None else None,
        "backup": run.facts.get("backup"), "using": run.facts.get("using"),
        "backup_age_s": run.facts.get("backup_age_s"),
        "rto_s": data.get("rto_s", round(elapsed, 3)), "objective_s": plan.objective_s,
        "met": data.get("met", False) if error is None else False,
        "steps": run.log.timed(), "redis": data.get("redis"), "health": data.get("health"),
        "function_test": data.get("function_test"), "problems": data.get("problems", []),
        "removed_previous": data.get("removed_previous", []), "warnings": list(run.ctx.warnings),
        "report": data.get("report") or run.lines,
    }
    return save(run.ctx, f"recover-{plan.mode}-{stamp(began)}.json", report)


def _env(ctx: "JobContext") -> RestoreEnv:
    settings = ctx.settings
    gpg = open_key(settings)

    def verified(backup_id: str) -> bool | None:
        result = ctx.state.get(f"verify.{backup_id}")
        return bool(result.get("ok")) if isinstance(result, dict) and "ok" in result else None

    return RestoreEnv(catalog=Catalog.from_settings(settings), gpg=gpg, reporter=ctx, stamp=stamp(ctx.now()),
                      live={c.name: c.path for c in settings.target.components}, verified=verified,
                      allow_symlinks_outside=settings.recovery.allow_symlinks_outside, now=ctx.now(),
                      min_free_bytes=int(settings.recovery.min_free_bytes),
                      excludes={c.name: tuple(c.exclude) for c in settings.target.components})


def _restore_trees(run: Run, env: RestoreEnv, prepared: Prepared, plan: ModePlan) -> list[Path]:
    """Restore the mode's trees; returns the swapped live paths."""
    for component in prepared.plans:
        run.step("restore", f"restore {component} from {prepared.manifest.id}", component=component)
    only_trees = dataclasses.replace(prepared, redis=False)
    report = execute(env, only_trees, RestoreRequest(backup=prepared.manifest.id, aside=plan.aside))
    for tree in report.trees:
        kept = f"; previous tree kept as {tree.kept}" if tree.kept else ""
        run.note(f"{tree.component}: {tree.files} files, {tree.bytes} bytes into {tree.path}{kept}")
        if tree.carried:
            run.note(f"{tree.component}: carried over from the live tree (excluded from backups): "
                     f"{', '.join(tree.carried[:5])}{' ...' if len(tree.carried) > 5 else ''}")
    return [t.path for t in report.trees if t.component != SYSTEM]


def _dry(run: Run, plan: ModePlan, prepared: Prepared | None, env: RestoreEnv | None) -> JobResult:
    lines = [*run.lines, f"recover {plan.mode} would:"] + [f"  {i}. {s}" for i, s in enumerate(plan.steps, 1)]
    previews = []
    if prepared is not None and env is not None:
        for component, component_plan in prepared.plans.items():
            dest = env.live.get(component) or prepared.roots[component]
            item = preview(component_plan, dest, swap=component != SYSTEM,
                           excludes=carried_patterns(env, prepared.manifest, component))
            previews.append(item)
            lines.append(f"{component}: {item['added']} added, {item['changed']} changed, {item['removed']} removed "
                         f"in {dest}")
    return JobResult(f"dry run of recover {plan.mode}: {len(plan.steps)} steps",
                     data={"mode": plan.mode, "dry_run": True, "steps": list(plan.steps), "previews": previews,
                           "backup": prepared.manifest.id if prepared else None, "report": lines})


def _result(run: Run, plan: ModePlan, prepared: Prepared | None, checked: Any,
            redis_found: dict[str, Any] | None, removed: list[str]) -> JobResult:
    timing, line = verdict(WHAT[plan.mode], time.monotonic() - run.started, plan.objective_s)
    problems = list(checked.problems) + list((redis_found or {}).get("problems", []))
    data: dict[str, Any] = {"mode": plan.mode, **timing, "backup": prepared.manifest.id if prepared else None,
                            "using": prepared.using if prepared else None,
                            "backup_age_s": prepared.age_s if prepared else None,
                            "health": checked.probes, "function_test": checked.function_test,
                            "redis": redis_found, "problems": problems, "removed_previous": removed}
    if not timing["met"]:
        run.ctx.warn(f"recovery took {timing['rto_s']:.0f} s, over the {plan.mode} objective")
    if problems:
        summary = f"{line}; but: {'; '.join(problems)}"
        return JobResult(summary, data={**data, "report": [*run.lines, summary]}, outcome=Outcome.FAILED)
    return JobResult(line, data={**data, "report": [*run.lines, line]})
