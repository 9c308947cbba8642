"""A backup set-up under tmp_path: settings, state, real gpg, helpers to look inside backups."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from maintd.backup import index, reader, scan
from maintd.backup.catalog import Catalog
from maintd.backup.tar_reader import TarReader
from maintd.config import Settings
from maintd.edges.gpg import Gpg
from maintd.jobs.backup import run_backup
from maintd.jobs.base import JobResult
from maintd.state import State


@dataclass
class BackupEnv:
    root: Path
    settings: Settings
    state: State

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def catalog(self) -> Catalog:
        return Catalog.from_settings(self.settings)

    @property
    def gpg(self) -> Gpg:
        return Gpg.from_settings(self.settings)

    def backup(self, kind: str = "full", **kw: Any) -> JobResult:
        return run_backup(self.settings, self.state, kind, **kw)

    def index(self, backup_id: str, component: str = "data") -> list[index.Entry]:
        return list(reader.read_index(self.catalog, self.gpg, backup_id, component))

    def scan(self, component: str = "data") -> list[index.Entry]:
        spec = self.settings.target.component(component)
        assert spec is not None
        return list(scan.walk(os.fsencode(spec.path), scan.Excludes(spec.exclude)))

    def members(self, backup_id: str, component: str = "data") -> dict[bytes, bytes | None]:
        """Archive members of one backup: path -> content (None for non-files)."""
        manifest = self.catalog.get(backup_id)
        found: dict[bytes, bytes | None] = {}
        with reader.open_object(self.catalog, self.gpg, backup_id, manifest.archive_name(component)) as stream:
            tar = TarReader(stream)
            for member in tar:
                found[member.name.rstrip(b"/")] = tar.read() if member.is_file else None
            while stream.read(1 << 20):
                pass
        return found

    def materialize(self, backup_id: str, component: str = "data") -> dict[bytes, bytes]:
        """File contents at the time of ``backup_id``, taken from the archive each index entry names."""
        archives: dict[str, dict[bytes, bytes | None]] = {}
        contents = {}
        for entry in self.index(backup_id, component):
            if entry.type != index.FILE:
                continue
            assert entry.in_ is not None
            if entry.in_ not in archives:
                archives[entry.in_] = self.members(entry.in_, component)
            content = archives[entry.in_][entry.path]
            assert content is not None
            contents[entry.path] = content
        return contents


def tree_files(root: Path) -> dict[bytes, bytes]:
    found = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, base)] = handle.read()
    return found


def comparable(entry: index.Entry) -> tuple[Any, ...]:
    """What a fresh scan and an index entry must agree on (the scan does not know hashes)."""
    return (entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.mtime_ns, entry.ctime_ns, entry.ino,
            entry.size, entry.link, entry.rdev)


@pytest.fixture
def backup_env(tmp_path: Path, settings: Callable[..., Settings]) -> Iterator[Callable[..., BackupEnv]]:
    homes: list[Path] = []

    def make(extra: dict[str, Any] | None = None) -> BackupEnv:
        loaded = settings(extra)
        homes.append(loaded.paths.state_dir / "gnupg")
        return BackupEnv(tmp_path, loaded, State.open(loaded.paths.state_dir))

    yield make
    for home in homes:  # gpg starts an agent per GNUPGHOME: end it with the test
        if home.is_dir():
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)


def job_context(env: BackupEnv, job: str, events: list[dict[str, Any]] | None = None) -> Any:
    """A JobContext as the runner builds it (the runner itself is tested elsewhere)."""
    import uuid
    from datetime import datetime, timezone

    import structlog

    from maintd.jobs.base import JobContext
    from maintd.model import Trigger

    sink = events if events is not None else []
    return JobContext(settings=env.settings, job=job, run_id=uuid.uuid4().hex[:12], trigger=Trigger.MANUAL,
                      state=env.state, log=structlog.get_logger("maintd.job").bind(job=job),
                      now=lambda: datetime.now(timezone.utc),
                      emit=lambda name, fields: sink.append({"event": name, **fields}))


def run_job(env: BackupEnv, name: str, args: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Any:
    from maintd.jobs import registry

    spec = registry()[name]
    return spec.run(job_context(env, name, events), spec.parse_args(args))
