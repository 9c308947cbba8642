"""The file index (docs/FORMAT.md, "Index"): entries, the change-detection rule, JSON-lines (de)serialisation.

Pure: no file system access. An index is a header line then one line per entry, sorted by path bytes. Paths are
bytes everywhere in memory; on disk they are ``p`` (UTF-8) or ``pb`` (base64 of raw bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
from typing import Any, Iterable, Iterator

from ..errors import IntegrityError

FORMAT = 1

FILE, DIR, SYMLINK, FIFO, SOCKET, CHAR, BLOCK = "f", "d", "l", "p", "s", "c", "b"
TYPES = frozenset({FILE, DIR, SYMLINK, FIFO, SOCKET, CHAR, BLOCK})

_jstr = json.encoder.encode_basestring  # C-accelerated; keeps non-ASCII as UTF-8
_loads = json.loads
_raw_decode = json.JSONDecoder().raw_decode  # skips json.loads' encoding detection: once per entry counts


def type_of(mode: int) -> str | None:
    """The index type letter of an st_mode, None for types we do not know."""
    fmt = stat.S_IFMT(mode)
    return _TYPE_BY_FMT.get(fmt)


_TYPE_BY_FMT = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK, stat.S_IFIFO: FIFO,
                stat.S_IFSOCK: SOCKET, stat.S_IFCHR: CHAR, stat.S_IFBLK: BLOCK}


class Entry:
    """One path present at backup time. ``hash``/``in_`` are set once a file's content is stored or carried over;
    ``warn`` marks content that changed while it was read (stored bytes are hashed, but are not a coherent
    snapshot of the file: restore and verify treat them with care)."""

    __slots__ = ("path", "type", "mode", "uid", "gid", "mtime_ns", "ctime_ns", "ino", "size", "hash", "link",
                 "in_", "rdev", "warn", "line")
    FIELDS = __slots__[:-1]

    def __init__(self, path: bytes, type: str, mode: int, uid: int, gid: int, mtime_ns: int, ctime_ns: int = 0,
                 ino: int = 0, size: int = 0, hash: str | None = None, link: bytes | None = None,
                 in_: str | None = None, rdev: int | None = None, warn: bool = False) -> None:
        self.path = path
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.ino = ino
        self.size = size
        self.hash = hash
        self.link = link
        self.in_ = in_
        self.rdev = rdev
        self.warn = warn
        self.line: str | None = None
        """The JSON line this entry was read from (an unchanged file's line is copied as it is)."""

    @classmethod
    def from_stat(cls, path: bytes, st: Any, link: bytes | None = None) -> "Entry":
        kind = type_of(st.st_mode) or FILE
        return cls(path, kind, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns,
                   st.st_ino, st.st_size if kind == FILE else 0, None, link, None,
                   st.st_rdev if kind in (CHAR, BLOCK) else None)

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and self._key() == other._key()

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.FIELDS if getattr(self, n) is not None)
        return f"Entry({fields})"

    @property
    def name(self) -> str:
        """The path for humans and messages (undecodable bytes escaped)."""
        return self.path.decode("utf-8", "backslashreplace")

    def without_detection_fields(self) -> "Entry":
        """A copy without ctime/inode (which a restore cannot reproduce): for comparing trees."""
        copy = Entry(*(getattr(self, n) for n in self.FIELDS))
        copy.ctime_ns = 0
        copy.ino = 0
        return copy


def unchanged(current: Entry, previous: Entry | None) -> bool:
    """The change-detection rule: a regular file's content may be taken from ``previous`` only when size, mtime,
    ctime, inode and mode all match and ``previous`` holds a usable stored content. A path absent from the parent
    (previous None) is new whatever its mtime."""
    return (previous is not None and current.type == FILE and previous.type == FILE
            and current.size == previous.size and current.mtime_ns == previous.mtime_ns
            and current.ctime_ns == previous.ctime_ns and current.ino == previous.ino
            and current.mode == previous.mode and previous.hash is not None and previous.in_ is not None
            and not previous.warn)


# -- serialisation -------------------------------------------------------------------------------------------------
def encode_header(component: str, root: str, backup_id: str) -> str:
    return json.dumps({"format": FORMAT, "component": component, "root": root, "backup": backup_id},
                      separators=(",", ":"), ensure_ascii=False) + "\n"


