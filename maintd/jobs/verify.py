"""The verify job: decrypt and check backups (docs/backup.md, "Verify").

args: ``backup`` (an id or "latest", the default), ``all`` (every committed backup), ``sample`` (percent of file
members whose content is hashed; objects are always checked whole). Verifying a backup verifies every member of
its chain too (a restore reads them all), each reported and stored on its own as kv ``verify.<id>``; a backup
with problems makes the run FAILED with the report as data. ``all`` also re-reads every copy on every tier
(``maintd.backup.tiers.verify_copies``): a damaged copy fails the run too, an unreachable tier is a warning.

Only damage is recorded. The key is checked first (canary, then the newest backup, as the backup job does): a key
that cannot open the backups (a typo in the passphrase file) fails the run with a GpgError and records nothing,
since every backup would otherwise look damaged and retention would treat them as bad. A single backup the key
does not open (made before a deliberate key change) is reported as not verified, not as damaged.
"""

from __future__ import annotations

import random
from datetime import timezone
from typing import Any, Mapping

from ..backup import keycheck, tiers
from ..backup.catalog import Catalog, Manifest
from ..backup.verification import VerifyReport, verify_backup
from ..edges.gpg import Gpg, GpgKeyError
from ..errors import GpgError, NotFoundError, UsageError
from ..model import Outcome
from .base import JobContext, JobResult, JobSpec

_TRUE = ("1", "true", "yes", "on")


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"backup", "all", "sample", "dry_run"}
    if extra:
        raise UsageError(f"verify: unexpected argument(s): {', '.join(sorted(extra))}")
    every = args.get("all", False)
    if isinstance(every, str):
        every = every.strip().lower() in _TRUE
    backup = args.get("backup")
    backup = str(backup).strip() if backup not in (None, "") else "latest"
    if every and backup != "latest":
        raise UsageError("verify: give either a backup or all, not both")
    sample = args.get("sample")
    if sample in (None, ""):
        sample_value = None
    else:
        try:
            sample_value = float(str(sample).rstrip("%"))
        except ValueError as err:
            raise UsageError(f"verify: sample must be a percentage, not {sample!r}") from err
        if not 0 < sample_value <= 100:
            raise UsageError("verify: sample must be above 0 and at most 100")
    dry = args.get("dry_run", False)
    if isinstance(dry, str):
        dry = dry.strip().lower() in _TRUE
    return {"backup": backup, "all": bool(every), "sample": sample_value, "dry_run": bool(dry)}


def _requested(catalog: Catalog, args: dict[str, Any]) -> list[Manifest]:
    if args.get("all"):
        return catalog.list()
    wanted = args.get("backup", "latest")
    if wanted == "latest":
        newest = catalog.latest(good_only=False)
        if newest is None:
            raise NotFoundError(f"no backup to verify under {catalog.root}")
        return [newest]
    return [catalog.get(wanted)]


