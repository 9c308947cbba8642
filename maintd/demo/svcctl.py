"""A minimal service manager for hosts without systemd: the demo's and the tests' `command` backend.

Units are defined in a JSON file (``{"unit": {"argv": [...], "cwd": "..."}}``); each runs detached with a pid
file and a log file in the state dir. Usage (what maintd's `services.command` templates call):

    python -m maintd.demo.svcctl --units units.json start|stop|restart|is-active UNIT

Exit codes: 0 ok / active, 3 inactive (as systemctl is-active), 1 failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in (b"Z", b"X")


class Units:
    def __init__(self, units_file: Path) -> None:
        self.units = json.loads(units_file.read_text())
        self.run_dir = units_file.parent / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _pidfile(self, unit: str) -> Path:
        return self.run_dir / f"{unit}.pid"

    def pid(self, unit: str) -> int | None:
        try:
            pid = int(self._pidfile(unit).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self, unit: str) -> int:
        if unit not in self.units:
            print(f"unknown unit {unit}", file=sys.stderr)
            return 1
        if self.pid(unit):
            return 0
        spec = self.units[unit]
        log = open(self.run_dir / f"{unit}.log", "ab")
        proc = subprocess.Popen(spec["argv"], cwd=spec.get("cwd"), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
        self._pidfile(unit).write_text(str(proc.pid))
        # Give a crashing program a moment to show it; readiness itself is the health check's business.
        deadline = time.monotonic() + float(spec.get("settle", 0.3))
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                print(f"{unit} exited at start with {proc.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.05)
        return 0

    def stop(self, unit: str, timeout: float = 10.0) -> int:
        pid = self.pid(unit)
        if pid is None:
            return 0
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.05)
        self._pidfile(unit).unlink(missing_ok=True)
        return 0

    def is_active(self, unit: str) -> int:
        return 0 if self.pid(unit) else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start/stop/restart/is-active for the demo's units")
    parser.add_argument("--units", type=Path, required=True)
    parser.add_argument("action", choices=["start", "stop", "restart", "is-active"])
    parser.add_argument("unit")
    args = parser.parse_args(argv)
    units = Units(args.units)
    if args.action == "start":
        return units.start(args.unit)
    if args.action == "stop":
        return units.stop(args.unit)
    if args.action == "restart":
        return units.stop(args.unit) or units.start(args.unit)
    return units.is_active(args.unit)


if __name__ == "__main__":
    sys.exit(main())
