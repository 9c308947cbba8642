"""maintd's side of the benchmark: a self-contained Settings (one component: the dataset; no Redis, no prune,
no tiers) and each measurement in a child process (maintd_child.py) whose memory is sampled from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from measure import CommandFailed, CpuMeter, PeakRss
from pipelines import Keys

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "maintd_child.py"


class Unavailable(RuntimeError):
    """The maintd operation does not exist yet."""


def settings_for(work: Path, dataset: Path, keys: Keys) -> dict[str, Any]:
    """Keyword arguments for maintd.config.Settings: every path under `work`, the dataset as the only component,
    Redis, prune and tiers off (the benchmark measures the archive), defaults for compression (zstd -3, one
    thread per CPU) and encryption (symmetric AES256 with the passphrase file)."""
    return {
        "timezone": "UTC",
        "paths": {"state_dir": str(work / "state"), "backup_root": str(work / "backups"),
                  "reports_dir": str(work / "reports"), "runtime_dir": str(work / "run")},
        "target": {"name": "bench", "version_file": None,
                   "components": [{"name": "data", "path": str(dataset)}],
                   "application_component": "data", "config_component": "data", "data_component": "data"},
        "backup": {"passphrase_file": str(keys.passphrase_file), "redis": False, "min_free_bytes": 0,
                   "prune_after_backup": False},
        "redis": {"unit": None},
    }


class Maintd:
    """One backup store and state dir (one repetition of the sequence)."""

    def __init__(self, work: Path, dataset: Path, keys: Keys, *, python: str = sys.executable,
                 timeout: float = 3600.0, src: Path = REPO) -> None:
        self.work = work
        self.src = src  # the directory holding the maintd package to measure
        work.mkdir(parents=True, exist_ok=True)
        self.settings_path = work / "settings.json"
        self.settings_path.write_text(json.dumps(settings_for(work, dataset, keys), indent=1))
        self.python = python
        self.timeout = timeout
        self.calls = 0

    def call(self, op: str, *args: str) -> dict[str, Any]:
        """Runs one operation in a child; returns the child's report plus wall_s (process start to exit),
        tree_peak_kb (peak of the summed RSS of the child and its helpers, sampled) and helpers_hwm_kb (the
        largest helper's own peak: gpg)."""
        self.calls += 1
        out = self.work / f"call-{self.calls:03d}-{op}.json"
        env = {**os.environ, "PYTHONPATH": str(self.src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        started = time.perf_counter()
        proc = subprocess.Popen([self.python, str(CHILD), str(self.settings_path), str(out), op, *args],
                                cwd=self.src, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        killer = threading.Timer(self.timeout, proc.kill)
        killer.start()
        try:
            stderr_chunks: list[bytes] = []
            reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))  # type: ignore
            reader.start()
            with PeakRss(proc.pid) as peak:
                CpuMeter.wait(proc)
            reader.join()
        finally:
            killer.cancel()
            if proc.stderr:
                proc.stderr.close()
        wall = time.perf_counter() - started
        stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
        if proc.returncode == 3:
            raise Unavailable(json.loads(out.read_text()).get("unavailable", op))
        if proc.returncode != 0 or not out.exists():
            raise CommandFailed(f"maintd {op} {' '.join(args)} exited with {proc.returncode}: {stderr[-3000:]}")
        report = json.loads(out.read_text())
        report.update(wall_s=wall, tree_peak_kb=peak.tree_peak_kb, helpers_hwm_kb=peak.helpers_hwm_kb,
                      stderr_tail=stderr[-500:])
        return report

    def backup(self, kind: str) -> dict[str, Any]:
        return self.call("backup", kind)

    def verify(self, backup_id: str) -> dict[str, Any]:
        return self.call("verify", backup_id)

    def restore(self, backup_id: str, dest: Path) -> dict[str, Any]:
        return self.call("restore", backup_id, str(dest))

    def store_bytes(self, backup_id: str) -> int:
        root = self.work / "backups" / backup_id
        return sum(p.stat().st_size for p in root.iterdir() if p.is_file())
