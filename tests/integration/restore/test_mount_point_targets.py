"""Restoring onto mount points (real tmpfs mounts): a mount point cannot be renamed, so it is written in place,
whether it is the --target or a component's live path; and a failed restore into a target that was empty removes
only what this restore wrote there, never what others wrote meanwhile."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from maintd.backup.catalog import Catalog
from maintd.backup.restore_plan import stamp
from maintd.backup.restore_run import RestoreEnv, RestoreRequest, open_key, restore
from maintd.errors import StorageError
from tests.support.restore_rig import Rig, make_rig
from tests.support.tmpfs import tmpfs
from tests.support.trees import snapshot


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "mnt", "8m") as mounted:
        yield mounted


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path / "rig", {"recovery": {"min_free_bytes": 0}})
    (made.data / "db").mkdir()
    for i in range(3):
        (made.data / "db" / f"{i}.bin").write_bytes(os.urandom(100_000))
    (made.data / "notes.txt").write_text("notes\n")
    (made.conf / "app.toml").write_text("port = 1\n")
    made.backup("full")
    yield made
    made.close()


def _env(rig: Rig, reporter: Any = None, live: dict[str, Path] | None = None) -> RestoreEnv:
    now = datetime.now(timezone.utc)
    return RestoreEnv(catalog=Catalog.from_settings(rig.settings), gpg=open_key(rig.settings),
                      reporter=reporter or QuietReporter(), stamp=stamp(now), live=live or {}, now=now)


class QuietReporter:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def progress(self, **fields: Any) -> None:
        pass

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append(message)

    def check_cancelled(self) -> None:
        pass


class OtherWriterThenFailure(QuietReporter):
    """Another process writes into the target once the restore has written its first file; the restore then
    fails (as a full disk or a cancel would)."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target = target
        self.written = False

    def progress(self, **fields: Any) -> None:
        if str(fields.get("phase", "")).startswith("restore ") and fields.get("done_files") and not self.written:
            self.written = True
            (self.target / "theirs.txt").write_text("written by someone else\n")
            (self.target / "their-dir").mkdir()
            (self.target / "their-dir" / "x").write_text("x\n")
            raise StorageError("the disk went away")


def test_a_job_restore_into_an_empty_mount_point_writes_in_place(rig: Rig, mount: Path) -> None:
    record = rig.run("restore", components="data", target=str(mount))
    assert snapshot(mount) == snapshot(rig.data), record.summary
    assert os.path.ismount(mount)


def test_an_empty_mount_point_with_delete_writes_in_place(rig: Rig, mount: Path) -> None:
    rig.run("restore", components="data", target=str(mount), delete=True)
    assert snapshot(mount) == snapshot(rig.data)
    assert os.path.ismount(mount)


def test_several_components_into_an_empty_mount_point(rig: Rig, mount: Path) -> None:
    rig.run("restore", components="data,config", target=str(mount))
    assert snapshot(mount / "data") == snapshot(rig.data)
    assert snapshot(mount / "config") == snapshot(rig.conf)


def test_a_live_path_that_is_an_empty_mount_point_is_written_in_place(rig: Rig, mount: Path) -> None:
    report = restore(_env(rig, live={"data": mount}), RestoreRequest(components=("data",)))
    assert snapshot(mount) == snapshot(rig.data)
    assert os.path.ismount(mount) and report.trees[0].kept is None
    assert sorted(os.listdir(mount.parent)) == ["mnt", "rig"]  # no staging dir, no kept tree


def test_a_live_mount_point_with_other_content_ends_up_as_the_backup(rig: Rig, mount: Path) -> None:
    (mount / "stray.txt").write_text("not in the backup\n")
    (mount / "notes.txt").write_text("changed\n")
    restore(_env(rig, live={"data": mount}), RestoreRequest(components=("data",)))
    assert snapshot(mount) == snapshot(rig.data) and os.path.ismount(mount)


def test_a_failed_restore_into_an_empty_mount_point_keeps_what_others_wrote(rig: Rig, mount: Path) -> None:
    reporter = OtherWriterThenFailure(mount)
    with pytest.raises(StorageError):
        restore(_env(rig, reporter), RestoreRequest(components=("data",), target=mount))
    assert reporter.written
    assert sorted(os.listdir(mount)) == ["their-dir", "theirs.txt"]
    assert (mount / "their-dir" / "x").read_text() == "x\n"


def test_a_failed_restore_into_an_empty_dir_keeps_what_others_wrote(rig: Rig, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    reporter = OtherWriterThenFailure(target)
    with pytest.raises(StorageError):
        restore(_env(rig, reporter), RestoreRequest(components=("data", "config"), target=target))
    assert reporter.written
    assert sorted(os.listdir(target)) == ["their-dir", "theirs.txt"]  # data/ and config/ of the restore are gone


def test_a_job_restore_with_no_usable_backup_fails_with_the_data_error_exit_code(rig: Rig, tmp_path: Path) -> None:
    backup_id = rig.run("restore", dry_run=True, components="data", target=str(tmp_path / "t")).data["backup"]
    rig.state.put(f"verify.{backup_id}", {"ok": False})
    record = rig.run("restore", ok=False, components="data", target=str(tmp_path / "t"))
    assert "no restorable backup (last verify failed" in record.summary
    assert record.data["exit_code"] == 65
