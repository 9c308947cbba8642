"""The restore drill: prove that the newest backup really restores.

Restores the chain a recovery would use (``restore_plan.select_backup``: the newest good backup whose chain passes
the integrity check; every component, every file's hash checked) into a scratch dir on the backup store's
filesystem (recovery.scratch_dir, default backup_root/.drill), loads the backup's RDB into a throwaway
redis-server on a free local port and compares the key counts with the manifest, records the measured time as
the data-loss RTO in state (kv ``drill.last``: time, ok, backup, rto_s, objective_s, met, files, bytes, keys,
error) and always removes the scratch copy and the throwaway Redis. Anything that does not match fails the job
(and the health job reports the failed drill), and so does a damaged newest backup the drill had to pass over."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

from ..backup.catalog import Catalog
from ..backup.restore_plan import stamp
from ..backup.catalog import Manifest
from ..backup.restore_rdb import write_rdb
from ..backup.restore_run import RestoreEnv, RestoreRequest, choose, components_of, execute, open_key, prepare
from ..config import Redis as RedisSettings
from ..edges import process
from ..edges import redis as redis_edge
from ..errors import Cancelled, IntegrityError, MaintdError, UnavailableError
from ..model import Outcome
from ..recovery.redis_restore import key_problems
from ..recovery.report import StepLog, outcome_of, save
from ..recovery.rto import human, verdict
from .base import JobContext, JobResult, JobSpec
from .restore import as_backup, as_bool, check_keys

STATE_KEY = "drill.last"
HINT = "run `maintctl drill` after fixing the cause to clear it"
"""A failed drill keeps the health job's backup_age probe `degraded` until a drill passes (they run quarterly)."""
POLL_S = 0.05


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(args, {"backup", "dry_run"}, "drill")
    return {"backup": as_backup(args.get("backup")), "dry_run": as_bool(args.get("dry_run", False), "dry_run")}


def with_hint(error: str) -> str:
    """The error a failed drill records, ending with what clears the health warning it causes."""
    return f"{error} ({HINT})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_argv(binary: str, port: int, directory: Path) -> list[str]:
    """A throwaway Redis: local only, never saving, loading ``directory/dump.rdb``."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--dbfilename",
            "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", str(directory / "redis.log")]


class ThrowawayRedis:
    """A redis-server child loading a snapshot; ``keyspace()`` once it answers; ``stop()`` always."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc = process.spawn(redis_argv(binary, self.port, directory), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # it logs to its logfile
        self.settings = RedisSettings(url=f"redis://127.0.0.1:{self.port}/0", unit="", timeout=2.0)

    def keyspace(self, timeout: float, cancel: Any) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        with redis_edge.connect(self.settings) as client:
            while True:
                if self.proc.poll() is not None:
                    raise IntegrityError(f"redis-server could not load the backup's RDB (exit {self.proc.returncode})",
                                         detail=self._log_tail())
                try:
                    client.ping()
                    return client.keyspace()
                except UnavailableError:
                    pass
                if time.monotonic() > deadline:
                    raise UnavailableError(f"the drill's redis-server did not load the RDB within {timeout:g}s",
                                           detail=self._log_tail())
                if cancel.wait(POLL_S):
                    raise Cancelled("drill cancelled while Redis was loading")

    def _log_tail(self) -> str:
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line for line in lines[-6:] if "WARNING" not in line)

    def stop(self) -> None:
        process.terminate(self.proc)


def remove_leftovers(scratch_root: Path) -> None:
    """Scratch copies a killed drill left (drills exclude each other through the target lock)."""
    if scratch_root.is_dir():
        for path in scratch_root.iterdir():
            shutil.rmtree(path, ignore_errors=True)


def everything(manifest: Manifest) -> tuple[list[str], bool]:
    """What a drill restores of a backup: every component, and Redis when the backup holds a snapshot."""
    return (components_of(manifest, tuple(manifest.components))[0],
            bool(manifest.redis) and manifest.redis_name() in manifest.objects)


def verified_in(ctx: JobContext) -> Any:
    """backup id -> its last verify result (True/False), None when never verified."""
    def verified(backup_id: str) -> bool | None:
        result = ctx.state.get(f"verify.{backup_id}")
        return bool(result.get("ok")) if isinstance(result, dict) and "ok" in result else None

    return verified


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    """The drill; unless it is a dry run, kv ``drill.last`` and a JSON report in paths.reports_dir record it,
    whatever the outcome."""
    dry = ctx.dry_run or bool(args.get("dry_run"))
    began = ctx.now()
    record: dict[str, Any] = {"time": began.isoformat(), "ok": False, "backup": None,
                              "objective_s": ctx.settings.recovery.objectives.data}
    log = StepLog()
    try:
        result = _drill(ctx, args, record, log, dry)
    except BaseException as err:
        if not dry:
            _save_report(ctx, record, log, began, error=err)
        raise
    if not dry:
        path = _save_report(ctx, record, log, began, result=result)
        if path is not None:
            result.data["report_file"] = str(path)
            result.data["report"].append(f"report: {path}")
    return result


