"""`maintd restore ...`: restore without a daemon, Redis or network: only the backup dir, the key and a config
(or flags naming them). The options are those of `maintctl restore`, plus where to find things on a bare host.

It takes the same kernel locks a running daemon would (the backup root's writer lock, and the daemon's `target`
lock when a state dir is available), so it never races a backup, a prune or another restore.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from . import config as config_module
from . import logs
from .backup.catalog import Catalog
from .backup.restore_plan import parse_at, stamp
from .backup.restore_run import RestoreEnv, RestoreRequest, restore
from .config import Settings
from .edges.gpg import Gpg
from .errors import (EX_FAILED, EX_OK, EX_USAGE, BusyError, ConfigError, GpgError, MaintdError, UnavailableError,
                     UsageError)
from .runtime import locks

EPILOG = """\
Without a config, name things with flags:
  maintd restore latest --backup-root /mnt/usb/maintd --passphrase-file /root/backup.passphrase \\
      --component data=/var/lib/cctelegram
A component without =PATH goes back where it was backed up from (the root recorded in its index).
Exit codes: 0 ok, 1 failed, 64 usage, 65 damaged backup, 69 unavailable, 75 busy (a daemon holds the lock),
78 config."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maintd restore", description="Restore from a backup without a running "
                                     "daemon.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", nargs="?", help="a backup id, or 'latest' (default: the newest good backup whose "
                        "chain passes the integrity check; an older one, with a warning, when it is damaged)")
    parser.add_argument("--at", metavar="TIME", help="the state at this time (ISO 8601 with a zone)")
    parser.add_argument("--component", action="append", default=[], metavar="NAME[=PATH]",
                        help="only this component (repeatable); =PATH restores it in place at PATH; 'redis' writes "
                             "the Redis snapshot file (needs --target)")
    parser.add_argument("--target", metavar="DIR", help="restore under DIR instead of the live paths")
    parser.add_argument("--dry-run", action="store_true", help="only say what would change")
    parser.add_argument("--delete", action="store_true", help="also delete files the backup does not have (with "
                        "--target)")
    parser.add_argument("--config", metavar="PATH", type=Path, help="maintd config (default: $MAINTD_CONFIG or "
                        "/etc/maintd/maintd.toml when it exists)")
    parser.add_argument("--backup-root", metavar="DIR", type=Path, help="the backup directory (overrides the config)")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, help="the backup passphrase (overrides the "
                        "config)")
    parser.add_argument("--state-dir", metavar="DIR", type=Path, help="maintd's state dir: GNUPGHOME and locks "
                        "(overrides the config)")
    parser.add_argument("--list", action="store_true", help="list the backups and exit")
    parser.add_argument("--json", action="store_true", help="print only JSON on stdout")
    return parser


class ConsoleReporter:
    """Progress on stderr only when it is a terminal (one rewritten line); warnings always."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self.warnings: list[str] = []

    def progress(self, **fields: Any) -> None:
        if self.quiet or not self.tty:  # a log or a pipe gets the outcome, not a progress meter
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        text = str(fields.get("phase", ""))
        if fields.get("total_files"):
            text += f": {fields.get('done_files', 0)}/{fields['total_files']} files"
        if fields.get("total_bytes"):
            text += f" {100 * fields.get('done_bytes', 0) // max(1, fields['total_bytes'])}%"
        self.stream.write("\r\x1b[K" + text[:120])
        self.stream.flush()

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append(message)
        self.end_line()
        self.stream.write(f"warning: {message}\n")

    def check_cancelled(self) -> None:
        pass  # Ctrl-C raises KeyboardInterrupt where it lands; nothing is swapped in before the end

    def end_line(self) -> None:
        if self.tty and self._last:
            self.stream.write("\r\x1b[K")


def load_settings(options: argparse.Namespace) -> tuple[Settings, bool]:
    """(settings, whether a config file was read). Flags override the file; without a file the defaults apply
    (and component paths come from the backup's own record)."""
    path = options.config or config_module.default_path()
    overrides: dict[str, Any] = {}
    from_file = options.config is not None or path.exists()
    if options.backup_root:
        overrides.setdefault("paths", {})["backup_root"] = options.backup_root.absolute()
    if options.state_dir:
        overrides.setdefault("paths", {})["state_dir"] = options.state_dir.absolute()
    if options.passphrase_file:
        overrides["backup"] = {"passphrase_file": options.passphrase_file.absolute()}
    if from_file:
        return config_module.load(path, **overrides), True  # init values deep-merge over the file
    if not options.backup_root:
        raise UsageError(f"no config at {path}: name the backup dir with --backup-root (and the key with "
                         "--passphrase-file)")
    try:
        return Settings(**overrides), False
    except ValidationError as err:
        raise ConfigError("invalid options", [f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                              for e in err.errors()]) from err


def parse_components(values: list[str]) -> tuple[tuple[str, ...], dict[str, Path]]:
    names, places = [], {}
    for value in values:
        name, _, place = value.partition("=")
        name = name.strip()
        if not name:
            raise UsageError(f"--component {value!r}: no name")
        names.append(name)
        if place:
            path = Path(place).absolute()
            places[name] = path
    return tuple(dict.fromkeys(names)), places


@contextlib.contextmanager
def held_locks(settings: Settings, catalog: Catalog) -> Iterator[None]:
    """The backup root's writer lock, and the daemon's `target` lock when its state dir is usable."""
    with catalog.writer_lock():
        lock = None
        locks_dir = settings.paths.state_dir / "locks"
        try:
            locks_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            usable = True
        except OSError:
            usable = False
        if usable:
            lock = locks.try_acquire(locks_dir, "target", {"job": "restore", "offline": True})
            if lock is None:
                holder = locks.describe_holder(locks.read_holder(locks_dir, "target"))
                raise BusyError(f"a running maintd holds the target lock ({holder}): use `maintctl restore`, "
                                "or stop the daemon")
        try:
            yield
        finally:
            if lock is not None:
                lock.release()


@contextlib.contextmanager
def key_for(settings: Settings) -> Iterator[Gpg]:
    """The key, read into memory now. GNUPGHOME is state_dir/gnupg, or a temporary one when the state dir cannot
    be created (symmetric backups need no keyring)."""
    home = settings.paths.state_dir / "gnupg"
    with contextlib.ExitStack() as stack:
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maintd-gnupg-")))
        gpg = Gpg(home, passphrase_file=settings.backup.passphrase_file, recipients=tuple(settings.backup.recipients))
        if not gpg.self_test():
            raise GpgError("this host holds no secret key for backup.recipients: import it into "
                           f"{home} to decrypt")
        yield gpg


def list_backups(catalog: Catalog, as_json: bool) -> int:
    rows = [{"id": m.id, "type": m.type.value, "created": m.created.isoformat(), "outcome": m.outcome,
             "size": m.size, "files": m.files, "components": sorted(m.components), "redis": bool(m.redis)}
            for m in catalog.list()]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:42} {row['outcome']:9} {row['size']:>12} bytes  {','.join(row['components'])}"
                  f"{',redis' if row['redis'] else ''}")
        if not rows:
            print("no committed backups", file=sys.stderr)
    return EX_OK