def _bytes_field(short: str, long: str, raw: bytes) -> str:
    try:
        return f'"{short}":{_jstr(raw.decode("utf-8"))}'
    except UnicodeDecodeError:
        return f'"{long}":"{base64.b64encode(raw).decode("ascii")}"'


def encode(entry: Entry) -> str:
    """One JSON line (with the newline). Hand-assembled: it runs once per file and json.dumps of a dict costs
    several times more. Key order is fixed: p/pb t m u g mt ct i s h l/lb in rdev w."""
    text = (f'{{{_bytes_field("p", "pb", entry.path)},"t":"{entry.type}","m":{entry.mode},"u":{entry.uid},'
            f'"g":{entry.gid},"mt":{entry.mtime_ns},"ct":{entry.ctime_ns},"i":{entry.ino}')
    if entry.type == FILE:
        text += f',"s":{entry.size}'
        if entry.hash is not None:
            text += f',"h":"{entry.hash}"'
    if entry.link is not None:
        text += "," + _bytes_field("l", "lb", entry.link)
    if entry.in_ is not None:
        text += f',"in":"{entry.in_}"'
    if entry.rdev is not None:
        text += f',"rdev":{entry.rdev}'
    if entry.warn:
        text += ',"w":1'
    return text + "}\n"


def decode(line: str | bytes) -> Entry:
    """Parse one entry line. Raises IntegrityError for anything that is not a well-formed entry."""
    try:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        obj = _raw_decode(line)[0]
        if "p" in obj:
            path = obj["p"].encode("utf-8")
        else:
            path = base64.b64decode(obj["pb"], validate=True)
        kind = obj["t"]
        if kind not in TYPES:
            raise ValueError(f"unknown type {kind!r}")
        link = obj.get("l")
        link_bytes = link.encode("utf-8") if link is not None else (
            base64.b64decode(obj["lb"], validate=True) if "lb" in obj else None)
        entry = Entry(path, kind, int(obj["m"]), int(obj["u"]), int(obj["g"]), int(obj["mt"]),
                      int(obj.get("ct", 0)), int(obj.get("i", 0)), int(obj.get("s", 0)), obj.get("h"), link_bytes,
                      obj.get("in"), obj.get("rdev"), bool(obj.get("w", 0)))
        entry.line = line if line.endswith("\n") else line + "\n"
        return entry
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as err:
        shown = line[:200] if isinstance(line, str) else line[:200].decode("utf-8", "replace")
        raise IntegrityError(f"damaged index entry: {shown!r} ({err})") from err


def decode_header(line: str | bytes) -> dict[str, Any]:
    try:
        header = _loads(line)
        if not isinstance(header, dict) or header.get("format") != FORMAT or "component" not in header:
            raise ValueError("not an index header")
        return header
    except ValueError as err:
        raise IntegrityError(f"damaged index header: {err}") from err


def parse_lines(lines: Iterable[bytes | str], *, where: str = "index") -> tuple[dict[str, Any], Iterator[Entry]]:
    """Split an index into its header and a lazy iterator of entries. The iterator checks that paths are strictly
    increasing (sorted, no duplicates) and raises IntegrityError naming ``where`` otherwise."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        raise IntegrityError(f"{where}: empty index (no header)")
    header = decode_header(first)

    def entries() -> Iterator[Entry]:
        last: bytes | None = None
        for line in iterator:
            if not line.strip():
                continue
            entry = decode(line)
            if last is not None and entry.path <= last:
                raise IntegrityError(f"{where}: entries out of order at {entry.name!r}")
            last = entry.path
            yield entry

    return header, entries()


def serialise(header: tuple[str, str, str], entries: Iterable[Entry]) -> Iterator[str]:
    """Header then entry lines: the whole index as text lines (tests, small indexes)."""
    yield encode_header(*header)
    for entry in entries:
        yield encode(entry)


class Lookup:
    """Merge-join helper over a sorted entry iterator: ``get(path)`` for non-decreasing paths returns the entry
    with that path or None, consuming the iterator once. Memory: one entry."""

    __slots__ = ("_iter", "_current")

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._iter = iter(entries)
        self._current: Entry | None = next(self._iter, None)

    def get(self, path: bytes) -> Entry | None:
        current = self._current
        while current is not None and current.path < path:
            current = next(self._iter, None)
        self._current = current
        if current is not None and current.path == path:
            return current
        return None
