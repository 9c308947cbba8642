"""The restore job: rebuild components (and optionally the Redis snapshot file) from a backup or a point in time.

Args: backup (id | "latest"), at (ISO time: the newest backup at or before), components (list or comma string;
"redis" writes the snapshot file, with a target), target (dir), delete (bool, with target), dry_run.
Without target each component is rebuilt beside its live path and swapped in (the old tree is kept as
``NAME.pre-restore.<time>``); with target it is written there (one component: DIR itself; several: DIR/<name>).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from ..backup.catalog import Catalog
from ..backup.restore_plan import parse_at, stamp
from ..backup.restore_run import RestoreEnv, RestoreReport, RestoreRequest, open_key, restore
from ..edges.gpg import Gpg
from ..errors import UsageError
from .base import JobContext, JobResult, JobSpec

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UsageError(f"{key} must be true or false, not {value!r}")


def as_components(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    names = [str(item).strip() for item in items if str(item).strip()]
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise UsageError(f"not a component name: {', '.join(bad)}")
    return list(dict.fromkeys(names))


def as_backup(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text in ("", "latest") else text


def check_keys(args: Mapping[str, Any], allowed: set[str], job: str) -> None:
    extra = set(args) - allowed
    if extra:
        raise UsageError(f"{job}: unexpected argument(s): {', '.join(sorted(extra))} "
                         f"(allowed: {', '.join(sorted(allowed))})")


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(args, {"backup", "at", "components", "target", "delete", "dry_run"}, "restore")
    out: dict[str, Any] = {"backup": as_backup(args.get("backup")), "at": None,
                           "components": as_components(args.get("components")), "target": None,
                           "delete": as_bool(args.get("delete", False), "delete"),
                           "dry_run": as_bool(args.get("dry_run", False), "dry_run")}
    if args.get("at"):
        if out["backup"]:
            raise UsageError("restore: give a backup id or at, not both")
        out["at"] = parse_at(str(args["at"])).isoformat()
    if args.get("target"):
        target = Path(str(args["target"]))
        if not target.is_absolute():
            raise UsageError(f"restore: target must be an absolute path, not {target}")
        out["target"] = str(target)
    if out["delete"] and not out["target"]:
        raise UsageError("restore: delete needs a target (a restore in place swaps the whole tree anyway)")
    return out


def request_of(args: Mapping[str, Any], dry_run: bool) -> RestoreRequest:
    return RestoreRequest(backup=args.get("backup"), at=parse_at(args["at"]) if args.get("at") else None,
                          components=tuple(args.get("components") or ()),
                          target=Path(args["target"]) if args.get("target") else None,
                          delete=bool(args.get("delete")), dry_run=dry_run)


def env_for(ctx: JobContext, gpg: Gpg) -> RestoreEnv:
    settings = ctx.settings

    def verified(backup_id: str) -> bool | None:
        result = ctx.state.get(f"verify.{backup_id}")
        return bool(result.get("ok")) if isinstance(result, dict) and "ok" in result else None

    return RestoreEnv(catalog=Catalog.from_settings(settings), gpg=gpg, reporter=ctx, stamp=stamp(ctx.now()),
                      live={c.name: c.path for c in settings.target.components}, verified=verified,
                      allow_symlinks_outside=settings.recovery.allow_symlinks_outside, now=ctx.now(),
                      min_free_bytes=int(settings.recovery.min_free_bytes),
                      keep_previous=settings.recovery.keep_previous_trees,
                      excludes={c.name: tuple(c.exclude) for c in settings.target.components})


def live_warning(components: list[str], target: Any) -> str:
    """A restore in place swaps live trees under a running service: say so, and name the recovery that stops,
    restores and restarts (the restore itself is not changed)."""
    if set(components) <= {target.data_component}:
        mode = "data"
    elif set(components) <= {target.config_component}:
        mode = "configuration"
    else:
        mode = "full"
    return (f"services were not stopped; use `maintctl recover {mode}` to stop, restore and restart "
            f"(restored in place: {', '.join(components)})")


def summary_of(report: RestoreReport) -> str:
    if report.dry_run:
        counts = [f"{p['component']} +{p['added']} ~{p['changed']} -{p['removed']}" for p in report.previews]
        return f"dry run {report.using or report.backup_id}: " + (", ".join(counts) or "nothing to restore")
    parts = [t.component for t in report.trees] + (["redis"] if report.redis_path else [])
    return (f"restored {', '.join(parts)} {report.using or 'from ' + report.backup_id}: {report.files} files, "
            f"{report.bytes} bytes in {report.seconds:.1f} s")


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    request = request_of(args, ctx.dry_run or bool(args.get("dry_run")))
    ctx.progress(phase="key")
    env = env_for(ctx, open_key(ctx.settings))
    report = restore(env, request)
    if request.target is None and report.trees:
        ctx.warn(live_warning([t.component for t in report.trees], ctx.settings.target))
    ctx.log.info("restore.finished", backup_id=report.backup_id, dry_run=report.dry_run, files=report.files,
                 bytes=report.bytes, duration_s=round(report.seconds, 3))
    return JobResult(summary_of(report), data={**report.as_data(), "report": report.lines()})


JOB = JobSpec(name="restore", run=run, locks=("target",), parse_args=parse_args,
              description="Restore components from a backup or a point in time (args: backup, at, components, "
                          "target, delete, dry_run)")