def run(options: argparse.Namespace) -> int:
    settings, from_file = load_settings(options)
    if not settings.paths.backup_root.is_dir():
        flag = "--backup-root" if options.backup_root else "paths.backup_root"
        raise UnavailableError(f"the backup directory {settings.paths.backup_root} ({flag}) does not exist"
                               if not settings.paths.backup_root.exists() else
                               f"{settings.paths.backup_root} ({flag}) is not a directory")
    catalog = Catalog.from_settings(settings)
    if options.list:
        return list_backups(catalog, options.json)
    if options.id and options.at:
        raise UsageError("give a backup id or --at, not both")
    if options.delete and not options.target:
        raise UsageError("--delete needs --target (a restore in place swaps the whole tree anyway)")
    names, places = parse_components(options.component)
    request = RestoreRequest(backup=None if options.id in (None, "latest") else options.id,
                             at=parse_at(options.at) if options.at else None, components=names,
                             target=Path(options.target).absolute() if options.target else None,
                             delete=options.delete, dry_run=options.dry_run)
    live = {c.name: c.path for c in settings.target.components} if from_file else {}
    live.update(places)
    reporter = ConsoleReporter(quiet=options.json)
    with held_locks(settings, catalog), key_for(settings) as gpg:
        now = datetime.now(timezone.utc)
        env = RestoreEnv(catalog=catalog, gpg=gpg, reporter=reporter, stamp=stamp(now), live=live,
                         allow_symlinks_outside=settings.recovery.allow_symlinks_outside, now=now,
                         min_free_bytes=int(settings.recovery.min_free_bytes),
                         keep_previous=settings.recovery.keep_previous_trees,
                         excludes={c.name: tuple(c.exclude) for c in settings.target.components} if from_file else {})
        report = restore(env, request)
    reporter.end_line()
    if options.json:
        print(json.dumps({**report.as_data(), "warnings": reporter.warnings}, indent=2, default=str))
    else:
        print("\n".join(report.lines()))
    return EX_OK


def quiet_logging() -> None:
    """Library loggers go through maintd.logs on stderr at warning level (stdout carries only the report or the
    JSON). python-gnupg's own warnings ("potential problem: ... BAD_PASSPHRASE", "gpg returned a non-zero error
    code") only repeat what our gpg edge turns into one error: they are left out."""
    logs.configure("console", "warning")
    logging.getLogger("gnupg").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EX_USAGE
    quiet_logging()
    try:
        return run(options)
    except MaintdError as err:
        print(f"maintd restore: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # not one of ours: still one line, never a traceback
        where = f" ({os.fsdecode(err.filename)})" if err.filename else ""
        print(f"maintd restore: {err.strerror or err}{where}", file=sys.stderr)
        return EX_FAILED
    except KeyboardInterrupt:
        print("maintd restore: interrupted (a tree being built was removed; trees already swapped in stay)",
              file=sys.stderr)
        return 130
