"""Further tiers: copy each committed backup to other places, read it back, and report each place's freshness.

- ``replicate(ctx, manifest)``: after a local commit (called by the backup job), copy the backup and any member of
  its chain a tier lacks (or holds damaged) to every tier, verify, record ``tier.<tier>.<id>`` in state. A failing
  tier is a warning on the run, never a failure of the local backup.
- ``verify_copies(ctx, tiers=None)``: re-read every committed copy on the tiers, record what it finds.
- ``prune_tiers(ctx, dry_run=, local_ids=)``: apply the retention policy to what each tier holds.
- ``status(settings, state, now)`` / ``stale_tiers(...)`` (from tiers_status): each place against its objective.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..config import Settings, Tier
from ..errors import Cancelled, IntegrityError, MaintdError
from .catalog import MANIFEST, Catalog, Manifest
from .retention import plan, report_lines
from .tier_dir import DirTier
from .tier_objects import record_of
from .tier_rsync import RsyncTier
from .tiers_status import stale_tiers, state_key, status

__all__ = ["replicate", "verify_copies", "prune_tiers", "status", "stale_tiers", "state_key", "store_for"]

if TYPE_CHECKING:
    from ..job_contract import JobContext
    from ..state import State

Store = DirTier | RsyncTier


def store_for(settings: Settings, tier: Tier, cancel: Any = None) -> Store:
    if tier.kind == "dir":
        return DirTier(tier)
    return RsyncTier(tier, scratch=settings.paths.state_dir / "tier-scratch", cancel=cancel)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _record(state: "State", tier: str, backup_id: str, when: datetime, ok: bool, error: str | None = None) -> None:
    state.put(state_key(tier, backup_id), {"time": _iso(when), "ok": ok, "error": error})


def _error_text(err: BaseException, tier: str | None = None) -> str:
    """The error's message, without a leading ``tier NAME: `` (callers add their own context)."""
    text = err.message if isinstance(err, MaintdError) else str(err)
    return text.removeprefix(f"tier {tier}: ") if tier else text


# -- replicate -----------------------------------------------------------------------------------------------------
def replicate(ctx: "JobContext", manifest: Manifest) -> list[dict[str, Any]]:
    """Copy a committed backup to every tier. Returns one result per tier: {tier, ok, copied, error}.
    Cancelled propagates; any other failure becomes a warning on the run and a ``tier.<tier>.<id>`` record."""
    catalog = Catalog.from_settings(ctx.settings)
    results = []
    for tier in ctx.settings.backup.tiers:
        ctx.check_cancelled()
        results.append(_replicate_to(ctx, catalog, tier, manifest))
    return results


def _replicate_to(ctx: "JobContext", catalog: Catalog, tier: Tier, manifest: Manifest) -> dict[str, Any]:
    store = store_for(ctx.settings, tier, ctx.cancel_event)
    copied: list[str] = []
    current = manifest.id
    try:
        chain = catalog.chain(manifest.id)
        present = store.present()
        todo = [m for m in chain if m.id not in present or not _copy_ok(ctx, store, tier, m)]
        store.cleanup(keep=frozenset(m.id for m in todo))
        total = sum(m.size + catalog.object_path(m.id, MANIFEST).stat().st_size for m in todo)
        done = 0
        for member in todo:
            current = member.id
            ctx.check_cancelled()

            def moved(count: int) -> None:
                nonlocal done
                done += count
                ctx.progress(phase=f"tier {tier.name}", done_bytes=done, total_bytes=total, message=member.id)

            size = store.put(catalog.object_path(member.id, MANIFEST).parent, member,
                             check=ctx.check_cancelled, progress=moved)
            _record(ctx.state, tier.name, member.id, ctx.now(), True)
            ctx.log.info("tier.copied", tier=tier.name, backup_id=member.id, bytes=size)
            copied.append(member.id)
    except Cancelled:
        raise
    except (MaintdError, OSError) as err:
        message = _error_text(err, tier.name)
        _record(ctx.state, tier.name, current, ctx.now(), False, message)
        ctx.log.warning("tier.copy_failed", tier=tier.name, backup_id=current, error=message)
        ctx.warn(f"tier {tier.name}: {current} not copied: {message}")
        return {"tier": tier.name, "ok": False, "copied": copied, "error": message}
    return {"tier": tier.name, "ok": True, "copied": copied, "error": None}


