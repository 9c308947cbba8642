"""Rebuilding a tree from archives written by maintd's own tar writer: only wanted members are taken, hashes are
checked (a mismatch leaves the old file in place), files flagged as changed during the backup are restored with a
warning, missing members are named."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from maintd.backup.archive import TarWriter
from maintd.backup.extract import SafeTree
from maintd.backup.index import Entry
from maintd.backup.restore_plan import plan_component, want_from_index
from maintd.backup.restorer import TreeResult, write_tree
from maintd.errors import IntegrityError


class Collect:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.events: list[dict[str, Any]] = []

    def progress(self, **fields: Any) -> None:
        self.events.append(fields)

    def warn(self, message: str, **fields: Any) -> None:
        self.warnings.append(message)

    def check_cancelled(self) -> None:
        pass


def _archive(files: dict[bytes, bytes], tmp: Path) -> bytes:
    out = io.BytesIO()
    writer = TarWriter(out.write)
    for name, content in files.items():
        path = tmp / hashlib.md5(name).hexdigest()
        path.write_bytes(content)
        st = path.stat()
        entry = Entry(name, "f", 0o644, st.st_uid, st.st_gid, st.st_mtime_ns, size=len(content))
        fd = os.open(path, os.O_RDONLY)
        try:
            writer.add_file(entry, fd)
        finally:
            os.close(fd)
    writer.close()
    return out.getvalue()


def _want(path: bytes, content: bytes, source: str, *, sha: str | None = None, unsure: bool = False) -> Any:
    return want_from_index(path, "f", mode=0o640, uid=os.getuid(), gid=os.getgid(), mtime_ns=1_600_000_000 * 10**9,
                           size=len(content), sha256=sha or hashlib.sha256(content).hexdigest(), source=source,
                           unsure=unsure)


def _opener(archives: dict[str, bytes]) -> Any:
    opened: list[str] = []

    @contextlib.contextmanager
    def open_archive(backup_id: str) -> Iterator[io.BytesIO]:
        opened.append(backup_id)
        yield io.BytesIO(archives[backup_id])

    open_archive.opened = opened  # type: ignore[attr-defined]
    return open_archive


def test_each_file_comes_from_the_archive_its_index_entry_names(tmp_path: Path) -> None:
    archives = {"B1": _archive({b"a": b"old a", b"b": b"only in B1"}, tmp_path),
                "B2": _archive({b"a": b"new a"}, tmp_path), "B3": _archive({b"c": b"unrelated"}, tmp_path)}
    plan = plan_component("data", [_want(b"a", b"new a", "B2"), _want(b"b", b"only in B1", "B1")],
                          ["B1", "B2", "B3"])
    target = tmp_path / "out"
    target.mkdir()
    opener = _opener(archives)
    reporter = Collect()
    with SafeTree(target, atomic=False) as tree:
        result = write_tree(plan, ["B1", "B2", "B3"], opener, tree, reporter, result=TreeResult("data", target))
    assert (target / "a").read_bytes() == b"new a" and (target / "b").read_bytes() == b"only in B1"
    assert oct((target / "a").stat().st_mode & 0o777) == oct(0o640)
    assert (target / "a").stat().st_mtime_ns == 1_600_000_000 * 10**9
    assert opener.opened == ["B1", "B2"]  # B3 holds nothing wanted: never opened
    assert (result.files, result.bytes) == (2, 15)
    assert reporter.events[-1]["done_files"] == 2


def test_a_hash_mismatch_stops_and_leaves_the_old_file_in_place(tmp_path: Path) -> None:
    archives = {"B1": _archive({b"conf": b"tampered"}, tmp_path)}
    plan = plan_component("config", [_want(b"conf", b"tampered", "B1", sha="0" * 64)], ["B1"])
    target = tmp_path / "live"
    target.mkdir()
    (target / "conf").write_bytes(b"current")
    with SafeTree(target, atomic=True) as tree, pytest.raises(IntegrityError, match="config: backup B1: 'conf'.*does not match"):
        write_tree(plan, ["B1"], _opener(archives), tree, Collect(), result=TreeResult("config", target))
    assert (target / "conf").read_bytes() == b"current"
    assert sorted(p.name for p in target.iterdir()) == ["conf"]  # no temporary file left


def test_a_file_changed_during_the_backup_is_restored_with_a_warning(tmp_path: Path) -> None:
    archives = {"B1": _archive({b"log": b"half-written"}, tmp_path)}
    plan = plan_component("data", [_want(b"log", b"half-written", "B1", sha="1" * 64, unsure=True)], ["B1"])
    target = tmp_path / "out"
    target.mkdir()
    reporter = Collect()
    with SafeTree(target, atomic=False) as tree:
        result = write_tree(plan, ["B1"], _opener(archives), tree, reporter, result=TreeResult("data", target))
    assert (target / "log").read_bytes() == b"half-written"
    assert reporter.warnings and "changed while it was backed up" in reporter.warnings[0]
    assert result.warnings == reporter.warnings


def test_a_member_missing_from_its_archive_is_named(tmp_path: Path) -> None:
    archives = {"B1": _archive({b"present": b"x"}, tmp_path)}
    plan = plan_component("data", [_want(b"present", b"x", "B1"), _want(b"gone", b"y", "B1")], ["B1"])
    target = tmp_path / "out"
    target.mkdir()
    with SafeTree(target, atomic=False) as tree, pytest.raises(IntegrityError, match="backup B1 lacks 1 member.*gone"):
        write_tree(plan, ["B1"], _opener(archives), tree, Collect(), result=TreeResult("data", target))


def test_a_member_whose_size_differs_from_the_index_is_refused(tmp_path: Path) -> None:
    archives = {"B1": _archive({b"f": b"12345"}, tmp_path)}
    plan = plan_component("data", [_want(b"f", b"1234", "B1")], ["B1"])
    target = tmp_path / "out"
    target.mkdir()
    with SafeTree(target, atomic=False) as tree, pytest.raises(IntegrityError, match="holds 5 bytes"):
        write_tree(plan, ["B1"], _opener(archives), tree, Collect(), result=TreeResult("data", target))
