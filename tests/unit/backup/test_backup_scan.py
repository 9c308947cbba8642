"""Walking a component: byte order, excludes, special files, names that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from maintd.backup import index, scan


def _tree(root: Path, paths: list[str]) -> None:
    for rel in paths:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rel)


def test_walk_yields_every_entry_in_path_byte_order(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/b", "a.txt", "a-1/c", "a/z/deep", "b", "A"])
    paths = [e.path for e in scan.walk(os.fsencode(tmp_path))]
    assert paths == sorted(paths)
    assert paths == [b"A", b"a", b"a-1", b"a-1/c", b"a.txt", b"a/b", b"a/z", b"a/z/deep", b"b"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "a.b", "a-", "b", "a0", "ab"]), min_size=1, max_size=3),
                min_size=1, max_size=12))
def test_walk_order_is_sorted_bytes_for_any_tree(tmp_path_factory, shapes: list[list[str]]) -> None:
    root = tmp_path_factory.mktemp("tree")
    for parts in shapes:
        directory = root.joinpath(*parts[:-1])
        if any(p.is_file() for p in [root.joinpath(*parts[:i]) for i in range(1, len(parts))]):
            continue
        directory.mkdir(parents=True, exist_ok=True)
        leaf = directory / parts[-1]
        if not leaf.exists():
            leaf.write_text("x")
    paths = [e.path for e in scan.walk(os.fsencode(root))]
    expected = sorted(os.fsencode(os.path.relpath(os.path.join(d, n), root))
                      for d, dirs, files in os.walk(root) for n in dirs + files)
    assert paths == expected


def test_excludes_by_name_at_any_depth_by_path_and_whole_directories(tmp_path: Path) -> None:
    _tree(tmp_path, ["keep.txt", "app.log", "sub/deep.log", "tmp/x", "sub/tmp/y", "cache/c1", "cache/sub/c2",
                     "logs/old.gz", "logs/new.txt"])
    stats = scan.ScanStats()
    found = {e.path for e in scan.walk(os.fsencode(tmp_path), scan.Excludes(["*.log", "tmp", "cache/**",
                                                                             "logs/*.gz"]), stats=stats)}
    assert found == {b"keep.txt", b"sub", b"logs", b"logs/new.txt"}
    assert stats.excluded == 6  # app.log, sub/deep.log, tmp, sub/tmp, cache, logs/old.gz


def test_special_files_and_links_are_recorded_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("t")
    os.symlink("target", tmp_path / "link")
    os.symlink("/nonexistent/elsewhere", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / os.fsdecode(b"bad\xffname")).write_bytes(b"zz")
    found = {e.path: e for e in scan.walk(os.fsencode(tmp_path))}
    assert found[b"link"].type == index.SYMLINK and found[b"link"].link == b"target"
    assert found[b"dangling"].link == b"/nonexistent/elsewhere"
    assert found[b"fifo"].type == index.FIFO
    assert found[b"bad\xffname"].type == index.FILE and found[b"bad\xffname"].size == 2


def test_walk_paths_merges_extra_paths_relative_to_root(tmp_path: Path) -> None:
    _tree(tmp_path, ["etc/a/x", "etc/a.conf", "etc/b/y"])
    base = os.fsencode(tmp_path).lstrip(b"/")
    found = [e.path for e in scan.walk_paths([str(tmp_path / "etc/a"), str(tmp_path / "etc/a.conf"),
                                              str(tmp_path / "etc/a/x")])]
    assert found == [base + b"/etc/a", base + b"/etc/a.conf", base + b"/etc/a/x"]


def test_a_missing_extra_path_is_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert list(scan.walk_paths([str(tmp_path / "nope")], warn=warnings.append)) == []
    assert "does not exist" in warnings[0]


def test_sockets_and_devices_are_recorded_with_their_device_number(tmp_path: Path) -> None:
    import socket
    import stat as stat_module

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        os.mknod(tmp_path / "null", stat_module.S_IFCHR | 0o600, os.makedev(1, 3))
        found = {e.path: e for e in scan.walk(os.fsencode(tmp_path))}
    finally:
        server.close()
    assert found[b"sock"].type == index.SOCKET
    assert found[b"null"].type == index.CHAR and found[b"null"].rdev == os.makedev(1, 3)
    line = index.encode(found[b"null"])
    assert index.decode(line).rdev == os.makedev(1, 3)
