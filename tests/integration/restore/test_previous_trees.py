"""recovery.keep_previous_trees: after a successful restore or recovery only the newest N previous trees of each
kind stay beside a component's live path."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from maintd.model import Outcome
from tests.support.restore_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path / "rig", {"recovery": {"keep_previous_trees": 2}})
    (made.data / "a.txt").write_text("a\n")
    (made.conf / "app.toml").write_text("port = 1\n")
    made.backup("full")
    yield made
    made.close()


def _old(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "old.txt").write_text("an older copy\n")
    return path


def _names(root: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(prefix))


def test_restore_keeps_the_newest_previous_trees_of_each_kind(rig: Rig) -> None:
    root = rig.root
    for day in ("01", "02", "03"):
        _old(root, f"data.pre-restore.202611{day}T000000Z")
    _old(root, "data.broken.20261001T000000Z")
    others = [_old(root, "data.pre-restore.by-hand"), _old(root, "database.pre-restore.20261101T000000Z"),
              _old(root, "conf.pre-restore.20261101T000000Z")]

    record = rig.run("restore", components="data")

    assert record.outcome is Outcome.WARNING  # swapped in place: test_backup_choice checks the warning
    just_kept = Path(record.data["components"][0]["kept"]).name
    assert _names(root, "data.pre-restore.2") == ["data.pre-restore.20261103T000000Z", just_kept]
    assert _names(root, "data.broken.") == ["data.broken.20261001T000000Z"]  # another kind: counted apart
    assert all(p.exists() for p in others)  # not a previous tree of data
    removed = sorted(Path(p).name for p in record.data["removed_previous"])
    assert removed == ["data.pre-restore.20261101T000000Z", "data.pre-restore.20261102T000000Z"]
    assert any(line.startswith("removed older previous trees:") for line in record.data["report"])


def test_a_dry_run_or_a_target_restore_removes_nothing(rig: Rig) -> None:
    for day in ("01", "02", "03"):
        _old(rig.root, f"data.pre-restore.202611{day}T000000Z")
    rig.run("restore", components="data", dry_run=True)
    rig.run("restore", components="data", target=str(rig.root / "elsewhere"))
    assert len(_names(rig.root, "data.pre-restore.")) == 3


def test_recover_prunes_after_it_succeeded(rig: Rig) -> None:
    for month in ("08", "09", "10"):
        _old(rig.root, f"conf.broken.2026{month}01T000000Z")
    record = rig.run("recover", mode="configuration")
    assert record.outcome is Outcome.SUCCEEDED
    broken = _names(rig.root, "conf.broken.")
    assert len(broken) == 2 and broken[0] == "conf.broken.20261001T000000Z"
    assert len(record.data["removed_previous"]) == 2
    assert "removed older previous trees" in "\n".join(record.data["report"])
