"""A restore rig: settings under tmp_path, real gpg, the real backup job and the runner with a settable clock."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from maintd import config
from maintd.config import Settings
from maintd.jobs import registry
from maintd.model import Outcome, RunRecord
from maintd.runtime.runner import Runner
from maintd.state import State
from tests.support.configs import write_config
from tests.support.gpg_home import make_passphrase_file

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@dataclass
class Rig:
    root: Path
    settings: Settings
    state: State
    now: datetime = T0
    runner: Runner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = Runner(self.settings, self.state, registry(), clock=lambda: self.now)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def tick(self, hours: float = 1) -> datetime:
        self.now += timedelta(hours=hours)
        return self.now

    def run(self, job: str, ok: bool = True, **args: Any) -> RunRecord:
        record = self.runner.run_sync(job, args=args)
        if ok:
            assert record.outcome in (Outcome.SUCCEEDED, Outcome.WARNING), (record.summary, record.error)
        return record

    def backup(self, kind: str = "full") -> str:
        self.tick()
        return self.run("backup", type=kind).data["id"]

    def close(self) -> None:
        self.runner.stop(10)
        self.state.close()


def make_rig(root: Path, extra: dict[str, Any] | None = None) -> Rig:
    """A rig whose config, trees, backups and state all live under ``root``."""
    make_passphrase_file(root / "secrets")
    settings = config.load(write_config(root, extra))
    return Rig(root, settings, State.open(settings.paths.state_dir))


def copy_rig(source: Path, root: Path, extra: dict[str, Any] | None = None) -> Rig:
    """A copy of a rig's whole directory (trees, backups, state, key) under ``root``, with its own config:
    expensive set-ups (a backup chain) are built once and copied per test."""
    subprocess.run(["cp", "-a", str(source), str(root)], check=True, timeout=60)  # fifos, owners, mtimes too
    rig = make_rig(root, extra)
    rig.now = T0 + timedelta(days=30)
    return rig


