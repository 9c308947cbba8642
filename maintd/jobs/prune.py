"""The `prune` job: apply the retention policy to the local store and to every tier.

Plans with ``maintd.backup.retention.plan`` over the committed backups and their verify results (state kv
``verify.<id>``), then deletes what the plan deletes, newest first (a crash mid-way never leaves a remaining backup
without its chain), each through ``Catalog.delete`` (renamed into ``.deleting/`` first). ``dry_run`` only reports.
The backup job calls ``prune_after_backup(ctx)`` right after a successful backup, inside its lock.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..backup.catalog import Catalog
from ..backup.retention import Plan, plan, report_lines
from ..backup.tier_files import tree_bytes
from ..backup.tier_objects import record_of
from ..backup.tiers import prune_tiers
from ..errors import IntegrityError, UsageError
from .base import JobContext, JobResult, JobSpec

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise UsageError(f"{name} must be true or false, not {value!r}")


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"dry_run"}
    if extra:
        raise UsageError(f"prune: unexpected argument(s): {', '.join(sorted(extra))} (only dry_run)")
    return {"dry_run": parse_bool("dry_run", args.get("dry_run", False))}


def local_plan(ctx: JobContext, catalog: Catalog) -> Plan:
    records = [record_of(m, ctx.state.get(f"verify.{m.id}")) for m in catalog.list()]
    return plan(records, ctx.settings.backup.retention, ctx.now(), ctx.settings.tz)


def prune(ctx: JobContext, *, dry_run: bool) -> dict[str, Any]:
    """Plan and (unless dry_run) delete, locally and on every tier. Returns the JSON-able outcome:
    kept [{id, rules}], deleted [{id, reason}], freed_bytes, tiers [...], report [lines]."""
    root = ctx.settings.paths.backup_root
    catalog = Catalog.from_settings(ctx.settings)
    unreadable = catalog.unreadable()
    if unreadable:
        # Its chain is unknown: planning without it could delete a backup it needs.
        raise IntegrityError("prune refused: backups with a missing or unreadable manifest: "
                             + "; ".join(f"{backup_id} ({why})" for backup_id, why in unreadable)
                             + ". Repair or remove them by hand (`maintctl verify` names them), then prune again.")
    decided = local_plan(ctx, catalog)
    freed = 0
    deleted = []
    reasons = {d.id: d.reasons[0] for d in decided.deleted}
    for backup_id in decided.delete_ids:
        ctx.check_cancelled()
        size = tree_bytes(root / backup_id)
        if not dry_run:
            catalog.delete(backup_id)  # also drops its index cache entry (state_dir/index-cache/<id>)
            ctx.state.delete(f"verify.{backup_id}")
            ctx.log.info("backup.pruned", backup_id=backup_id, bytes=size, reason=reasons[backup_id])
        freed += size
        deleted.append({"id": backup_id, "reason": reasons[backup_id]})
    tiers = prune_tiers(ctx, dry_run=dry_run, local_ids=frozenset(m.id for m in catalog.list()))
    report = report_lines(decided, dry_run=dry_run)
    for tier in tiers:
        report += tier["report"] or [f"tier {tier['tier']}: not pruned: {tier['error']}"]
    verb = "would free" if dry_run else "freed"
    report.append(f"{len(decided.kept)} kept, {len(deleted)} {'to delete' if dry_run else 'deleted'},"
                  f" {verb} {freed} bytes locally")
    return {"dry_run": dry_run, "kept": [{"id": d.id, "rules": list(d.reasons)} for d in decided.kept],
            "deleted": sorted(deleted, key=lambda d: d["id"]), "freed_bytes": freed, "tiers": tiers,
            "report": report}


def prune_after_backup(ctx: JobContext) -> dict[str, Any]:
    """Called by the backup job after a successful commit, inside its lock: the same plan as `maintctl prune`.
    The planner itself never deletes the newest good backup nor anything a kept backup needs."""
    return prune(ctx, dry_run=ctx.dry_run)


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    dry_run = bool(args.get("dry_run")) or ctx.dry_run
    # The runner's "target" lock keeps backup/restore runs of this daemon out; the store's writer lock keeps out
    # other processes (an offline `maintd restore`). Not taken by prune_after_backup: the backup holds it.
    with Catalog.from_settings(ctx.settings).writer_lock():
        data = prune(ctx, dry_run=dry_run)
    count = len(data["deleted"])
    tier_count = sum(len(t["deleted"]) for t in data["tiers"])
    if dry_run:
        summary = f"would delete {count} backup(s), keep {len(data['kept'])}"
    else:
        summary = f"deleted {count} backup(s) ({data['freed_bytes']} bytes), kept {len(data['kept'])}"
    if tier_count:
        summary += f"; {tier_count} tier cop{'y' if tier_count == 1 else 'ies'}"
    return JobResult(summary=summary, data=data)


JOB = JobSpec(name="prune", run=run, description="Delete backups the retention policy no longer keeps",
              locks=("target",), parse_args=parse_args, mutating=True)
