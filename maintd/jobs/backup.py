"""The backup job: full, incremental or differential; components, Redis, extra system paths.

Order of a run: writer lock, leftovers removed, key self-test (canary, then: does the key open the newest
backup?), plan (parent, chain; a missing or damaged parent means a full), free-space preflight, Redis snapshot,
components, manifest, atomic commit; then tier replication and prune (what prune deleted is in the result).

From a script, without the daemon: ``run_backup(settings, state, "full")`` (see its docstring).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import structlog

from .. import __version__
from ..backup import plan as planning
from ..backup import keycheck, parents, rdb, reader, scan, tiers
from ..backup.catalog import Catalog, Manifest, crash_point
from ..backup.ids import new_id
from ..backup.plan import ManifestInput, Plan
from ..backup.verification import VerifyReport
from ..backup.writer import ComponentResult, ComponentSpec, Options, ParentUnusable, Tracker, write_component
from ..edges.gpg import PUBLIC_KEY, Gpg, GpgKeyError
from ..errors import Cancelled, ConfigError, GpgError, MaintdError, StorageError, UnavailableError, UsageError
from ..model import BackupType, Trigger
from . import prune
from .base import JobContext, JobResult, JobSpec

log = structlog.get_logger("maintd.backup")


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"type", "dry_run"}
    if extra:
        raise UsageError(f"backup: unexpected argument(s): {', '.join(sorted(extra))}")
    value = str(args.get("type", "full")).strip().lower()
    try:
        kind = BackupType(value)
    except ValueError as err:
        raise UsageError(f"backup: type must be full, incremental or differential, not {value!r}") from err
    dry = args.get("dry_run", False)
    if isinstance(dry, str):
        dry = dry.strip().lower() in ("1", "true", "yes", "on")
    return {"type": kind.value, "dry_run": bool(dry)}


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    return perform(ctx, BackupType(args.get("type", "full")))


JOB = JobSpec(name="backup", run=run, description="Back up the components and Redis (args: type)",
              locks=("target",), parse_args=parse_args)


def run_backup(settings: Any, state: Any, backup_type: str | BackupType = "full", *,
               clock: Callable[[], datetime] | None = None,
               progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
    """A backup without the daemon or the runner (benchmarks, scripts): builds a JobContext and runs the job.
    ``progress`` receives each progress event's fields. Raises MaintdError on failure like the job does."""
    ctx = JobContext(settings=settings, job="backup", run_id=uuid.uuid4().hex[:12], trigger=Trigger.MANUAL,
                     state=state, log=structlog.get_logger("maintd.job").bind(job="backup"),
                     now=clock or (lambda: datetime.now(timezone.utc)),
                     emit=(lambda name, fields: progress(fields)) if progress else (lambda name, fields: None))
    return perform(ctx, BackupType(backup_type))


# -- the run ----------------------------------------------------------------------------------------------------
def perform(ctx: JobContext, requested: BackupType) -> JobResult:
    settings = ctx.settings
    catalog = Catalog.from_settings(settings)
    warnings: list[str] = []
    ctx.progress(phase="self-test")
    with catalog.writer_lock():
        catalog.cleanup_incomplete()
        gpg = Gpg.from_settings(settings)
        gpg.self_test()
        manifests = catalog.list()
        _key_opens_store(gpg, catalog, manifests, settings, warnings)
        specs = planning.components(settings.target.components, settings.backup.extra_paths)
        missing = _missing_components(settings, specs, warnings)
        plan = _plan(ctx, catalog, gpg, manifests, requested, specs, missing)
        warnings.extend(plan.notes)
        total_files, total_bytes, source_bytes = _totals(plan, manifests, specs, missing)
        needed, source = planning.estimate_bytes(manifests, plan.type, source_bytes)
        _preflight(settings, needed, source)
        if ctx.dry_run:
            return _dry_result(plan, needed, source, warnings)
        try:
            manifest, results = _write(ctx, catalog, gpg, plan, specs, missing, warnings, total_files, total_bytes)
        except ParentUnusable as err:
            note = f"{err.message}: taking a full backup instead"
            ctx.log.warning("backup.parent_unusable", reason=err.message)
            plan = Plan(requested, BackupType.FULL, None, (), (*plan.notes, note))
            warnings.append(note)
            manifest, results = _write(ctx, catalog, gpg, plan, specs, missing, warnings, total_files, total_bytes)
        ctx.log.info("backup.committed", backup_id=manifest.id, type=manifest.type.value, outcome=manifest.outcome,
                     size=manifest.size, files=manifest.files)
        # Still under the writer lock: an offline restore (another process) must not start between the commit and
        # the tier copies or the prune (which deletes backups).
        pruned = _after_commit(ctx, manifest)
    return _result(manifest, results, warnings, pruned)


