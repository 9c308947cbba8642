"""Fixtures for real parts: redis-server, gpg passphrase, the stand-in HTTP service, a local config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from maintd import config as config_module
from maintd.config import Settings
from tests.support.configs import write_config
from tests.support.gpg_home import make_passphrase_file
from tests.support.redis_server import RedisServer
from tests.support.waiting import free_port, wait_for


def pytest_sessionstart(session: pytest.Session) -> None:
    # No skip hides a missing dependency: the suite needs these and says so.
    missing = [p for p in ("redis-server", "gpg", "zstd") if shutil.which(p) is None]
    if missing:
        raise pytest.UsageError(f"missing programs the tests need: {', '.join(missing)} "
                                "(Debian: apt-get install redis-server gnupg zstd)")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(dir=tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    return make_passphrase_file(tmp_path / "secrets")


@pytest.fixture
def config_path(tmp_path: Path, passphrase_file: Path) -> Callable[..., Path]:
    """Factory: write a self-contained config under tmp_path (deep-merged with `extra`), return its path."""

    def make(extra: dict[str, Any] | None = None) -> Path:
        return write_config(tmp_path, extra)

    return make


@pytest.fixture
def settings(config_path: Callable[..., Path]) -> Callable[..., Settings]:
    """Factory: load Settings from a self-contained config."""

    def make(extra: dict[str, Any] | None = None) -> Settings:
        return config_module.load(config_path(extra))

    return make


class StandInService:
    """The stand-in HTTP app registered as a unit for the `command` service manager (maintd.demo.svcctl)."""

    def __init__(self, root: Path, unit: str = "app") -> None:
        self.root = root
        self.unit = unit
        self.port = free_port()
        self.version_file = root / "app" / "VERSION"
        self.fail_flag = root / f"{unit}.fail"
        self.notify_log = root / f"{unit}.notify.jsonl"
        self.units_file = root / "units.json"
        units = json.loads(self.units_file.read_text()) if self.units_file.exists() else {}
        units[unit] = {"argv": [sys.executable, "-m", "maintd.demo.service", "--port", str(self.port),
                                "--version-file", str(self.version_file), "--fail-flag", str(self.fail_flag),
                                "--notify-log", str(self.notify_log)],
                       "cwd": str(Path(__file__).resolve().parent.parent)}
        root.mkdir(parents=True, exist_ok=True)
        self.units_file.write_text(json.dumps(units))
        self.version_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.version_file.exists():
            self.version_file.write_text("1.2.3\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def _svcctl(self, action: str) -> int:
        # As a child process, as maintd runs it: in-process, svcctl's Popen and log file would outlive the call
        # and fail the test with a ResourceWarning.
        argv = [sys.executable, "-m", "maintd.demo.svcctl", "--units", str(self.units_file), action, self.unit]
        return subprocess.run(argv, cwd=Path(__file__).resolve().parent.parent, timeout=60).returncode

    def start(self) -> "StandInService":
        assert self._svcctl("start") == 0
        wait_for(self.healthy, timeout=10, message=f"{self.unit} healthy")
        return self

    def stop(self) -> None:
        self._svcctl("stop")

    def pid(self) -> int | None:
        from maintd.demo import svcctl
        return svcctl.Units(self.units_file).pid(self.unit)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandInService]:
    """The stand-in service, started, registered as unit `app` in tmp_path/units.json."""
    service = StandInService(tmp_path).start()
    yield service
    service.stop()
