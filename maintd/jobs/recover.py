"""The recover job: the runbook's disaster-recovery scenarios (service, configuration, data, full), each a staged
procedure reporting its steps and its measured duration against the objective (recovery.objectives).

Args: mode (service | configuration | data | full), backup (id; default: the one restore and drill pick too, see
restore_plan.select_backup), dry_run.
The procedures live in maintd/recovery/modes.py.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import UsageError
from ..recovery.modes import MODES, recover
from .base import JobContext, JobResult, JobSpec
from .restore import as_backup, as_bool, check_keys


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(args, {"mode", "backup", "dry_run"}, "recover")
    mode = str(args.get("mode", "")).strip().lower()
    if mode not in MODES:
        raise UsageError(f"recover: mode must be one of {', '.join(MODES)}, not {mode!r}")
    backup = as_backup(args.get("backup"))
    if backup and mode == "service":
        raise UsageError("recover service restores nothing: it takes no backup")
    return {"mode": mode, "backup": backup, "dry_run": as_bool(args.get("dry_run", False), "dry_run")}


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    result = recover(ctx, args["mode"], args.get("backup"), ctx.dry_run or bool(args.get("dry_run")))
    ctx.log.info("recover.finished", mode=args["mode"], rto_s=result.data.get("rto_s"),
                 met=result.data.get("met"), dry_run=bool(result.data.get("dry_run")))
    return result


JOB = JobSpec(name="recover", run=run, locks=("target",), parse_args=parse_args,
              description="Disaster recovery: service, configuration, data or full (args: mode, backup, dry_run); "
                          "reports the measured recovery time against its objective")
