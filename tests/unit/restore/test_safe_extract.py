"""Hand-made malicious tar archives: each is refused with a clear error and nothing is written outside."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from maintd.backup.extract import (SafeTree, UnsafeMemberError, extract_tar, link_stays_inside, member_parts,
                                   remove_leftover_temps)
from maintd.errors import IntegrityError

Member = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, data: bytes = b"payload", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    return info, data


def _special(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, 1_700_000_000
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, None


def _tar(*members: Member) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content: bytes | str | None = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode) | stat.S_IMODE(st.st_mode), content)
    return out


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory beside the target that no extraction may touch."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret").write_text("do not touch\n")
    return outside


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    return path


def _refused(target: Path, victim: Path, archive: io.BytesIO, match: str, **kw: bool) -> None:
    before = _snapshot(victim)
    with SafeTree(target) as tree, pytest.raises(UnsafeMemberError, match=match):
        extract_tar(archive, tree, **kw)
    assert _snapshot(victim) == before


def test_absolute_member_name_is_refused(target: Path, victim: Path) -> None:
    _refused(target, victim, _tar(_file(str(victim / "secret"), b"owned")), "absolute path")


def test_dotdot_member_name_is_refused(target: Path, victim: Path) -> None:
    _refused(target, victim, _tar(_file("ok.txt"), _file("a/../../outside/secret", b"owned")), "'..' segment")
    assert (target / "ok.txt").read_bytes() == b"payload"


def test_symlink_pointing_out_is_refused(target: Path, victim: Path) -> None:
    _refused(target, victim, _tar(_special("escape", tarfile.SYMTYPE, str(victim))), "points outside")
    _refused(target, victim, _tar(_special("a/escape", tarfile.SYMTYPE, "../../outside")), "points outside")
    assert not (target / "escape").exists() and not (target / "a" / "escape").is_symlink()


def test_write_through_a_restored_symlink_is_refused_even_when_links_outside_are_allowed(
        target: Path, victim: Path) -> None:
    archive = _tar(_special("link", tarfile.SYMTYPE, str(victim)), _file("link/secret", b"owned"),
                   _file("link/new", b"owned"))
    _refused(target, victim, archive, "write through symlink 'link'", allow_symlinks_outside=True)
    assert (target / "link").is_symlink()


def test_write_through_an_inside_symlink_is_refused(target: Path, victim: Path) -> None:
    archive = _tar(_special("real", tarfile.DIRTYPE), _special("alias", tarfile.SYMTYPE, "real"),
                   _file("alias/file", b"x"))
    _refused(target, victim, archive, "write through symlink 'alias'")
    assert not (target / "real" / "file").exists()


def test_chained_inside_links_cannot_climb_out(target: Path, victim: Path) -> None:
    # dot -> "." is inside, but "dot/.." would be the target's parent: such targets are refused.
    archive = _tar(_special("dot", tarfile.SYMTYPE, "."), _special("up", tarfile.SYMTYPE, "dot/../outside"))
    _refused(target, victim, archive, "'up' -> 'dot/../outside'")


def test_write_through_a_link_already_in_the_target_is_refused(target: Path, victim: Path) -> None:
    (target / "data").symlink_to(victim)
    _refused(target, victim, _tar(_file("data/secret", b"owned")), "write through symlink 'data'")


def test_file_member_replaces_a_link_in_the_target_instead_of_following_it(target: Path, victim: Path) -> None:
    (target / "secret").symlink_to(victim / "secret")
    before = _snapshot(victim)
    with SafeTree(target) as tree:
        extract_tar(_tar(_file("secret", b"new content")), tree)
    assert not (target / "secret").is_symlink()
    assert (target / "secret").read_bytes() == b"new content"
    assert _snapshot(victim) == before


def test_hard_link_to_an_absolute_path_is_refused(target: Path, victim: Path) -> None:
    _refused(target, victim, _tar(_special("h", tarfile.LNKTYPE, str(victim / "secret"))), "absolute path")


def test_hard_link_climbing_out_is_refused(target: Path, victim: Path) -> None:
    _refused(target, victim, _tar(_special("h", tarfile.LNKTYPE, "../outside/secret")), "'..' segment")


def test_hard_link_through_a_symlink_is_refused(target: Path, victim: Path) -> None:
    (target / "out").symlink_to(victim)
    _refused(target, victim, _tar(_special("h", tarfile.LNKTYPE, "out/secret")), "write through symlink 'out'")
    assert not (target / "h").exists()


def test_hard_link_inside_the_archive_is_made(target: Path) -> None:
    with SafeTree(target) as tree:
        extract_tar(_tar(_file("a", b"shared"), _special("b", tarfile.LNKTYPE, "a")), tree)
    assert (target / "b").read_bytes() == b"shared"
    assert (target / "a").stat().st_ino == (target / "b").stat().st_ino


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_device_nodes_are_refused(target: Path, victim: Path, kind: bytes) -> None:
    _refused(target, victim, _tar(_special("null", kind)), "device node 'null'")
    assert not (target / "null").exists()


def test_a_plain_archive_round_trips_modes_mtimes_links_and_empty_dirs(target: Path) -> None:
    archive = _tar(_special("d", tarfile.DIRTYPE, mode=0o750), _special("d/empty", tarfile.DIRTYPE, mode=0o700),
                   _file("d/x.sh", b"#!/bin/sh\n", mode=0o755), _special("d/rel", tarfile.SYMTYPE, "x.sh"),
                   _special("up", tarfile.SYMTYPE, "d/x.sh"), _special("fifo", tarfile.FIFOTYPE, mode=0o640),
                   _special("ro", tarfile.DIRTYPE, mode=0o555), _file("ro/f", b"in a read-only dir"))
    with SafeTree(target) as tree:
        assert extract_tar(archive, tree) == 8
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o750
    assert (target / "d" / "empty").is_dir() and stat.S_IMODE((target / "d" / "empty").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "d" / "x.sh").stat().st_mode) == 0o755
    assert (target / "d" / "x.sh").stat().st_mtime == 1_700_000_000
    assert (target / "d").stat().st_mtime == 1_700_000_000  # set after its content was written
    assert os.readlink(target / "d" / "rel") == "x.sh" and os.readlink(target / "up") == "d/x.sh"
    assert stat.S_ISFIFO((target / "fifo").lstat().st_mode)
    assert (target / "ro" / "f").read_bytes() == b"in a read-only dir"
    assert stat.S_IMODE((target / "ro").stat().st_mode) == 0o555


def test_truncated_member_is_a_data_error(target: Path) -> None:
    data = _tar(_file("big", b"x" * 5000)).getvalue()[:2048]
    with SafeTree(target) as tree, pytest.raises(IntegrityError):
        extract_tar(io.BytesIO(data), tree)


def test_member_parts_normalises_and_refuses() -> None:
    assert member_parts(b"./a//b/./c/") == (b"a", b"b", b"c")
    assert member_parts(b".") == ()
    for bad in (b"", b"/etc/passwd", b"a/../b", b"..", b"a\x00b"):
        with pytest.raises(UnsafeMemberError):
            member_parts(bad)


@pytest.mark.parametrize(("parts", "link", "inside"), [
    ((b"a",), b"b", True), ((b"a", b"b"), b"../c", True), ((b"a", b"b"), b"../../c", False),
    ((b"a",), b"/etc", False), ((b"a",), b"..", False), ((b"a",), b"x/../y", False), ((b"a",), b"./x/./y", True),
    ((b"a", b"b", b"c"), b"../../d/e", True)])
def test_link_containment_rule(parts: tuple[bytes, ...], link: bytes, inside: bool) -> None:
    assert link_stays_inside(parts, link) is inside


def test_leftover_temps_of_an_interrupted_write_are_removed(target: Path) -> None:
    (target / "sub").mkdir()
    (target / "sub" / ".maintd-restore.123.4").write_bytes(b"half")
    (target / "keep").write_bytes(b"real")
    assert remove_leftover_temps(target) == 1
    assert sorted(p.name for p in target.rglob("*")) == ["keep", "sub"]


def test_a_failed_write_leaves_no_file_under_its_name(target: Path) -> None:
    class Broken(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise OSError("disk read error")

    with SafeTree(target) as tree, pytest.raises(OSError):
        tree.write_file((b"f",), Broken(), 10, None)
    assert list(target.iterdir()) == []


