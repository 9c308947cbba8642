"""maintctl: the operator's command line for a running maintd, over its control socket.

Exit codes: 0 ok (run succeeded or warning), 1 the job failed (failed, crashed, timeout, interrupted),
64 usage, 69 daemon unreachable, 75 busy, 77 denied, 78 config. `--json` prints only JSON on stdout.
Nothing ever prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

from . import __version__, cli_render, protocol
from .errors import (EX_CONFIG, EX_DATAERR, EX_FAILED, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE,
                     EX_USAGE)

PASSED_THROUGH_EXIT_CODES = frozenset({EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_NOPERM, EX_CONFIG})

DEFAULT_SOCKET = Path("/run/maintd/maintd.sock")
OK_OUTCOMES = ("succeeded", "warning", "skipped")


class CtlError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Parser(argparse.ArgumentParser):
    """argparse that exits 64 (EX_USAGE) on a usage error instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


# -- talking to the daemon -----------------------------------------------------------------------------------
class Client:
    def __init__(self, path: Path, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout

    def stream(self, op: str, **args: Any) -> Iterator[dict[str, Any]]:
        """Send one request; yield every reply line (events, then the result). An error reply raises CtlError
        with the daemon's exit code."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise CtlError(f"maintd is not running (nothing answers at {self.path})", EX_UNAVAILABLE) from None
        except PermissionError:
            sock.close()
            raise CtlError(f"permission denied on {self.path}: you need to be root or in the daemon's admin "
                           "group", EX_NOPERM) from None
        except OSError as err:
            sock.close()
            raise CtlError(f"cannot connect to {self.path}: {err.strerror}", EX_UNAVAILABLE) from None
        with sock, sock.makefile("rb") as replies:
            try:
                sock.sendall(protocol.request(op, **args))
                for line in replies:
                    message = protocol.decode_reply(line)
                    if message["type"] == "error":
                        raise CtlError(message.get("message", "error"), int(message.get("exit_code", EX_FAILED)))
                    yield message
                    if message["type"] == "result":
                        return
            except (OSError, ValueError) as err:
                raise CtlError(f"lost the connection to maintd: {err}", EX_UNAVAILABLE) from None
        raise CtlError("maintd closed the connection without an answer", EX_UNAVAILABLE)

    def call(self, op: str, **args: Any) -> Any:
        for message in self.stream(op, **args):
            if message["type"] == "result":
                return message.get("data")
        raise CtlError("no result", EX_UNAVAILABLE)


def resolve_socket(options: argparse.Namespace) -> Path:
    """--socket, else control.socket of --config, else $MAINTD_SOCKET, else /run/maintd/maintd.sock."""
    if options.socket:
        return Path(options.socket)
    if options.config:
        from . import config
        from .errors import ConfigError
        try:
            return config.load(options.config).control.socket
        except ConfigError as err:
            raise CtlError(str(err), EX_CONFIG) from None
    if os.environ.get("MAINTD_SOCKET"):
        return Path(os.environ["MAINTD_SOCKET"])
    return DEFAULT_SOCKET


# -- output -------------------------------------------------------------------------------------------------
def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def follow(client: Client, op: str, options: argparse.Namespace, **args: Any) -> dict[str, Any]:
    """Run or watch: show events while they come, return the final run view."""
    run_id = None
    display = cli_render.ProgressDisplay(live=None if not options.json else False)
    try:
        with display:
            for message in client.stream(op, **args):
                if message["type"] == "event":
                    run_id = message.get("run_id", run_id)
                    if not options.json:
                        display.event(message)
                else:
                    return message["data"]
    except KeyboardInterrupt:
        hint = f"; follow it with: maintctl watch {run_id}" if run_id else ""
        raise CtlError(f"stopped following: the run goes on{hint}", 130) from None
    raise CtlError("no result", EX_UNAVAILABLE)


def finish_run(view: dict[str, Any], options: argparse.Namespace, *, flat: bool) -> int:
    if "outcome" not in view:  # --detach: the run was started, nothing more to say yet
        if options.json:
            emit_json(view)
        else:
            print(f"started {view.get('entry')} as run {view.get('run_id')}; follow it with: "
                  f"maintctl watch {view.get('run_id')}")
        return EX_OK
    if options.json:
        if flat:
            data = view.get("data") if isinstance(view.get("data"), dict) else {}
            emit_json({**data, "run_id": view["run_id"], "job": view["job"], "outcome": view["outcome"],
                       "summary": view["summary"], "duration_s": view["duration_s"],
                       "warnings": view.get("warnings", []), "error": view.get("error")})
        else:
            emit_json(view)
    else:
        print(cli_render.result_text(view))
    return run_exit_code(view)


def run_exit_code(view: dict[str, Any]) -> int:
    """0 for an ok outcome; for a run that failed with a classified error (unknown backup id: 64, damaged
    backup: 65, Redis or a service unavailable: 69), that error's code; else 1."""
    if view["outcome"] in OK_OUTCOMES:
        return EX_OK
    data = view.get("data") if isinstance(view.get("data"), dict) else {}
    code = data.get("exit_code")
    if view["outcome"] == "failed" and isinstance(code, int) and code in PASSED_THROUGH_EXIT_CODES:
        return code
    return EX_FAILED


def start_run(client: Client, options: argparse.Namespace, job: str, args: dict[str, Any], *,
              flat: bool) -> int:
    wait, detach = getattr(options, "wait", False), getattr(options, "detach", False)
    if detach:
        view = client.call("run", job=job, args=args, wait=wait, detach=True)
    else:
        view = follow(client, "run", options, job=job, args=args, wait=wait, detach=False)
    return finish_run(view, options, flat=flat)


# -- commands -----------------------------------------------------------------------------------------------
def cmd_status(client: Client, options: argparse.Namespace) -> int:
    status = client.call("status")
    emit_json(status) if options.json else print(cli_render.status_text(status))
    return EX_OK


def cmd_jobs(client: Client, options: argparse.Namespace) -> int:
    jobs = client.call("jobs")
    emit_json(jobs) if options.json else print(cli_render.jobs_text(jobs))
    return EX_OK


def cmd_history(client: Client, options: argparse.Namespace) -> int:
    runs = client.call("history", job=options.job, limit=options.n)
    emit_json(runs) if options.json else print(cli_render.history_text(runs))
    return EX_OK


def cmd_run(client: Client, options: argparse.Namespace) -> int:
    args: dict[str, Any] = {}
    for item in options.arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CtlError(f"--arg needs KEY=VALUE, got {item!r}", EX_USAGE)
        args[key] = value
    return start_run(client, options, options.job, args, flat=False)


def cmd_watch(client: Client, options: argparse.Namespace) -> int:
    return finish_run(follow(client, "watch", options, run_id=options.run_id), options, flat=False)


def cmd_cancel(client: Client, options: argparse.Namespace) -> int:
    reply = client.call("cancel", run_id=options.run_id)
    emit_json(reply) if options.json else print(f"asked run {options.run_id} ({reply.get('job')}) to stop")
    return EX_OK


def _pause_command(op: str) -> Callable[[Client, argparse.Namespace], int]:
    def command(client: Client, options: argparse.Namespace) -> int:
        reply = client.call(op, job=options.job)
        if options.json:
            emit_json(reply)
        else:
            paused = reply.get("paused") or []
            shown = "everything" if "*" in paused else (", ".join(paused) or "nothing")
            print(f"paused now: {shown}")
        return EX_OK
    return command


def cmd_reload(client: Client, options: argparse.Namespace) -> int:
    reply = client.call("reload", wait=options.wait)
    emit_json(reply) if options.json else print(reply.get("message", "reload requested"))
    return EX_OK


def cmd_backups(client: Client, options: argparse.Namespace) -> int:
    rows = client.call("backups")
    emit_json(rows) if options.json else print(cli_render.backups_text(rows))
    return EX_OK


def cmd_backup_show(client: Client, options: argparse.Namespace) -> int:
    detail = client.call("backup-show", id=options.id)
    emit_json(detail) if options.json else print(cli_render.mapping_text(detail))
    return EX_OK


def cmd_backup(client: Client, options: argparse.Namespace) -> int:
    return start_run(client, options, "backup", {"type": options.type}, flat=True)


def cmd_verify(client: Client, options: argparse.Namespace) -> int:
    if options.id and options.all:
        raise CtlError("verify: give a backup id or --all, not both", EX_USAGE)
    args: dict[str, Any] = {}
    if options.id:
        args["backup"] = options.id
    if options.all:
        args["all"] = True
    if options.sample is not None:
        args["sample"] = options.sample
    return start_run(client, options, "verify", args, flat=True)


def cmd_prune(client: Client, options: argparse.Namespace) -> int:
    return start_run(client, options, "prune", {"dry_run": True} if options.dry_run else {}, flat=True)


def cmd_restore(client: Client, options: argparse.Namespace) -> int:
    if options.id and options.at:
        raise CtlError("restore: give a backup id or --at TIME, not both", EX_USAGE)
    args: dict[str, Any] = {}
    if options.id:
        args["backup"] = options.id
    if options.at:
        args["at"] = options.at
    if options.component:
        args["components"] = list(options.component)
    if options.target:
        args["target"] = os.path.abspath(options.target)  # the daemon's working directory is not ours
    if options.delete:
        args["delete"] = True
    if options.dry_run:
        args["dry_run"] = True
    return start_run(client, options, "restore", args, flat=True)


def cmd_recover(client: Client, options: argparse.Namespace) -> int:
    args: dict[str, Any] = {"mode": options.mode}
    if options.backup:
        args["backup"] = options.backup
    if options.dry_run:
        args["dry_run"] = True
    return start_run(client, options, "recover", args, flat=True)


def cmd_drill(client: Client, options: argparse.Namespace) -> int:
    return start_run(client, options, "drill", {}, flat=True)


# -- the parser ---------------------------------------------------------------------------------------------
def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS,
                        help="control socket (default: $MAINTD_SOCKET or /run/maintd/maintd.sock)")
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="find the socket in this maintd config file")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print only JSON on stdout")

    parser = Parser(prog="maintctl", description="Control a running maintd over its control socket.",
                    epilog="exit codes: 0 ok, 1 job failed, 64 usage, 69 daemon unreachable, 75 busy, "
                           "77 denied, 78 config")
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="control socket (default: $MAINTD_SOCKET or /run/maintd/maintd.sock)")
    parser.add_argument("--config", metavar="PATH", default=None, help="find the socket in this maintd config file")
    parser.add_argument("--json", action="store_true", default=False, help="print only JSON on stdout")
    parser.add_argument("--version", action="version", version=f"maintctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(name: str, func: Callable[[Client, argparse.Namespace], int], help_text: str) -> Parser:
        cmd = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        cmd.set_defaults(func=func)
        return cmd

    def run_mode(cmd: Parser) -> None:
        mode = cmd.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="wait for conflicting runs instead of answering busy")
        mode.add_argument("--detach", action="store_true", help="print the run id and return at once")

    add("status", cmd_status, "daemon, schedules, next and last runs, running jobs, health")
    add("jobs", cmd_jobs, "the jobs this daemon knows")
    cmd = add("run", cmd_run, "run a job (or a calendar entry) now and follow it")
    cmd.add_argument("job", help="job name (health, backup...) or calendar entry (backup-full...)")
    cmd.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a job argument (repeatable)")
    run_mode(cmd)
    cmd = add("watch", cmd_watch, "follow a running run until it ends")
    cmd.add_argument("run_id")
    cmd = add("history", cmd_history, "past runs, newest first")
    cmd.add_argument("job", nargs="?", help="only this job")
    cmd.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    cmd = add("pause", _pause_command("pause"), "stop scheduled runs of a job (or of all) until resumed")
    cmd.add_argument("job", nargs="?", help="a job or calendar entry (default: everything)")
    cmd = add("resume", _pause_command("resume"), "resume scheduled runs paused with pause")
    cmd.add_argument("job", nargs="?", help="a job or calendar entry (default: every pause)")
    cmd = add("reload", cmd_reload, "re-read the configuration (the old one stays when the new one is invalid)")
    cmd.add_argument("--wait", action="store_true", help="return once the reload is done; fail when refused")
    cmd = add("cancel", cmd_cancel, "ask a running run to stop (recorded interrupted)")
    cmd.add_argument("run_id")
    cmd = add("backup", cmd_backup, "take a backup now")
    cmd.add_argument("type", choices=["full", "incremental", "differential"])
    run_mode(cmd)
    add("backups", cmd_backups, "list the committed backups")
    cmd = add("backup-show", cmd_backup_show, "one backup: manifest, chain, verify result")
    cmd.add_argument("id")
    cmd = add("verify", cmd_verify, "verify a backup (default: the newest), or all of them")
    cmd.add_argument("id", nargs="?")
    cmd.add_argument("--all", action="store_true", help="every backup")
    cmd.add_argument("--sample", type=float, metavar="PCT", help="check this percentage of members only")
    run_mode(cmd)
    cmd = add("prune", cmd_prune, "delete backups the retention policy no longer keeps")
    cmd.add_argument("--dry-run", action="store_true", help="only say what would go")
    run_mode(cmd)
    cmd = add("restore", cmd_restore, "restore components from a backup or a point in time")
    cmd.add_argument("id", nargs="?", help="a backup id, or 'latest' (default): the newest good backup whose "
                     "chain passes the integrity check (an older one, with a warning, when it is damaged)")
    cmd.add_argument("--at", metavar="TIME", help="the state at this time (ISO 8601)")
    cmd.add_argument("--component", action="append", metavar="NAME", help="only this component (repeatable)")
    cmd.add_argument("--target", metavar="DIR", help="restore under DIR instead of the live paths")
    cmd.add_argument("--dry-run", action="store_true", help="only say what would change")
    cmd.add_argument("--delete", action="store_true", help="also delete files the backup does not have")
    run_mode(cmd)
    cmd = add("recover", cmd_recover, "disaster recovery: service, configuration, data or full")
    cmd.add_argument("mode", choices=["service", "configuration", "data", "full"])
    cmd.add_argument("--backup", metavar="ID", help="recover from this backup (default: as restore and drill, the "
                     "newest good backup whose chain passes the integrity check, verified or not)")
    cmd.add_argument("--dry-run", action="store_true", help="only show the plan")
    run_mode(cmd)
    cmd = add("drill", cmd_drill, "restore the backup recover would use (the newest good one) into a scratch dir "
              "and check it")
    run_mode(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        client = Client(resolve_socket(options))
        return options.func(client, options)
    except CtlError as err:
        if err.exit_code == EX_TEMPFAIL and getattr(options, "wait", None) is False and "lock" in err.message:
            err.message += " (--wait queues the run behind it)"
        if options.json:
            emit_json({"error": err.message, "exit_code": err.exit_code})
        print(f"maintctl: {err.message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `maintctl history | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_FAILED


if __name__ == "__main__":
    sys.exit(main())
