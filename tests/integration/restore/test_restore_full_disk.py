"""Restoring onto a nearly full filesystem (a real 3 MiB tmpfs): the preflight refuses before writing, a disk that
fills up mid-way is a clean StorageError, and nothing this restore wrote is left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from maintd.backup.catalog import Catalog
from maintd.backup.restore_plan import stamp
from maintd.backup.restore_run import RestoreEnv, RestoreRequest, open_key, restore
from maintd.errors import StorageError
from maintd.model import Outcome
from tests.support.restore_rig import Rig, make_rig
from tests.support.tmpfs import tmpfs
from tests.support.trees import snapshot

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "3m") as mounted:
        yield mounted


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path / "rig", {"recovery": {"min_free_bytes": 0}})
    (made.data / "db").mkdir()
    for i in range(4):
        (made.data / "db" / f"{i}.bin").write_bytes(os.urandom(500_000))  # 2 MB: fits 3 MiB, but not twice
    (made.data / "notes.txt").write_text("notes\n")
    (made.conf / "app.toml").write_text("port = 1\n")
    made.backup("full")
    yield made
    made.close()


def _fill(mount: Path) -> None:
    with open(mount / "filler", "ab") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


class FillingReporter:
    """A console-like reporter (what the offline command passes) that fills the filesystem as soon as the first
    file was written: another process taking the space while the restore runs."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.filled = False
        self.warnings: list[str] = []

    def progress(self, **fields: Any) -> None:
        if str(fields.get("phase", "")).startswith("restore ") and fields.get("done_files") and not self.filled:
            self.filled = True
            _fill(self.mount)

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append(message)

    def check_cancelled(self) -> None:
        pass


def _restore_filling(rig: Rig, mount: Path, request: RestoreRequest, live: dict[str, Path] | None = None) -> Any:
    now = datetime.now(timezone.utc)
    reporter = FillingReporter(mount)
    env = RestoreEnv(catalog=Catalog.from_settings(rig.settings), gpg=open_key(rig.settings), reporter=reporter,
                     stamp=stamp(now), live=live or {}, now=now)
    with pytest.raises(StorageError) as caught:
        restore(env, request)
    assert reporter.filled
    return caught.value


def test_the_preflight_refuses_before_writing_anything(rig: Rig, small_fs: Path) -> None:
    (small_fs / "filler").write_bytes(b"\0" * 2_000_000)  # 1 MiB left: the 2 MB of data cannot fit
    record = rig.run("restore", ok=False, components="data", target=str(small_fs / "t"))
    assert record.outcome is Outcome.FAILED, record.error  # not `crashed`
    assert f"not enough space on {small_fs} to restore {small_fs / 't'}: need about" in record.summary
    assert "free" in record.summary and "nothing was written" in record.summary
    assert sorted(os.listdir(small_fs)) == ["filler"]


def test_a_disk_filling_up_mid_way_removes_what_the_restore_wrote(rig: Rig, small_fs: Path) -> None:
    target = small_fs / "new" / "t"
    err = _restore_filling(rig, small_fs, RestoreRequest(target=target))  # application, config, data: t/<name>
    assert f"no space left on {small_fs} while restoring" in err.message and "need about" in err.message
    assert sorted(os.listdir(small_fs)) == ["filler"]  # no staging dir, no half tree, not even new/


def test_an_empty_target_is_left_empty(rig: Rig, small_fs: Path) -> None:
    (small_fs / "t").mkdir()
    _restore_filling(rig, small_fs, RestoreRequest(components=("data",), target=small_fs / "t"))
    assert sorted(os.listdir(small_fs)) == ["filler", "t"] and os.listdir(small_fs / "t") == []


def test_a_swap_restore_leaves_the_live_tree_untouched(rig: Rig, small_fs: Path) -> None:
    live = small_fs / "data"
    live.mkdir()
    (live / "current.txt").write_text("the live data\n")
    before = snapshot(live)
    err = _restore_filling(rig, small_fs, RestoreRequest(components=("data",)), live={"data": live})
    assert "no space left" in err.message and f"the live tree {live} is untouched" in err.message
    assert snapshot(live) == before
    assert sorted(os.listdir(small_fs)) == ["data", "filler"]


def test_offline_restore_says_so_in_one_line(rig: Rig, small_fs: Path) -> None:
    (small_fs / "filler").write_bytes(b"\0" * 2_000_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAINTD_")}
    done = subprocess.run([sys.executable, "-m", "maintd", "restore", "--config", str(rig.root / "maintd.toml"),
                           "--component", "data", "--target", str(small_fs / "t")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"maintd restore: not enough space on {small_fs}" in done.stderr
    assert sorted(os.listdir(small_fs)) == ["filler"]


def test_a_read_only_filesystem_is_a_clear_failure(rig: Rig, small_fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True, timeout=30)
    record = rig.run("restore", ok=False, components="data", target=str(small_fs / "t"))
    assert record.outcome is Outcome.FAILED, record.error
    assert f"{small_fs} is mounted read-only: cannot restore {small_fs / 't'}" in record.summary
