"""One maintd measurement in its own process, so its peak RSS is its own:

    python bench/maintd_child.py SETTINGS.json OUT.json backup full|incremental|differential
    python bench/maintd_child.py SETTINGS.json OUT.json verify BACKUP_ID
    python bench/maintd_child.py SETTINGS.json OUT.json restore BACKUP_ID DEST

SETTINGS.json holds the keyword arguments of ``maintd.config.Settings``. The job is called the way the backup and
restore docs say scripts should (``run_backup``, the verify and restore jobs through a JobContext), not through
the daemon. OUT.json receives: seconds (the job alone, imports and settings excluded), import_s, the job's data,
hwm_self_kb (this Python process's peak RSS; the helpers' are sampled by the parent)."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()


class NotAvailable(Exception):
    """maintd does not have this operation (yet)."""


def own_peak_kb() -> int:
    """VmHWM: this process's own high-water mark. Not getrusage's ru_maxrss, which keeps the high-water mark of
    the process we were forked from (the kernel carries it over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr), cache_logger_on_first_use=True)


def context(settings: Any, state: Any, job: str) -> Any:
    import structlog

    from maintd.jobs.base import JobContext
    from maintd.model import Trigger

    return JobContext(settings=settings, job=job, run_id=uuid.uuid4().hex[:12], trigger=Trigger.MANUAL, state=state,
                      log=structlog.get_logger("maintd.job").bind(job=job),
                      now=lambda: datetime.now(timezone.utc))


def do_backup(settings: Any, state: Any, kind: str) -> dict[str, Any]:
    from maintd.jobs.backup import run_backup

    return run_backup(settings, state, kind).data


def _job(name: str) -> Any:
    import importlib

    try:
        module = importlib.import_module(f"maintd.jobs.{name}")
    except ImportError as err:
        raise NotAvailable(f"maintd.jobs.{name} is not there: {err}") from err
    spec = getattr(module, "JOB", None)
    if spec is None:
        raise NotAvailable(f"maintd.jobs.{name} has no JOB")
    return spec


def do_verify(settings: Any, state: Any, backup_id: str) -> dict[str, Any]:
    spec = _job("verify")
    ctx = context(settings, state, "verify")
    result = spec.run(ctx, spec.parse_args({"backup": backup_id}))
    outcome = getattr(result, "outcome", None)
    if outcome is not None and str(getattr(outcome, "value", outcome)) == "failed":
        raise RuntimeError(f"verify failed: {result.summary}")
    return result.data


def do_restore(settings: Any, state: Any, backup_id: str, dest: str) -> dict[str, Any]:
    spec = _job("restore")
    ctx = context(settings, state, "restore")
    component = settings.target.components[0].name
    args = spec.parse_args({"backup": backup_id, "components": component, "target": dest})
    return spec.run(ctx, args).data


def main(argv: list[str]) -> int:
    settings_path, out_path, op, *rest = argv
    quiet_logs()
    from maintd.config import Settings
    from maintd.state import State

    settings = Settings(**json.loads(Path(settings_path).read_text()))
    state = State.open(settings.paths.state_dir)
    import_s = time.perf_counter() - STARTED
    import maintd

    out: dict[str, Any] = {"op": op, "args": rest, "import_s": round(import_s, 4), "maintd": maintd.__file__}
    started = time.perf_counter()
    try:
        if op == "backup":
            data = do_backup(settings, state, rest[0])
        elif op == "verify":
            data = do_verify(settings, state, rest[0])
        elif op == "restore":
            data = do_restore(settings, state, rest[0], rest[1])
        else:
            raise SystemExit(f"unknown op {op!r}")
        out["seconds"] = time.perf_counter() - started
        out["data"] = {k: v for k, v in (data or {}).items() if k != "report"}
        code = 0
    except NotAvailable as err:
        out["unavailable"] = str(err)
        code = 3
    finally:
        state.close()
    out["hwm_self_kb"] = own_peak_kb()
    Path(out_path).write_text(json.dumps(out, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
