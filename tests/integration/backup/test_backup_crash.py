"""kill -9 during a backup, at several phases: nothing half-written is ever listed, and the next run succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from maintd.backup.catalog import CRASH_ENV
from tests.integration.backup.conftest import BackupEnv, run_job

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import sys
from maintd import config
from maintd.state import State
from maintd.jobs.backup import run_backup
settings = config.load(sys.argv[1])
run_backup(settings, State.open(settings.paths.state_dir), sys.argv[2])
"""


def _backup_in_child(config: Path, kind: str, crash_at: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, "-c", SCRIPT, str(config), kind], env=env, capture_output=True,
                          timeout=120, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["after-redis", "in-archive", "before-manifest", "before-rename"])
def test_a_backup_killed_at_any_phase_leaves_nothing_listed(backup_env, tmp_path: Path, phase: str) -> None:
    env: BackupEnv = backup_env()
    for number in range(80):
        (env.data / f"file{number:03d}.txt").write_text(f"content {number}\n" * 20)
    config = tmp_path / "maintd.toml"
    env.backup("full")
    committed = [m.id for m in env.catalog.list()]
    assert len(committed) == 1

    (env.data / "file000.txt").write_text("changed")
    killed = _backup_in_child(config, "full", phase)
    assert killed.returncode == -signal.SIGKILL
    assert [m.id for m in env.catalog.list()] == committed
    leftovers = list((env.catalog.root / ".incomplete").iterdir())
    assert len(leftovers) == 1

    result = env.backup("incremental")
    assert result.data["parent"] == committed[0]
    assert not any((env.catalog.root / ".incomplete").iterdir())
    assert [m.id for m in env.catalog.list()] == [*committed, result.data["id"]]
    assert run_job(env, "verify", {"all": True}).outcome is None