def _key_opens_store(gpg: Gpg, catalog: Catalog, manifests: list[Manifest], settings: Any,
                     warnings: list[str]) -> None:
    """A passphrase that encrypts and decrypts a canary may still be the wrong one: check that it opens the
    newest existing backup (its smallest intact object; a wrong passphrase fails on the first bytes)."""
    try:
        note = keycheck.probe_newest(catalog, gpg, manifests)
    except GpgKeyError as err:
        # gpg's own stderr lines only repeat the message in gpg's words: debug log, not the operator's screen
        log.debug("backup.key_refused_stderr", stderr=err.detail)
        if not settings.backup.allow_new_key:
            raise GpgError(f"{err.message} If the key was changed on purpose, set backup.allow_new_key = true for "
                           "the next full backup (older backups still need the old key).") from err
        warnings.append(f"{err.message} (backup.allow_new_key: continuing with the new key)")
        return
    if note:
        warnings.append(note)


def _missing_components(settings: Any, specs: list[ComponentSpec], warnings: list[str]) -> dict[str, str]:
    missing: dict[str, str] = {}
    for spec in specs:
        if spec.paths:
            continue
        if not os.path.isdir(spec.root):
            component = settings.target.component(spec.name)
            if component is not None and component.optional:
                warnings.append(f"{spec.name}: optional component missing: {spec.root}")
                missing[spec.name] = spec.root
            else:
                raise UnavailableError(f"component {spec.name}: {spec.root} is not a directory")
    return missing


def _plan(ctx: JobContext, catalog: Catalog, gpg: Gpg, manifests: list[Manifest], requested: BackupType,
          specs: list[ComponentSpec], missing: dict[str, str]) -> Plan:
    plan = planning.plan_backup(manifests, requested)
    if plan.parent is None:
        return plan
    problem = _chain_checksums(ctx, catalog, plan.parent)
    if problem is None:
        problem = parents.problem(ctx.state, catalog, gpg, plan.parent, specs, missing)
    if problem is None:
        return plan
    ctx.log.warning("backup.parent_unusable", backup_id=plan.parent.id, reason=problem)
    return planning.plan_backup(manifests, requested, unusable={plan.parent.id: problem})


def _chain_checksums(ctx: JobContext, catalog: Catalog, parent: Manifest) -> str | None:
    """Size and sha256 of every object of the parent's chain against its manifest (no decryption). A mismatch is
    recorded as that backup's verify failure (kv ``verify.<id>``, level ``checksum``), as verify would record it,
    and makes the parent unusable."""
    ctx.progress(phase="parent-check")
    damage = parents.chain_damage(catalog, parent)
    if damage is None:
        return None
    damaged_id, message = damage
    report = VerifyReport(damaged_id, "checksum", [message])
    ctx.state.put(f"verify.{damaged_id}", report.as_state(ctx.now().astimezone(timezone.utc).isoformat()))
    ctx.log.warning("backup.chain_damaged", backup_id=damaged_id, parent=parent.id, problem=message)
    return message if damaged_id == parent.id else f"its chain member {damaged_id} is damaged: {message}"


