"""`maintd`: run the daemon, check a config, run the demo, restore offline.

    maintd run [--config PATH] [--log-format console|json|journal]
    maintd check-config [--config PATH]
    maintd demo --root DIR
    maintd restore ...            (offline: no daemon needed; see `maintd restore --help`)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import EX_UNAVAILABLE, EX_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="maintd", description="The maintenance daemon: backups, restore, health checks, cleanup.",
                    epilog="exit codes: 0 ok, 64 usage, 69 unavailable (e.g. already running), 78 config")
    parser.add_argument("--version", action="version", version=f"maintd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    cmd = sub.add_parser("run", help="run the daemon in the foreground (what the systemd unit starts)",
                         description="Run the daemon in the foreground until SIGTERM/SIGINT.")
    cmd.add_argument("--config", type=Path, help="config file (default: $MAINTD_CONFIG or /etc/maintd/maintd.toml)")
    cmd.add_argument("--log-format", choices=["console", "json", "journal"],
                     help="override logging.format")

    cmd = sub.add_parser("check-config", help="validate a config file; list every problem",
                         description="Validate the config: every problem as `file: section.key: message` (exit "
                                     "78), else a summary of components and schedules (exit 0).")
    cmd.add_argument("--config", type=Path, help="config file (default: $MAINTD_CONFIG or /etc/maintd/maintd.toml)")

    cmd = sub.add_parser("demo", help="write a self-contained demo set-up under DIR (if absent) and run it",
                         description="Write a demo set-up under DIR (sample application, config, data, a private "
                                     "redis-server when installed) if absent, start its services, then run the "
                                     "daemon in the foreground. Ctrl-C stops it all. No root needed.")
    cmd.add_argument("--root", type=Path, required=True, help="directory of the demo set-up")
    cmd.add_argument("--log-format", choices=["console", "json", "journal"], help="override logging.format")

    sub.add_parser("restore", help="restore offline, without a running daemon (see `maintd restore --help`)",
                   add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["restore"]:
        return restore(argv[1:])
    options = build_parser().parse_args(argv)
    if options.command == "run":
        from . import daemon
        return daemon.run(options.config, options.log_format)
    if options.command == "check-config":
        from .checkconfig import main as check_config
        return check_config(options.config)
    if options.command == "demo":
        from .demo.run import run_demo
        return run_demo(options.root, log_format=options.log_format)
    raise AssertionError(options.command)


def restore(argv: list[str]) -> int:
    if importlib.util.find_spec("maintd.offline") is None:
        print("maintd restore: offline restore is not available in this build; with a running daemon use "
              "`maintctl restore`", file=sys.stderr)
        return EX_UNAVAILABLE
    return int(importlib.import_module("maintd.offline").main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
