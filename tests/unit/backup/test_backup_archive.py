"""Our tar writer against Python's tarfile as the reader: names, pax, types, live files."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from maintd.backup import archive, index
from maintd.backup.index import Entry


def _write(entries: list[tuple[Entry, bytes | None]], tmp_path: Path) -> bytes:
    out = io.BytesIO()
    tar = archive.TarWriter(out.write)
    for number, (entry, content) in enumerate(entries):
        if content is None:
            tar.add(entry)
            continue
        path = tmp_path / f"content{number}"
        path.write_bytes(content)
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            entry.mtime_ns, entry.ctime_ns = st.st_mtime_ns, st.st_ctime_ns
            assert tar.add_file(entry, fd) == archive.OK
        finally:
            os.close(fd)
    tar.close()
    return out.getvalue()


def test_tarfile_reads_names_types_and_contents(tmp_path: Path) -> None:
    long_name = b"d" * 120 + b"/" + b"f" * 90
    very_long = b"x" * 300
    entries = [
        (Entry(b"dir", index.DIR, 0o750, 1000, 1000, 5_000_000_000), None),
        (Entry(b"dir/file", index.FILE, 0o640, 1000, 1000, 0, size=5), b"hello"),
        (Entry(long_name, index.FILE, 0o644, 0, 0, 0, size=3), b"abc"),
        (Entry(very_long, index.FILE, 0o644, 0, 0, 0, size=0), b""),
        (Entry(b"bad\xffname", index.FILE, 0o600, 0, 0, 0, size=2), b"zz"),
        (Entry(b"b" * 101 + b"\xff", index.FILE, 0o600, 0, 0, 0, size=1), b"!"),
        (Entry(b"link", index.SYMLINK, 0o777, 0, 0, 0, link=b"l" * 150), None),
        (Entry(b"fifo", index.FIFO, 0o644, 0, 0, 0), None),
        (Entry(b"huge-uid", index.DIR, 0o755, 2**31, 5, 0), None),
    ]
    data = _write(entries, tmp_path)
    assert len(data) % archive.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        members = tar.getmembers()
        names = [os.fsencode(m.name) for m in members]
        assert names == [e.path for e, _ in entries]
        by_name = {os.fsencode(m.name): m for m in members}
        assert by_name[b"dir"].isdir() and by_name[b"dir"].mode == 0o750 and by_name[b"dir"].mtime == 5
        assert tar.extractfile(by_name[b"dir/file"]).read() == b"hello"  # type: ignore[union-attr]
        assert tar.extractfile(by_name[long_name]).read() == b"abc"  # type: ignore[union-attr]
        assert tar.extractfile(by_name[b"bad\xffname"]).read() == b"zz"  # type: ignore[union-attr]
        assert by_name[b"link"].issym() and by_name[b"link"].linkname == "l" * 150
        assert by_name[b"fifo"].isfifo()
        assert by_name[b"huge-uid"].uid == 2**31


def test_sockets_are_not_archive_members() -> None:
    tar = archive.TarWriter(io.BytesIO().write)
    assert tar.add(Entry(b"sock", index.SOCKET, 0o755, 0, 0, 0)) is False


def _live(tmp_path: Path, announced: int, actual: bytes) -> tuple[str, Entry, bytes]:
    path = tmp_path / "live"
    path.write_bytes(actual)
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    entry = Entry(b"live", index.FILE, 0o644, 0, 0, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, size=announced)
    out = io.BytesIO()
    tar = archive.TarWriter(out.write)
    try:
        outcome = tar.add_file(entry, fd)
    finally:
        os.close(fd)
    tar.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:") as reader:
        member = reader.getmembers()[0]
        stored = reader.extractfile(member).read()  # type: ignore[union-attr]
    return outcome, entry, stored


def test_a_file_that_shrank_is_padded_to_its_header_size(tmp_path: Path) -> None:
    outcome, entry, stored = _live(tmp_path, 10, b"abc")
    assert outcome == archive.SHRANK
    assert stored == b"abc" + bytes(7)
    assert entry.hash == hashlib.sha256(stored).hexdigest()


def test_a_file_that_grew_is_cut_to_its_header_size(tmp_path: Path) -> None:
    outcome, entry, stored = _live(tmp_path, 3, b"abcdef")
    assert outcome == archive.GREW and stored == b"abc"
    assert entry.hash == hashlib.sha256(b"abc").hexdigest()


def test_a_large_file_is_copied_whole(tmp_path: Path) -> None:
    content = os.urandom(3 * archive.READ_CHUNK + 17)
    outcome, entry, stored = _live(tmp_path, len(content), content)
    assert outcome == archive.OK and stored == content
    assert entry.hash == hashlib.sha256(content).hexdigest()
