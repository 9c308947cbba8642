"""Bounded memory: a backup's peak RSS stays far below the data it moves (measured in a child process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.backup.conftest import BackupEnv

ROOT = Path(__file__).resolve().parents[3]
# Peak RSS as VmHWM of the child's own memory map: ru_maxrss would also count the parent's RSS at the time of
# the (v)fork that started the child, i.e. the pytest process's size.
SCRIPT = """
import json, sys
from maintd import config
from maintd.state import State
from maintd.jobs.backup import run_backup
settings = config.load(sys.argv[1])
result = run_backup(settings, State.open(settings.paths.state_dir), sys.argv[2])
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps({"rss_kib": peak, "bytes": result.data["bytes"],
                  "files": result.data["files"]}))
"""
LIMIT_MIB = 200


@pytest.mark.slow
def test_peak_memory_stays_bounded_for_large_files_and_many_files(backup_env, tmp_path: Path) -> None:
    env: BackupEnv = backup_env()
    chunk = os.urandom(1 << 20)
    with (env.data / "large.bin").open("wb") as handle:
        for _ in range(300):  # 300 MiB: more than the limit, so buffering it would show
            handle.write(chunk)
    for number in range(6000):
        directory = env.data / f"d{number % 50:02d}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{number}").write_bytes(chunk[number:number + 700])
    child = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "maintd.toml"), "full"],
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=300, cwd=ROOT)
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    figures = json.loads(child.stdout.decode().strip().splitlines()[-1])
    assert figures["files"] == 6001 and figures["bytes"] > 300 << 20
    print(f"peak RSS {figures['rss_kib'] // 1024} MiB")
    assert figures["rss_kib"] < LIMIT_MIB * 1024, f"peak RSS {figures['rss_kib'] // 1024} MiB"