def _save_report(ctx: JobContext, record: dict[str, Any], log: StepLog, began: Any, *,
                 result: JobResult | None = None, error: BaseException | None = None) -> Any:
    """``drill-<time>.json`` in paths.reports_dir."""
    failed = result is not None and result.outcome is Outcome.FAILED
    report = {"kind": "drill", "time": began.isoformat(), "finished": ctx.now().isoformat(),
              "outcome": outcome_of(error, failed=failed, warnings=bool(ctx.warnings)),
              "summary": result.summary if result is not None else None,
              "error": record.get("error") or (str(error) if error is not None else None),
              **{k: record.get(k) for k in ("backup", "using", "backup_age_s", "rto_s", "objective_s", "met",
                                            "files", "bytes", "keys")},
              "steps": log.timed(), "warnings": list(ctx.warnings),
              "report": (result.data.get("report") if result is not None else None) or []}
    return save(ctx, f"drill-{stamp(began)}.json", report)


def _step(ctx: JobContext, log: StepLog, name: str, **fields: Any) -> None:
    log.begin(name)
    ctx.step(name, **fields)


def _drill(ctx: JobContext, args: dict[str, Any], record: dict[str, Any], log: StepLog, dry: bool) -> JobResult:
    settings = ctx.settings
    objective = settings.recovery.objectives.data
    scratch_root = settings.recovery.scratch_dir or settings.paths.backup_root / ".drill"
    scratch = scratch_root / stamp(ctx.now())
    redis: ThrowawayRedis | None = None
    started = log.started
    try:
        _step(ctx, log, "key")
        gpg = open_key(settings)
        env = RestoreEnv(catalog=Catalog.from_settings(settings), gpg=gpg, reporter=ctx, stamp=stamp(ctx.now()),
                         allow_symlinks_outside=settings.recovery.allow_symlinks_outside, verified=verified_in(ctx),
                         now=ctx.now(), min_free_bytes=int(settings.recovery.min_free_bytes))
        _step(ctx, log, "check chain")
        chosen = choose(env, RestoreRequest(backup=args.get("backup")), everything)
        manifest, components, has_redis = chosen.manifest, chosen.components, chosen.redis
        record.update(backup=manifest.id, using=chosen.using, backup_age_s=chosen.age_s)
        if chosen.warnings:
            record["warnings"] = list(chosen.warnings)
        if dry:
            return JobResult(f"dry run: the drill would restore {manifest.id} ({', '.join(components)}"
                             f"{' and Redis' if has_redis else ''}) into {scratch.parent}",
                             data={"backup": manifest.id, "scratch": str(scratch), "dry_run": True,
                                   "report": [chosen.using, *(f"WARNING: {w}" for w in chosen.warnings)]})
        remove_leftovers(scratch_root)
        prepared = prepare(env, chosen)
        _step(ctx, log, "restore files", components=components)
        env.live = {c: scratch / "files" / c for c in components}
        scratch.mkdir(parents=True)
        report = execute(env, dataclasses.replace(prepared, redis=False), RestoreRequest(backup=manifest.id))
        record.update(files=report.files, bytes=report.bytes)
        if has_redis:
            _step(ctx, log, "load redis")
            (scratch / "redis").mkdir()
            write_rdb(env, manifest, scratch / "redis" / "dump.rdb")
            redis = ThrowawayRedis(settings.recovery.redis_server, scratch / "redis")
            found = redis.keyspace(settings.recovery.drill_timeout, ctx.cancel_event)
            expected = dict((manifest.redis or {}).get("keys", {}))
            record["keys"] = {"expected": expected, "found": found}
            problems = key_problems(expected, found, settings.recovery.key_count_tolerance)
            if problems:
                raise IntegrityError("the drill's Redis key counts do not match the backup: " + "; ".join(problems))
        else:
            ctx.warn(f"backup {manifest.id} holds no Redis snapshot: the drill checked files only")
        timing, _ = verdict("restored", time.monotonic() - started, objective)
        record.update(ok=not chosen.damaged, **timing)
        if chosen.damaged:
            record.update(error=with_hint("damaged: " + "; ".join(chosen.damaged.values())
                                          + f" (the older {manifest.id} restored instead)"), hint=HINT)
    except MaintdError as err:
        record.update(ok=False, error=with_hint(err.message), hint=HINT, rto_s=None, met=False)
        raise
    except Exception as err:  # a bug: the runner records `crashed` with the traceback
        record.update(ok=False, error=with_hint(f"crashed: {type(err).__name__}: {err}"), hint=HINT, rto_s=None,
                      met=False)
        raise
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if not dry:
            ctx.state.put(STATE_KEY, record)
    keys = f", {sum(record['keys']['found'].values())} keys" if "keys" in record else ""
    _, timing = verdict("restored", record["rto_s"], objective)
    line = f"drill passed on {record['backup']}: {record['files']} files, {record['bytes']} bytes{keys} {timing}"
    if not record["met"]:
        ctx.warn(f"the drill's restore took {record['rto_s']:.0f} s, over the data-loss objective of "
                 f"{human(objective)}")
    if not record["ok"]:  # the newest backup did not pass: the fallback restoring is no comfort
        line = f"drill FAILED: the newest backup is {record['error']}"
        return JobResult(line, data={**record, "report": report.lines()}, outcome=Outcome.FAILED)
    return JobResult(line, data={**record, "report": report.lines()})  # the summary line is printed once, not here


JOB = JobSpec(name="drill", run=run, locks=("target",), parse_args=parse_args,
              description="Restore the newest backup into a scratch dir, load its Redis snapshot into a throwaway "
                          "server, check every hash and key count; records the measured data RTO")