def _copy_ok(ctx: "JobContext", store: Store, tier: Tier, member: Manifest) -> bool:
    """Whether a copy the tier holds can be trusted: recorded as verified, or (no record: a crash between the
    commit and the record, or a state.db lost) read back now and recorded."""
    record = ctx.state.get(state_key(tier.name, member.id))
    if isinstance(record, dict) and isinstance(record.get("ok"), bool):
        return record["ok"]
    problems = store.check(member, check=ctx.check_cancelled)
    _record(ctx.state, tier.name, member.id, ctx.now(), not problems, "; ".join(problems) or None)
    return not problems


# -- verify copies -------------------------------------------------------------------------------------------------
def verify_copies(ctx: "JobContext", tiers: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Re-read every committed copy on the tiers (all, or those named) against its manifest and record the
    result. Returns {tier, checked, damaged: [{id, problems}], error}; damage is also a warning on the run."""
    results = []
    for tier in ctx.settings.backup.tiers:
        if tiers is not None and tier.name not in tiers:
            continue
        store = store_for(ctx.settings, tier, ctx.cancel_event)
        checked, damaged = 0, []
        try:
            manifests, unreadable = store.inventory()
            findings = [(backup_id, [f"{backup_id}/{MANIFEST} missing or unreadable"]) for backup_id in unreadable]
            for manifest in manifests:
                ctx.check_cancelled()
                findings.append((manifest.id, store.check(manifest, check=ctx.check_cancelled)))
            for backup_id, problems in sorted(findings):
                checked += 1
                _record(ctx.state, tier.name, backup_id, ctx.now(), not problems, "; ".join(problems) or None)
                if problems:
                    damaged.append({"id": backup_id, "problems": problems})
                    ctx.log.warning("tier.copy_damaged", tier=tier.name, backup_id=backup_id, problems=problems)
                    ctx.warn(f"tier {tier.name}: copy of {backup_id} damaged: {'; '.join(problems)}")
        except Cancelled:
            raise
        except (MaintdError, OSError) as err:
            message = _error_text(err, tier.name)
            ctx.warn(f"tier {tier.name}: cannot verify copies: {message}")
            results.append({"tier": tier.name, "checked": checked, "damaged": damaged, "error": message})
            continue
        results.append({"tier": tier.name, "checked": checked, "damaged": damaged, "error": None})
    return results


# -- prune -------------------------------------------------------------------------------------------------------
def prune_tiers(ctx: "JobContext", *, dry_run: bool, local_ids: frozenset[str] = frozenset()
                ) -> list[dict[str, Any]]:
    """Apply the retention policy to each tier's own contents (planned over what the tier holds, so a tier never
    loses copies because the local store lost them). A tier holding a copy whose manifest cannot be read is not
    pruned (that copy may need others). Records of copies the tier no longer holds are dropped, except failures
    of backups still in the local store (`local_ids`), which status reports. Returns {tier, deleted, report,
    error} per tier."""
    results = []
    for tier in ctx.settings.backup.tiers:
        ctx.check_cancelled()
        store = store_for(ctx.settings, tier, ctx.cancel_event)
        deleted: list[str] = []
        try:
            manifests, unreadable = store.inventory()
            if unreadable:
                raise IntegrityError(f"copies with a missing or unreadable manifest: {', '.join(unreadable)}"
                                     " (repair or remove them by hand)")
            records = [record_of(m, ctx.state.get(state_key(tier.name, m.id))) for m in manifests]
            decided = plan(records, ctx.settings.backup.retention, ctx.now(), ctx.settings.tz)
            report = [f"tier {tier.name}: {line}" for line in report_lines(decided, dry_run=dry_run)]
            if not dry_run:
                for backup_id in decided.delete_ids:
                    ctx.check_cancelled()
                    store.remove(backup_id)
                    ctx.state.delete(state_key(tier.name, backup_id))
                    ctx.log.info("tier.pruned", tier=tier.name, backup_id=backup_id)
                    deleted.append(backup_id)
                _forget_absent(ctx.state, tier.name, {m.id for m in manifests} - set(deleted), local_ids)
        except Cancelled:
            raise
        except (MaintdError, OSError) as err:
            message = _error_text(err, tier.name)
            ctx.warn(f"tier {tier.name}: not pruned: {message}")
            results.append({"tier": tier.name, "deleted": deleted, "report": [], "error": message})
            continue
        results.append({"tier": tier.name, "deleted": list(decided.delete_ids) if dry_run else deleted,
                        "report": report, "error": None})
    return results


def _forget_absent(state: "State", tier: str, held: set[str], local_ids: frozenset[str]) -> None:
    prefix = state_key(tier, "")
    for key, value in list(state.items(prefix)):
        backup_id = key[len(prefix):]
        if backup_id in held:
            continue
        if value.get("ok") is False and backup_id in local_ids:
            continue  # a copy that failed of a backup we still have: status shows the error
        state.delete(key)
