"""The index format and the change-detection rule: round trips and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maintd.backup import index
from maintd.backup.index import Entry
from maintd.errors import IntegrityError

names = st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b)
ints = st.integers(min_value=0, max_value=2**63)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(sorted(index.TYPES)))
    entry = Entry(draw(names), kind, draw(st.integers(0, 0o7777)), draw(st.integers(0, 2**32)),
                  draw(st.integers(0, 2**32)), draw(st.integers(-2**62, 2**62)), draw(ints), draw(ints))
    if kind == index.FILE:
        entry.size = draw(ints)
        entry.hash = hashlib.sha256(draw(st.binary(max_size=8))).hexdigest()
        entry.in_ = draw(st.sampled_from(["20261203T173000.123456Z-full", "20261203T180000.000000Z-incremental"]))
        entry.warn = draw(st.booleans())
    if kind == index.SYMLINK:
        entry.link = draw(names)
    if kind in (index.CHAR, index.BLOCK):
        entry.rdev = draw(st.integers(0, 2**32))
    return entry


@given(entries())
def test_every_entry_survives_a_round_trip(entry: Entry) -> None:
    line = index.encode(entry)
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert index.decode(line) == entry
    assert index.decode(line.encode("utf-8")) == entry


def test_non_utf8_paths_and_links_are_stored_as_base64() -> None:
    entry = Entry(b"bad\xffname", index.SYMLINK, 0o777, 0, 0, 1, link=b"to\xfe")
    line = index.encode(entry)
    assert '"pb":' in line and '"lb":' in line and '"p":' not in line
    assert index.decode(line).path == b"bad\xffname"


def test_utf8_paths_are_plain_strings() -> None:
    line = index.encode(Entry("grüße/ok \"quoted\"".encode(), index.FILE, 0o644, 0, 0, 1, size=0, hash="0" * 64))
    assert '"p":"grüße/ok \\"quoted\\""' in line


def _file(**changes: object) -> Entry:
    base = dict(path=b"a", type=index.FILE, mode=0o644, uid=1, gid=1, mtime_ns=10, ctime_ns=20, ino=30, size=40,
                hash="h" * 64, in_="B1")
    base.update(changes)
    return Entry(**base)  # type: ignore[arg-type]


@given(field=st.sampled_from(["size", "mtime_ns", "ctime_ns", "ino", "mode"]), delta=st.integers(1, 1000))
def test_any_detection_field_that_differs_means_changed(field: str, delta: int) -> None:
    previous = _file()
    current = _file(hash=None, in_=None)
    setattr(current, field, getattr(current, field) + delta)
    assert not index.unchanged(current, previous)


def test_identical_stat_means_unchanged() -> None:
    assert index.unchanged(_file(hash=None, in_=None), _file())


def test_a_path_absent_from_the_parent_is_new_even_with_an_old_mtime() -> None:
    assert not index.unchanged(_file(mtime_ns=1), None)


def test_content_marked_as_changed_while_read_is_read_again() -> None:
    assert not index.unchanged(_file(), _file(warn=True))


def test_type_changes_are_changes() -> None:
    assert not index.unchanged(_file(), _file(type=index.SYMLINK))


def test_parse_lines_refuses_entries_out_of_order() -> None:
    lines = list(index.serialise(("data", "/x", "id"), [_file(path=b"b"), _file(path=b"a")]))
    header, parsed = index.parse_lines(lines)
    assert header["component"] == "data"
    with pytest.raises(IntegrityError, match="out of order"):
        list(parsed)


def test_parse_lines_refuses_a_damaged_line() -> None:
    lines = [index.encode_header("data", "/x", "id"), '{"p":"a","t":"f"\n']
    _, parsed = index.parse_lines(lines)
    with pytest.raises(IntegrityError, match="damaged index entry"):
        list(parsed)


@given(st.lists(names, unique=True), st.lists(names, unique=True))
def test_lookup_finds_exactly_the_paths_of_the_parent(parent: list[bytes], wanted: list[bytes]) -> None:
    lookup = index.Lookup([_file(path=p) for p in sorted(parent)])
    found = {p for p in sorted(wanted) if lookup.get(p) is not None}
    assert found == set(parent) & set(wanted)
