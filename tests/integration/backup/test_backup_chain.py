"""A chain full -> incremental -> differential -> incremental over a changing tree, with real gpg: each index
equals the tree at that moment and each point in time can be rebuilt from the archives the index names."""

from __future__ import annotations

import os
from pathlib import Path

from maintd.backup import index
from maintd.model import BackupType
from tests.integration.backup.conftest import BackupEnv, comparable, tree_files

OLD = 946684800  # 2000-01-01: files moved in with old timestamps must still be stored


def _check_point_in_time(env: BackupEnv, backup_id: str) -> list[index.Entry]:
    entries = env.index(backup_id)
    assert [comparable(e) for e in entries] == [comparable(e) for e in env.scan()]
    assert env.materialize(backup_id) == tree_files(env.data).__class__(
        (k, v) for k, v in tree_files(env.data).items() if not k.startswith(b"cache/"))
    return entries


def _stored(env: BackupEnv, backup_id: str) -> set[bytes]:
    return {p for p, content in env.members(backup_id).items() if content is not None}


def test_chain_records_edits_moves_deletions_modes_and_special_files(backup_env) -> None:
    env: BackupEnv = backup_env()
    data = env.data
    (data / "a.txt").write_text("first")
    (data / "dir" / "sub").mkdir(parents=True)
    (data / "dir" / "sub" / "file").write_text("nested")
    (data / "gone.txt").write_text("to be deleted")
    (data / "mode.txt").write_text("mode")
    (data / "same.txt").write_text("never changes")
    (data / "cache").mkdir()
    (data / "cache" / "skip").write_text("excluded")
    os.symlink("a.txt", data / "link")
    os.mkfifo(data / "fifo")
    (data / os.fsdecode(b"bad\xffname")).write_bytes(b"\x00\xff")

    full = env.backup("full").data
    assert full["type"] == "full" and full["parent"] is None
    entries = {e.path: e for e in _check_point_in_time(env, full["id"])}
    assert entries[b"link"].type == index.SYMLINK and entries[b"link"].link == b"a.txt"
    assert entries[b"fifo"].type == index.FIFO
    assert b"bad\xffname" in entries and b"cache" not in entries

    (data / "a.txt").write_text("second version")
    (data / "gone.txt").unlink()
    os.chmod(data / "mode.txt", 0o600)
    moved = data / "moved.txt"
    moved.write_text("moved in from elsewhere")
    os.utime(moved, (OLD, OLD))
    os.rename(data / "dir" / "sub" / "file", data / "dir" / "renamed")
    inc1 = env.backup("incremental").data
    assert inc1["parent"] == full["id"] and inc1["chain"] == [full["id"], inc1["id"]]
    entries = {e.path: e for e in _check_point_in_time(env, inc1["id"])}
    assert b"gone.txt" not in entries
    assert entries[b"moved.txt"].in_ == inc1["id"]
    assert entries[b"same.txt"].in_ == full["id"]
    assert entries[b"mode.txt"].mode == 0o600 and entries[b"mode.txt"].in_ == inc1["id"]
    assert _stored(env, inc1["id"]) == {b"a.txt", b"mode.txt", b"moved.txt", b"dir/renamed"}

    (data / "later.txt").write_text("after the incremental")
    diff = env.backup("differential").data
    assert diff["parent"] == full["id"] and diff["chain"] == [full["id"], diff["id"]]
    _check_point_in_time(env, diff["id"])
    assert _stored(env, diff["id"]) == {b"a.txt", b"mode.txt", b"moved.txt", b"dir/renamed", b"later.txt"}

    os.unlink(data / "link")
    os.symlink("same.txt", data / "link")
    (data / "same.txt").write_text("changed at last")  # same size would still differ by mtime/ctime
    os.unlink(data / "fifo")
    inc2 = env.backup("incremental").data
    assert inc2["parent"] == diff["id"] and inc2["chain"] == [full["id"], diff["id"], inc2["id"]]
    entries = {e.path: e for e in _check_point_in_time(env, inc2["id"])}
    assert entries[b"link"].link == b"same.txt" and b"fifo" not in entries
    assert entries[b"later.txt"].in_ == diff["id"] and entries[b"same.txt"].in_ == inc2["id"]

    rows = env.catalog.list()
    assert [m.type for m in rows] == [BackupType.FULL, BackupType.INCREMENTAL, BackupType.DIFFERENTIAL,
                                      BackupType.INCREMENTAL]
    assert all(m.outcome == "succeeded" for m in rows)


def test_a_no_change_incremental_stores_nothing_but_writes_valid_objects(backup_env) -> None:
    env: BackupEnv = backup_env()
    (env.data / "f").write_text("x")
    full = env.backup("full").data
    inc = env.backup("incremental").data
    assert inc["stored_files"] == 0 and inc["files"] == full["files"]
    assert env.members(inc["id"]) == {}
    assert [e.in_ for e in env.index(inc["id"]) if e.type == index.FILE] == [full["id"]]


def test_incremental_without_any_backup_becomes_a_full_and_says_so(backup_env) -> None:
    env: BackupEnv = backup_env()
    result = env.backup("incremental")
    assert result.data["type"] == "full" and result.data["requested_type"] == "incremental"
    assert any("taking a full backup" in w for w in result.warnings)


def test_a_damaged_parent_makes_a_full_backup(backup_env) -> None:
    env: BackupEnv = backup_env()
    (env.data / "f").write_text("x")
    full = env.backup("full").data
    index_object = env.catalog.object_path(full["id"], "data.index.zst.gpg")
    raw = bytearray(index_object.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    index_object.write_bytes(bytes(raw))
    result = env.backup("incremental")
    assert result.data["type"] == "full"
    assert any(full["id"] in w and "sha256" in w for w in result.warnings)


def test_extra_paths_are_backed_up_as_the_system_component(backup_env, tmp_path: Path) -> None:
    unit = tmp_path / "etc" / "unit.service"
    unit.parent.mkdir()
    unit.write_text("[Service]\n")
    env: BackupEnv = backup_env({"backup": {"extra_paths": [str(unit)]}})
    result = env.backup("full").data
    manifest = env.catalog.get(result["id"])
    assert manifest.components["system"]["root"] == "/"
    assert manifest.components["system"]["paths"] == [str(unit)]
    paths = [e.path for e in env.index(result["id"], "system")]
    assert paths == [os.fsencode(unit).lstrip(b"/")]
