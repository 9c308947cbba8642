"""`maintd check-config` and the daemon's refusal of a bad config, as an operator sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from maintd import __version__
from tests.e2e.daemon_harness import DaemonFactory, child_env


def maintd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maintd", *args], capture_output=True, text=True, timeout=60,
                          env=child_env(), stdin=subprocess.DEVNULL)


def test_every_problem_is_listed_as_file_key_message_and_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('timezone = "Mars/Olympus"\n[paths]\nbogus = 1\n'
                    '[jobs.health]\nschedule = "61 * * * *"\n'
                    '[jobs.nightly]\njob = "no-such-job"\nschedule = "0 3 * * *"\n')
    groupless = tmp_path / "groupless.toml"
    groupless.write_text('[control]\nadmin_group = "no-such-group-here"\n[backup]\npassphrase_file = "/x"\n')
    result = maintd("check-config", "--config", str(path))
    assert result.returncode == 78
    problems = result.stderr.strip().splitlines()
    assert any(p.startswith(f"{path}: timezone:") for p in problems)
    assert f"{path}: paths.bogus: Extra inputs are not permitted" in problems
    assert any(p.startswith(f"{path}: jobs.health.schedule: invalid cron expression '61 * * * *'") for p in problems)
    assert any(p.startswith(f"{path}: jobs.nightly.job: no job named 'no-such-job'") for p in problems)
    assert "Traceback" not in result.stderr and result.stdout == ""
    missing_group = maintd("check-config", "--config", str(groupless))
    assert missing_group.returncode == 78
    assert f"{groupless}: control.admin_group: group 'no-such-group-here' does not exist" in missing_group.stderr


def test_a_valid_config_prints_components_and_next_runs(daemons: DaemonFactory) -> None:
    path = daemons.config({"jobs": {"health": {"schedule": "30 2 * * 0"}}})
    result = maintd("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: ok" in result.stdout
    assert "application" in result.stdout and "data" in result.stdout
    health = next(line for line in result.stdout.splitlines() if line.startswith("health "))
    assert "30 2 * * 0" in health and "02:30 UTC" in health  # 0 = Sunday: a date, not "on demand"


def test_the_daemon_refuses_a_bad_config_with_78_and_every_problem(daemons: DaemonFactory) -> None:
    path = daemons.config()
    path.write_text(path.read_text() + '\n[control_typo]\nx = 1\n')
    daemon = daemons.start(write=False, wait=False)
    assert daemon.wait_exit(20) == 78
    assert "control_typo" in daemon.output() and "Traceback" not in daemon.output()


def test_version_missing_config_and_usage(tmp_path: Path) -> None:
    assert maintd("--version").stdout.strip() == f"maintd {__version__}"
    missing = maintd("check-config", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 78 and "not found" in missing.stderr
    assert maintd("frobnicate").returncode == 64
    assert maintd("restore", "--help").returncode == 0  # the offline restore is wired in


def test_check_config_reports_unreadable_secrets_and_schedules_that_never_fire(tmp_path) -> None:
    from tests.support.configs import write_config
    path = write_config(tmp_path, {"backup": {"passphrase_file": str(tmp_path / "nope.passphrase")},
                                   "jobs": {"health": {"schedule": "0 0 31 2 *"}}})
    result = subprocess.run([sys.executable, "-m", "maintd", "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert f"{path}: backup.passphrase_file: cannot read {tmp_path / 'nope.passphrase'}" in result.stderr
    assert f"{path}: jobs.health.schedule: '0 0 31 2 *' never fires" in result.stderr


def test_an_unreadable_passphrase_file_is_listed_beside_other_problems(tmp_path) -> None:
    from tests.support.configs import write_config
    path = write_config(tmp_path, {"backup": {"passphrase_file": str(tmp_path / "nope.passphrase")},
                                   "logging": {"level": "loud"}})
    result = subprocess.run([sys.executable, "-m", "maintd", "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert f"{path}: logging.level:" in result.stderr
    assert f"{path}: backup.passphrase_file: cannot read {tmp_path / 'nope.passphrase'}" in result.stderr
