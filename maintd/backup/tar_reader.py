"""Reading a POSIX tar stream ourselves: ustar, pax (x and g) and GNU long names, bytes names throughout.

Why not tarfile: in stream mode it keeps every TarInfo (unbounded memory over 200k members), decodes names to
str, and costs several times more per member. This reader keeps one member at a time; a member's content is read
with ``read(n)`` before moving on (what is left unread is skipped). Every header's checksum is checked; a short or
damaged stream raises IntegrityError.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, Iterator

from ..errors import IntegrityError

BLOCK = 512
READ_AHEAD = 1 << 20

REGULAR = frozenset({b"0", b"\0", b"7"})
HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = b"1", b"2", b"3", b"4", b"5", b"6"


class TarMember:
    """One member. ``name``, ``type``, ``size``, ``linkname`` are parsed at once; mode, owner and mtime when asked
    (a restore driven by the index never needs them: that saves most of the per-member parsing)."""

    __slots__ = ("name", "type", "size", "linkname", "offset", "_block", "_pax")

    def __init__(self, name: bytes, type: bytes, size: int, linkname: bytes, offset: int, block: bytes,
                 pax: dict[bytes, bytes]) -> None:
        self.name = name
        self.type = type
        self.size = size
        self.linkname = linkname
        self.offset = offset
        """Byte offset of the member's (first) header in the stream: for error messages."""
        self._block = block
        self._pax = pax

    @property
    def is_file(self) -> bool:
        return self.type in REGULAR

    def _field(self, key: bytes, start: int, end: int) -> int:
        if key in self._pax:
            try:
                return int(self._pax[key])
            except ValueError as err:
                raise IntegrityError(f"damaged pax {key.decode()} at byte {self.offset}") from err
        return _number(self._block[start:end], key.decode(), self.offset)

    @property
    def mode(self) -> int:
        return _number(self._block[100:108], "mode", self.offset)

    @property
    def uid(self) -> int:
        return self._field(b"uid", 108, 116)

    @property
    def gid(self) -> int:
        return self._field(b"gid", 116, 124)

    @property
    def mtime(self) -> float:
        if b"mtime" in self._pax:
            try:
                return float(self._pax[b"mtime"])
            except ValueError as err:
                raise IntegrityError(f"damaged pax mtime at byte {self.offset}") from err
        return float(_number(self._block[136:148], "mtime", self.offset))


def _number(field: bytes, what: str, offset: int) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for values that do not fit the octal field
        value = int.from_bytes(field, "big", signed=False) & ~(0x80 << (8 * (len(field) - 1)))
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError as err:
        raise IntegrityError(f"damaged tar header at byte {offset}: bad {what} field {field!r}") from err


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _pax(body: bytes, offset: int) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(body):
        if body[pos:pos + 1] == b"\0":
            break
        space = body.find(b" ", pos)
        try:
            length = int(body[pos:space])
        except ValueError as err:
            raise IntegrityError(f"damaged pax header at byte {offset}") from err
        record = body[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise IntegrityError(f"damaged pax record at byte {offset}")
        key, value = record[:-1].split(b"=", 1)
        records[key] = value
        pos += length
    return records


class TarReader:
    """``for member in TarReader(stream): ... reader.read(n) ...``: members in stream order."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = b""
        self._pos = 0  # into _buffer
        self._offset = 0  # bytes consumed from the stream so far
        self._left = 0  # unread content of the current member
        self._pad = 0  # padding after it
        self._globals: dict[bytes, bytes] = {}

    # -- raw reading --------------------------------------------------------------------------------------------
    def _take(self, n: int) -> bytes:
        """Exactly n bytes (short only at the end of the stream)."""
        available = len(self._buffer) - self._pos
        if available >= n:
            out = self._buffer[self._pos:self._pos + n]
            self._pos += n
            self._offset += n
            return out
        parts = [self._buffer[self._pos:]]
        need = n - available
        self._buffer, self._pos = b"", 0
        while need > 0:
            chunk = self._stream.read(max(READ_AHEAD, need))
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buffer, self._pos = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        out = b"".join(parts)
        self._offset += len(out)
        return out

    def _skip(self, n: int) -> None:
        while n > 0:
            got = len(self._take(min(n, READ_AHEAD)))
            if not got:
                raise IntegrityError(f"tar stream ends early (at byte {self._offset})")
            n -= got

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of the current member's content (all that is left with n < 0)."""
        if n < 0 or n > self._left:
            n = self._left
        if n == 0:
            return b""
        data = self._take(n)
        if len(data) < n:
            raise IntegrityError(f"tar stream ends inside a member (at byte {self._offset})")
        self._left -= n
        return data

    # -- members -------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TarMember]:
        while True:
            member = self._next()
            if member is None:
                return
            yield member

    def _next(self) -> TarMember | None:
        self._skip(self._left + self._pad)
        self._left = self._pad = 0
        extended: dict[bytes, bytes] = {}
        long_name = long_link = None
        first_offset = self._offset
        while True:
            offset = self._offset
            block = self._take(BLOCK)
            if len(block) < BLOCK:
                if not block:
                    raise IntegrityError(f"tar stream ends without its end-of-archive blocks (byte {offset})")
                raise IntegrityError(f"tar stream ends inside a header (at byte {offset})")
            if block.count(0) == BLOCK:
                return None  # end of archive (the second zero block and record padding are not needed)
            self._check_sum(block, offset)
            kind = block[156:157]
            size = _number(block[124:136], "size", offset)
            if kind in (b"x", b"g", b"L", b"K"):
                body = self._take(size)
                if len(body) < size:
                    raise IntegrityError(f"tar stream ends inside an extended header (at byte {offset})")
                self._skip(-size % BLOCK)
                if kind == b"x":
                    extended.update(_pax(body, offset))
                elif kind == b"g":
                    self._globals.update(_pax(body, offset))
                elif kind == b"L":
                    long_name = _cstring(body)
                else:
                    long_link = _cstring(body)
                continue
            return self._member(block, kind, size, {**self._globals, **extended}, long_name, long_link,
                                first_offset)

    def _member(self, block: bytes, kind: bytes, size: int, pax: dict[bytes, bytes], long_name: bytes | None,
                long_link: bytes | None, offset: int) -> TarMember:
        name = _cstring(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _cstring(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        name = pax.get(b"path", long_name if long_name is not None else name)
        linkname = pax.get(b"linkpath", long_link if long_link is not None else _cstring(block[157:257]))
        if b"size" in pax:
            try:
                size = int(pax[b"size"])
            except ValueError as err:
                raise IntegrityError(f"damaged pax size at byte {offset}") from err
        if kind in REGULAR or kind not in (HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO):
            self._left, self._pad = size, -size % BLOCK
        else:
            size = 0  # headers of links, dirs and devices carry no content
        if kind == b"\0" and name.endswith(b"/"):
            kind = DIRECTORY  # old tar: a regular-typed member named with a trailing slash is a directory
        return TarMember(name, kind, size, linkname, offset, block, pax)

    @staticmethod
    def _check_sum(block: bytes, offset: int) -> None:
        stored = _number(block[148:156], "checksum", offset)
        # Plain byte sum with the checksum field as spaces; adler32's low half is 1 + sum mod 65521 and 256 bytes
        # sum to at most 65280, so two halves give the exact sum at C speed.
        computed = ((zlib.adler32(block[:148] + b"        " + block[156:256]) & 0xFFFF)
                    + (zlib.adler32(block[256:]) & 0xFFFF) - 2)
        if stored != computed:
            raise IntegrityError(f"damaged tar header at byte {offset}: checksum mismatch")
