"""The service managers: systemctl argv as values, systemd against a fake systemctl, command backend for real."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

from maintd.config import Settings
from maintd.edges import services
from maintd.errors import Cancelled, CommandError, UnavailableError, UsageError
from tests.conftest import StandInService
from tests.support.waiting import wait_for

FAKE_SYSTEMCTL = """#!{python}
# A stand-in for systemctl: records its argv, keeps unit states in a JSON file, answers is-active like systemd.
import json, sys, time
from pathlib import Path
here = Path(__file__).parent
with (here / "calls.jsonl").open("a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
states_file = here / "states.json"
states = json.loads(states_file.read_text()) if states_file.exists() else {{}}
args = [a for a in sys.argv[1:] if not a.startswith("--")]
action, unit = args[0], args[1]
if unit == "slow.service":
    time.sleep(30)
if unit == "broken.service" and action != "is-active":
    print("Job for broken.service failed because the control process exited with error code.", file=sys.stderr)
    sys.exit(1)
if action == "is-active":
    if unit not in states:
        sys.exit(4)
    sys.exit(0 if states[unit] == "active" else 3)
states[unit] = "inactive" if action == "stop" else "active"
states_file.write_text(json.dumps(states))
"""


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def calls(bindir: Path) -> list[list[str]]:
    return [json.loads(line) for line in (bindir / "calls.jsonl").read_text().splitlines()]


def test_systemctl_argv_is_built_as_values() -> None:
    assert services.systemctl_argv("restart", "cctelegram-bridge") == (
        "systemctl", "--no-ask-password", "restart", "cctelegram-bridge")
    assert services.systemctl_argv("is-active", "redis-server.service") == (
        "systemctl", "is-active", "--quiet", "redis-server.service")
    assert services.systemctl_argv("start", "getty@tty1.service")[-1] == "getty@tty1.service"


@pytest.mark.parametrize("unit", ["--force", "-x", "", "a b", "../etc", "unit;rm"])
def test_unit_names_that_could_read_as_options_or_paths_are_refused(unit: str) -> None:
    with pytest.raises(UsageError, match="not a valid unit name"):
        services.systemctl_argv("start", unit)
    with pytest.raises(UsageError):
        services.command_argv(("svcctl", "start", "{unit}"), unit)


def test_unknown_action_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown service action"):
        services.systemctl_argv("kill", "app")


def test_command_argv_replaces_every_unit_placeholder() -> None:
    template = ("svcctl", "--units", "/x/{unit}.json", "start", "{unit}")
    assert services.command_argv(template, "app") == ("svcctl", "--units", "/x/app.json", "start", "app")


def test_systemd_backend_runs_systemctl_and_reads_is_active_codes(
        fake_systemctl: Path, settings: Callable[..., Settings]) -> None:
    manager = services.build(settings({"services": {"manager": "systemd", "systemctl_timeout": 5}}))
    assert isinstance(manager, services.SystemdManager)
    manager.start("app.service")
    assert manager.is_active("app.service") is True
    manager.stop("app.service")
    assert manager.is_active("app.service") is False
    manager.restart("app.service")
    assert manager.is_active("app.service") is True
    with pytest.raises(UnavailableError, match="no unit"):
        manager.is_active("ghost.service")
    assert calls(fake_systemctl)[:3] == [["--no-ask-password", "start", "app.service"],
                                         ["is-active", "--quiet", "app.service"],
                                         ["--no-ask-password", "stop", "app.service"]]


def test_systemd_failure_keeps_stderr_and_timeout_is_enforced(fake_systemctl: Path) -> None:
    with pytest.raises(CommandError, match="exited with 1") as failed:
        services.SystemdManager(timeout=30).restart("broken.service")
    assert "control process exited" in (failed.value.detail or "")
    with pytest.raises(CommandError, match="timed out"):  # the fake sleeps far longer than this timeout
        services.SystemdManager(timeout=0.5).start("slow.service")


def test_systemd_call_is_cancelled_by_the_cancel_event(fake_systemctl: Path) -> None:
    cancel = threading.Event()
    manager = services.SystemdManager(timeout=30, cancel=cancel)
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Cancelled):
        manager.start("slow.service")


def test_missing_systemctl_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UnavailableError, match="program not found: systemctl"):
        services.SystemdManager(timeout=5).is_active("app.service")


def test_command_backend_drives_the_stand_in_service(tmp_path: Path, settings: Callable[..., Settings]) -> None:
    service = StandInService(tmp_path)  # registered as unit "app" in the units file the base config points at
    manager = services.build(settings())
    assert isinstance(manager, services.CommandManager)
    try:
        assert manager.is_active("app") is False
        manager.start("app")
        assert manager.is_active("app") is True
        wait_for(service.healthy, timeout=10, message="app healthy")
        first = service.pid()
        manager.restart("app")
        second = service.pid()
        assert second is not None and second != first
        wait_for(service.healthy, timeout=10, message="app healthy after restart")
        manager.stop("app")
        assert manager.is_active("app") is False and service.pid() is None
    finally:
        service.stop()


def test_command_backend_failure_is_a_command_error(tmp_path: Path, settings: Callable[..., Settings]) -> None:
    manager = services.build(settings())
    with pytest.raises(CommandError, match="exited with 1") as failed:
        manager.start("not-registered")
    assert "unknown unit" in (failed.value.detail or "")