def _totals(plan: Plan, manifests: list[Manifest], specs: list[ComponentSpec],
            missing: dict[str, str]) -> tuple[int, int, int | None]:
    """Files and bytes the run will walk (for progress), and the source size when a first full must estimate from
    it (a quick stat-only walk)."""
    reference = plan.parent or next((m for m in reversed(manifests) if m.type == BackupType.FULL), None)
    if reference is not None:
        files = sum(int(c.get("files", 0)) + int(c.get("dirs", 0)) + int(c.get("others", 0))
                    for c in reference.components.values())
        return files, sum(int(c.get("bytes", 0)) for c in reference.components.values()), None
    files = size = 0
    for spec in specs:
        if spec.name in missing:
            continue
        entries = scan.walk_paths(spec.paths) if spec.paths else scan.walk(os.fsencode(spec.root),
                                                                           scan.Excludes(spec.exclude))
        for entry in entries:
            files += 1
            size += entry.size
    return files, size, size


def _preflight(settings: Any, needed: int, source: str) -> None:
    root = settings.paths.backup_root
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        stats = os.statvfs(probe)
    except OSError as err:
        raise StorageError(f"cannot check free space under {root}: {err.strerror}") from err
    problem = planning.space_problem(stats.f_bavail * stats.f_frsize, needed, settings.backup.min_free_bytes,
                                     source, str(root))
    if problem:
        raise StorageError(problem)


def _write(ctx: JobContext, catalog: Catalog, gpg: Gpg, plan: Plan, specs: list[ComponentSpec],
           missing: dict[str, str], warnings: list[str], total_files: int,
           total_bytes: int) -> tuple[Manifest, dict[str, ComponentResult]]:
    settings = ctx.settings
    backup = settings.backup
    options = Options(backup.compression, backup.compression_level, backup.threads)
    created = ctx.now()
    backup_id = new_id(created, plan.type, catalog.stamp_taken)
    staging = catalog.begin(backup_id)
    cache_dir = catalog.cache_dir(backup_id) if gpg.mode == PUBLIC_KEY else None
    run_warnings = list(warnings)
    tracker = Tracker(ctx.progress, ctx.check_cancelled, total_bytes=total_bytes, total_files=total_files)
    ctx.log.info("backup.started", backup_id=backup_id, type=plan.type.value,
                 parent=plan.parent.id if plan.parent else None)
    try:
        extra_objects: dict[str, Any] = {}
        redis_part, partial = _redis(ctx, staging, gpg, options, run_warnings, extra_objects)
        crash_point("after-redis")
        results: dict[str, ComponentResult] = {}
        for spec in specs:
            if spec.name in missing:
                continue
            tracker.emit(f"archive:{spec.name}")
            with parents.entries(catalog, gpg, plan.parent, spec) as parent_entries:
                results[spec.name] = write_component(
                    staging, gpg, options, spec, backup_id=backup_id, parent=parent_entries,
                    cache=cache_dir / f"{spec.name}{reader.CACHE_SUFFIX}" if cache_dir is not None else None,
                    warn=run_warnings.append, tracker=tracker)
        tracker.emit("commit")
        crash_point("before-manifest")
        manifest = planning.build_manifest(ManifestInput(
            backup_id=backup_id, plan=plan, created=created, finished=ctx.now(), host=socket.gethostname(),
            maintd_version=__version__, application_version=_application_version(settings),
            compression=backup.compression, encryption=gpg.mode, specs=specs, results=results, missing=missing,
            objects=extra_objects, redis=redis_part, warnings=run_warnings, partial=partial))
        committed = staging.commit(manifest)
    except BaseException:
        staging.abort()
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
        raise
    warnings[:] = run_warnings
    for message in run_warnings[:50]:
        ctx.log.warning("backup.warning", backup_id=backup_id, message=message)
    return committed, results