def targets(catalog: Catalog, requested: list[Manifest]) -> list[Manifest]:
    """Every backup a restore of the requested ones opens: each member of their chains, oldest first, once. A
    restore of an incremental reads its ancestors' archives, so "verified" must cover them. A missing member is
    not listed here: verifying the backup that names it reports it."""
    present = {m.id: m for m in catalog.list()}
    chosen: dict[str, Manifest] = {}
    for manifest in requested:
        for member in manifest.chain:
            if member in present:
                chosen.setdefault(member, present[member])
        chosen.setdefault(manifest.id, manifest)
    return sorted(chosen.values(), key=lambda m: m.id)


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    catalog = Catalog.from_settings(ctx.settings)
    requested = _requested(catalog, args)
    chosen = targets(catalog, requested)
    sample = args.get("sample")
    check_tiers = bool(args.get("all")) and bool(ctx.settings.backup.tiers)
    if ctx.dry_run:
        names = [m.id for m in chosen]
        report = names + ([f"tier {t.name}: every copy" for t in ctx.settings.backup.tiers] if check_tiers else [])
        return JobResult(summary=f"would verify {len(names)} backup(s)", data={"dry_run": True, "backups": names,
                                                                                 "report": report})
    gpg = Gpg.from_settings(ctx.settings)
    if not gpg.has_secret_key():
        raise GpgError("verify needs to decrypt: this host has no secret key for backup.recipients "
                       "(public-key mode); verify on a host that holds it")
    key_note = _check_key(ctx, catalog, gpg)
    reports: list[VerifyReport] = []
    not_opened: list[tuple[str, str]] = []
    unreadable = catalog.unreadable() if args.get("all") else []
    for manifest in chosen:
        ctx.check_cancelled()
        try:
            report = verify_backup(catalog, gpg, manifest, sample=sample, rng=random.Random(),
                                   progress=ctx.progress, check_cancelled=ctx.check_cancelled)
        except GpgKeyError as err:
            # Not damage: the key in use cannot open this one (nothing is recorded for it).
            ctx.log.warning("verify.key_refused", backup_id=manifest.id, error=err.message)
            not_opened.append((manifest.id, err.message))
            continue
        moment = ctx.now().astimezone(timezone.utc).isoformat()
        ctx.state.put(f"verify.{manifest.id}", report.as_state(moment))
        ctx.log.info("verify.checked", backup_id=manifest.id, ok=report.ok, level=report.level,
                     problems=len(report.problems), members=report.members)
        reports.append(report)
    tier_results = tiers.verify_copies(ctx) if check_tiers else []
    failed = [r for r in reports if not r.ok]
    damaged_copies = [f"tier {t['tier']}: copy of {d['id']}" for t in tier_results for d in t["damaged"]]
    lines = []
    for report in reports:
        state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        lines.append(f"{report.backup_id}: {state} ({report.level}: {report.objects} objects, {report.members} "
                     f"members, {report.hashed} hashed)")
        lines.extend(f"  {p}" for p in report.problems[:50])
    for backup_id, reason in unreadable:
        lines.append(f"{backup_id}: unreadable, not a usable backup: {reason}")
    for backup_id, reason in not_opened:
        lines.append(f"{backup_id}: not verified (nothing recorded): {reason}")
    lines.extend(_chain_lines(requested, reports, not_opened, all_=bool(args.get("all"))))
    lines.extend(_tier_lines(tier_results))
    if key_note:
        lines.append(f"note: {key_note}")
    data = {"requested": [m.id for m in requested],
            "backups": [{"id": r.backup_id, "ok": r.ok, "level": r.level, "problems": r.problems,
                         "members": r.members, "hashed": r.hashed} for r in reports],
            "unreadable": [{"id": i, "reason": r} for i, r in unreadable],
            "not_verified": [{"id": i, "reason": r} for i, r in not_opened], "tiers": tier_results,
            "report": lines}
    if failed or unreadable or damaged_copies:
        names = ", ".join([r.backup_id for r in failed] + [i for i, _ in unreadable] + damaged_copies)
        if failed:
            first = failed[0].problems[0]
        elif unreadable:
            first = unreadable[0][1]
        else:
            first = next(d["problems"][0] for t in tier_results for d in t["damaged"])
        return JobResult(summary=f"verify found damage in {names}: {first}", data=data, outcome=Outcome.FAILED)
    what = (f"{len(reports)} backup(s)" if args.get("all") or len(requested) != 1 or len(reports) == 1
            else f"{requested[0].id} and its chain ({len(reports)} backups)")
    if not_opened:
        return JobResult(summary=f"verified {what}: all ok; {len(not_opened)} not verified: the configured key "
                                 "does not open them", data=data,
                         warnings=[f"{i}: not verified: {r}" for i, r in not_opened])
    return JobResult(summary=f"verified {what}: all ok", data=data)


def _tier_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per tier (maintd.backup.tiers.verify_copies), then one per damaged copy."""
    lines = []
    for result in results:
        name = result["tier"]
        copies = f"{result['checked']} cop{'y' if result['checked'] == 1 else 'ies'} checked"
        if result["error"]:
            lines.append(f"tier {name}: cannot verify copies ({copies} before): {result['error']}")
        else:
            state = "all ok" if not result["damaged"] else f"{len(result['damaged'])} damaged"
            lines.append(f"tier {name}: {copies}, {state}")
        lines.extend(f"  {item['id']}: {'; '.join(item['problems'])}" for item in result["damaged"])
    return lines


def _chain_lines(requested: list[Manifest], reports: list[VerifyReport], not_opened: list[tuple[str, str]],
                 *, all_: bool) -> list[str]:
    """For each requested backup whose chain holds a damaged or unchecked member: what a restore of it meets."""
    bad = {r.backup_id for r in reports if not r.ok} | {i for i, _ in not_opened}
    affected = [(m.id, [a for a in m.chain[:-1] if a in bad]) for m in requested]
    affected = [(backup_id, ancestors) for backup_id, ancestors in affected if ancestors and backup_id not in bad]
    if all_ and affected:  # one line, not one per incremental of a long chain
        shown = ", ".join(backup_id for backup_id, _ in affected[:5])
        more = f" and {len(affected) - 5} more" if len(affected) > 5 else ""
        return [f"{len(affected)} backup(s) intact themselves but built on a damaged or unverified one (a restore "
                f"of them would fail): {shown}{more}"]
    return [f"{backup_id}: its chain holds {', '.join(ancestors)} (damaged or not verified): a restore of it would "
            "fail" for backup_id, ancestors in affected]


def _check_key(ctx: JobContext, catalog: Catalog, gpg: Gpg) -> str | None:
    """The key self-test the backup job runs: the canary, then the newest backup. A key the backups refuse fails
    the run before anything is recorded. Returns a note when the newest backup had no intact object to probe."""
    ctx.progress(phase="self-test")
    gpg.self_test()
    try:
        return keycheck.probe_newest(catalog, gpg, catalog.list())
    except GpgKeyError as err:
        # gpg's own stderr lines only repeat the message in gpg's words: debug log, not the operator's screen
        ctx.log.debug("verify.key_refused_stderr", stderr=err.detail)
        raise GpgError(f"{err.message} Nothing was verified or recorded: check backup.passphrase_file (or the "
                       "secret key) and run verify again.") from err


JOB = JobSpec(name="verify", run=run, description="Decrypt and check backups (args: backup, all, sample)",
              locks=("target",), parse_args=parse_args)
