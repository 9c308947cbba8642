"""A redis-server registered as a unit of the `command` service manager (maintd.demo.svcctl), so that recovery
stops and starts it as it would a systemd unit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import redis

from .waiting import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


class RedisUnit:
    def __init__(self, root: Path, *, unit: str = "redis", appendonly: bool = False) -> None:
        self.root = root
        self.unit = unit
        self.port = free_port()
        self.dir = root / "redis-data"
        self.units_file = root / "units.json"
        self.dir.mkdir(parents=True, exist_ok=True)
        units = json.loads(self.units_file.read_text()) if self.units_file.exists() else {}
        units[unit] = {"argv": [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                                "--bind", "127.0.0.1", "--dir", str(self.dir), "--dbfilename", "dump.rdb",
                                "--save", "", "--appendonly", "yes" if appendonly else "no", "--daemonize", "no",
                                "--logfile", str(root / f"{unit}.log")],
                       "settle": 0.1}
        self.units_file.write_text(json.dumps(units))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def svcctl(self, action: str) -> int:
        argv = [sys.executable, "-m", "maintd.demo.svcctl", "--units", str(self.units_file), action, self.unit]
        return subprocess.run(argv, cwd=REPO, timeout=60).returncode

    def start(self) -> "RedisUnit":
        assert self.svcctl("start") == 0
        wait_for(lambda: self.client().ping(), timeout=10, message=f"{self.unit} answers")
        return self

    def stop(self) -> None:
        self.svcctl("stop")

    def active(self) -> bool:
        return self.svcctl("is-active") == 0