def _redis(ctx: JobContext, staging: Any, gpg: Gpg, options: Options, warnings: list[str],
           objects: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(manifest part, partial). Redis unreachable: a failure, or with redis.required = false a partial backup."""
    settings = ctx.settings
    if not settings.backup.redis:
        return None, False
    ctx.progress(phase="redis")
    try:
        snap = rdb.snapshot(settings.redis, ctx.cancel_event)
    except (Cancelled, ConfigError):
        raise
    except MaintdError as err:
        if settings.redis.required:
            raise UnavailableError(f"backup failed: Redis is unavailable: {err.message}") from err
        warnings.append(f"redis: not backed up ({err.message}); backup marked partial (redis.required = false)")
        return None, True
    copy = rdb.store(snap, staging, gpg, compression=options.compression, level=options.level,
                     threads=options.threads)
    objects[copy.name] = copy.info
    return copy.manifest, False


def _application_version(settings: Any) -> str | None:
    path = settings.target.version_file
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _after_commit(ctx: JobContext, manifest: Manifest) -> dict[str, Any] | None:
    """Tier copies, then prune (with backup.prune_after_backup), called while the writer lock is held. Their
    failures are warnings here: the backup itself is committed. Returns what prune did (its data), None when it did
    not run."""
    try:
        tiers.replicate(ctx, manifest)
    except MaintdError as err:
        ctx.warn(f"tier replication failed: {err.message}")
    if not ctx.settings.backup.prune_after_backup or ctx.dry_run:
        return None
    try:
        return prune.prune_after_backup(ctx)
    except MaintdError as err:
        ctx.warn(f"prune after backup failed: {err.message}")
        return None


def _pruned_lines(pruned: dict[str, Any] | None) -> list[str]:
    """What prune after the backup deleted, for the report (an operator must see deletions)."""
    if not pruned:
        return []
    lines = [f"pruned {item['id']}: {item['reason']}" for item in pruned.get("deleted", [])]
    for tier in pruned.get("tiers", []):
        lines.extend(f"pruned from tier {tier['tier']}: {backup_id}" for backup_id in tier.get("deleted", []))
    return lines


def _dry_result(plan: Plan, needed: int, source: str, warnings: list[str]) -> JobResult:
    report = [f"would take a {plan.type.value} backup" + (f" on {plan.parent.id}" if plan.parent else ""),
              f"estimated size {needed} bytes (from {source})", *warnings]
    return JobResult(summary=report[0], data={"dry_run": True, "type": plan.type.value,
                                              "parent": plan.parent.id if plan.parent else None,
                                              "estimate_bytes": needed, "report": report}, warnings=[])


def _result(manifest: Manifest, results: dict[str, ComponentResult], warnings: list[str],
            pruned: dict[str, Any] | None = None) -> JobResult:
    files = sum(r.files for r in results.values())
    stored_files = sum(r.stored_files for r in results.values())
    size = sum(r.bytes for r in results.values())
    stored = sum(r.stored_bytes for r in results.values())
    objects = {name: entry["size"] for name, entry in manifest.objects.items()}
    report = [f"backup {manifest.id} ({manifest.type.value}, {manifest.outcome})",
              f"parent: {manifest.parent or '-'}; chain of {len(manifest.chain)}",
              f"{files} files, {size} bytes; stored {stored_files} files, {stored} bytes",
              f"{len(objects)} objects, {manifest.size} bytes on disk"]
    for name, result in results.items():
        report.append(f"  {name}: {result.files} files ({result.stored_files} stored), {result.dirs} dirs, "
                      f"{result.bytes} bytes")
    if manifest.redis:
        report.append(f"  redis: {planning.redis_summary(manifest.redis)}")
    report.extend(_pruned_lines(pruned))
    report.extend(f"warning: {w}" for w in warnings[:20])
    if len(warnings) > 20:
        report.append(f"... and {len(warnings) - 20} more warnings (see the manifest)")
    summary = f"{manifest.type.value} backup {manifest.id}: {stored_files} of {files} files stored"
    return JobResult(summary=summary, warnings=list(planning.capped(warnings, 200)), data={
        "id": manifest.id, "type": manifest.type.value, "requested_type": manifest.raw.get("requested_type"),
        "parent": manifest.parent, "chain": list(manifest.chain), "outcome": manifest.outcome, "files": files,
        "bytes": size, "stored_files": stored_files, "stored_bytes": stored, "objects": objects,
        "size": manifest.size, "warnings": len(warnings),
        "pruned": [item["id"] for item in (pruned or {}).get("deleted", [])],
        "pruned_tiers": {t["tier"]: list(t.get("deleted", [])) for t in (pruned or {}).get("tiers", [])
                         if t.get("deleted")},
        "report": report})
