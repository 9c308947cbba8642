"""Our tar reader against archives written by tarfile (ustar, pax, GNU) and by maintd's own writer."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maintd.backup.tar_reader import DIRECTORY, SYMLINK, TarReader
from maintd.errors import IntegrityError

names = st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b and b"/" not in b
                                                            and b not in (b".", b"..")),
                 min_size=1, max_size=8).map(lambda parts: b"/".join(parts))


def _write(members: list[tuple[bytes, bytes]], fmt: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read(data: bytes) -> list[tuple[bytes, bytes]]:
    reader = TarReader(io.BytesIO(data))
    return [(m.name, reader.read()) for m in reader]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, st.binary(max_size=1500)), max_size=6, unique_by=lambda m: m[0]),
       st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
def test_members_round_trip_with_any_bytes_names(members: list[tuple[bytes, bytes]], fmt: int) -> None:
    assert _read(_write(members, fmt)) == members


def test_unread_content_is_skipped_and_types_and_fields_come_through() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        big = tarfile.TarInfo("big")
        big.size, big.uid, big.mtime = 3000, 4_000_000_000, 1_700_000_000.5
        tar.addfile(big, io.BytesIO(b"z" * 3000))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "t" * 150
        tar.addfile(link)
        folder = tarfile.TarInfo("d")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o750
        tar.addfile(folder)
    members = list(TarReader(io.BytesIO(buffer.getvalue())))
    assert [m.name for m in members] == [b"big", b"l", b"d/"]
    assert members[0].uid == 4_000_000_000 and members[0].mtime == 1_700_000_000.5 and members[0].is_file
    assert members[1].type == SYMLINK and members[1].linkname == b"t" * 150
    assert members[2].type == DIRECTORY and members[2].mode == 0o750


def test_a_damaged_header_is_a_data_error_naming_its_offset() -> None:
    data = bytearray(_write([(b"a", b"x" * 600), (b"b", b"y")], tarfile.USTAR_FORMAT))
    data[512 + 1024 + 3] ^= 0xFF  # the second member's header
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        _read(bytes(data))


def test_a_cut_stream_is_a_data_error() -> None:
    data = _write([(b"a", b"x" * 6000)], tarfile.USTAR_FORMAT)
    for cut in (100, 512 + 100, len(data) - 10240):
        with pytest.raises(IntegrityError, match="ends"):
            _read(data[:cut])
