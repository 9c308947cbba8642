"""Point-in-time restores through a full -> incremental -> differential -> incremental chain built by the real
backup job: each restore equals the tree at that moment, byte for byte and mode for mode."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from maintd.model import Outcome
from tests.support.trees import differences, snapshot

from tests.support.restore_rig import Rig, copy_rig, make_rig


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _state0(data: Path) -> None:
    _write(data / "notes.txt", "first notes\n")
    _write(data / "db" / "records.json", '{"n": 1}\n' * 200)
    _write(data / "db" / "old.bin", "x" * 5000)
    _write(data / "keys" / "secret.key", "s3cret\n", 0o600)
    _write(data / "bin" / "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    (data / "empty").mkdir()
    (data / "current").symlink_to("db/records.json")
    (data / "bin").chmod(0o750)
    (data / "cache").mkdir()  # excluded from backups
    _write(data / "cache" / "tmp.dat", "cache")
    (data / ("caf\xe9-" + "n" * 120 + ".txt")).write_text("a long, accented name\n")
    with open(os.path.join(os.fsencode(data), b"raw-\xff-name"), "wb") as handle:  # not UTF-8
        handle.write(b"bytes name\n")
    os.mkfifo(data / "queue.fifo", 0o640)


def _edit1(data: Path) -> None:
    _write(data / "notes.txt", "first notes, edited\n")
    os.rename(data / "db" / "old.bin", data / "db" / "moved.bin")  # a move keeps the old mtime
    (data / "keys" / "secret.key").chmod(0o400)
    (data / "empty2" / "deeper").mkdir(parents=True)
    (data / "current").unlink()
    (data / "current").symlink_to("notes.txt")


def _edit2(data: Path) -> None:
    (data / "notes.txt").unlink()
    shutil.rmtree(data / "empty")
    _write(data / "db" / "records.json", '{"n": 2}\n' * 300)
    _write(data / "new" / "a.txt", "added later\n", 0o640)
    (data / "bin" / "run.sh").chmod(0o700)


def _edit3(data: Path) -> None:
    shutil.rmtree(data / "empty2")
    os.unlink(os.path.join(os.fsencode(data), b"raw-\xff-name"))
    _write(data / "notes.txt", "notes are back\n")
    _write(data / "db" / "moved.bin", "y" * 5000)  # same size, new content


def _snap(rig: Rig) -> dict:
    return snapshot(rig.data, skip=("cache",))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[dict], list]:
    """The chain, built once per module; each test works on its own copy (see `chain`)."""
    built = make_rig(tmp_path_factory.mktemp("chain"))
    ids, states, times = [], [], []
    steps = [("full", _state0), ("incremental", _edit1), ("differential", _edit2), ("incremental", _edit3)]
    try:
        for kind, change in steps:
            change(built.data)
            states.append(_snap(built))
            ids.append(built.backup(kind))
            times.append(built.now)
    finally:
        built.close()
    return built.root, ids, states, times


@pytest.fixture
def chain(pristine, rig_copy) -> tuple[list[str], list[dict], list]:
    _, ids, states, times = pristine
    return ids, states, times


@pytest.fixture
def rig_copy(pristine, tmp_path: Path) -> Iterator[Rig]:
    copy = copy_rig(pristine[0], tmp_path / "rig")
    yield copy
    copy.close()


@pytest.fixture
def rig(rig_copy: Rig) -> Rig:  # the tests of this module work on the copied chain
    return rig_copy


def test_each_backup_of_the_chain_restores_the_tree_of_its_moment(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, _ = chain
    assert [i.split("-")[-1] for i in ids] == ["full", "incremental", "differential", "incremental"]
    for number, (backup_id, expected) in enumerate(zip(ids, states)):
        target = tmp_path / f"restored-{number}"
        record = rig.run("restore", backup=backup_id, components=["data"], target=str(target))
        assert record.data["backup"] == backup_id
        assert differences(expected, snapshot(target)) == [], backup_id


def test_at_picks_the_newest_backup_at_or_before_the_time(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, times = chain
    moment = times[2].replace(minute=30)  # between the differential and the last incremental
    record = rig.run("restore", at=moment.isoformat(), components="data", target=str(tmp_path / "pit"))
    assert record.data["backup"] == ids[2]
    assert differences(states[2], snapshot(tmp_path / "pit")) == []


def test_restore_in_place_swaps_and_keeps_the_previous_tree(rig: Rig, chain) -> None:
    ids, states, _ = chain
    before = _snap(rig)
    record = rig.run("restore", backup=ids[1], components=["data"])
    assert differences(states[1], _snap(rig)) == []
    kept = Path(record.data["components"][0]["kept"])
    assert kept.name.startswith("data.pre-restore.") and kept.parent == rig.data.parent
    assert differences(before, snapshot(kept, skip=("cache",))) == []
    # excluded paths are not in the backup: the live tree's are carried over into the restored one
    assert (rig.data / "cache" / "tmp.dat").read_text() == "cache" and not (kept / "cache").exists()
    assert not list(rig.root.glob(".data.restoring.*"))


def test_delete_makes_an_existing_target_equal_to_the_backup(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, _ = chain
    target = tmp_path / "busy"
    subprocess.run(["cp", "-a", str(rig.data), str(target)], check=True, timeout=30)
    (target / "stray.txt").write_text("not in any backup\n")
    (target / "db" / "moved.bin").unlink()
    (target / "db" / "moved.bin").mkdir()  # a directory where the backup has a file
    rig.run("restore", backup=ids[0], components=["data"], target=str(target), delete=True)
    assert differences(states[0], snapshot(target)) == []


def test_without_delete_extra_files_in_the_target_stay(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, _ = chain
    target = tmp_path / "keep-extra"
    target.mkdir()
    (target / "stray.txt").write_text("mine\n")
    rig.run("restore", backup=ids[3], components=["data"], target=str(target))
    assert (target / "stray.txt").read_text() == "mine\n"
    assert differences(states[3], snapshot(target, skip=("stray.txt",))) == []


def test_dry_run_lists_changes_and_writes_nothing(rig: Rig, chain) -> None:
    ids, _, _ = chain
    before = snapshot(rig.root)
    record = rig.run("restore", backup=ids[0], components=["data"], dry_run=True)
    preview = record.data["components"][0]
    assert preview["swap"] is True
    assert "notes.txt" in preview["paths"]["changed"]  # edited since
    assert "db/old.bin" in preview["paths"]["added"] and "empty" in preview["paths"]["added"]
    assert "new/a.txt" in preview["paths"]["removed"] and "db/moved.bin" in preview["paths"]["removed"]
    assert any(line.startswith("data: would swap into") for line in record.data["report"])
    after = snapshot(rig.root)
    assert {k: v for k, v in after.items() if not k.startswith("state")} == \
        {k: v for k, v in before.items() if not k.startswith("state")}


def test_several_components_go_under_the_target_by_name(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, _ = chain
    _write(rig.conf / "app.toml", "x = 1\n")  # not in these backups: conf was empty then
    record = rig.run("restore", backup=ids[3], target=str(tmp_path / "all"))
    assert sorted(c["component"] for c in record.data["components"]) == ["application", "config", "data"]
    assert differences(states[3], snapshot(tmp_path / "all" / "data")) == []
    assert list((tmp_path / "all" / "config").iterdir()) == []


def test_a_missing_chain_member_stops_the_restore_before_writing(rig: Rig, chain, tmp_path: Path) -> None:
    ids, _, _ = chain
    shutil.rmtree(rig.root / "backups" / ids[2])  # the last incremental's chain: full, differential, itself
    record = rig.run("restore", ok=False, backup=ids[3], components=["data"], target=str(tmp_path / "t"))
    assert record.outcome is Outcome.FAILED
    assert ids[2] in record.summary and "missing" in record.summary
    assert not (tmp_path / "t").exists()


def test_a_damaged_object_stops_the_restore_naming_it(rig: Rig, chain, tmp_path: Path) -> None:
    ids, states, _ = chain
    archive = next((rig.root / "backups" / ids[0]).glob("data.tar.*"))
    with archive.open("r+b") as handle:
        handle.seek(archive.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = _snap(rig)
    record = rig.run("restore", ok=False, backup=ids[2], components=["data"])
    assert record.outcome is Outcome.FAILED
    assert ids[0] in record.summary and archive.name in record.summary and "sha256" in record.summary
    assert _snap(rig) == before and not list(rig.root.glob("data.pre-restore.*"))


def test_bad_arguments_are_refused_clearly(rig: Rig) -> None:
    from maintd.errors import UsageError

    for args, message in (({"target": "relative/dir"}, "absolute"), ({"delete": True}, "delete needs a target"),
                          ({"at": "yesterday"}, "ISO 8601"), ({"backup": "x", "at": "2026-01-01T00:00Z"}, "not both"),
                          ({"colour": "red"}, "unexpected")):
        with pytest.raises(UsageError, match=message):
            rig.runner.start("restore", args=args)
