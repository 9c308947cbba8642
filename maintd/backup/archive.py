"""Writing a POSIX tar stream ourselves: ustar headers, pax only when ustar cannot say it.

Why not tarfile: it keeps every member's TarInfo (~1 KB per file) and spends ~130 us per small file; this writer
keeps nothing per member and builds a header in a few microseconds. Readers (GNU tar, Python's tarfile, our
restore) see an ordinary archive.

- Names are raw bytes relative to the component root; ustar name/prefix when they fit, else a pax ``path``
  record (with ``hdrcharset=BINARY`` when the bytes are not UTF-8). Directories end in ``/``.
- uname/gname stay empty: tar then restores numeric ids (no per-file passwd look-ups).
- mtime in the header is whole seconds; the index keeps nanoseconds.
- Sockets have no tar type: they are listed in the index only.
- Hard links are stored as separate regular files (simplest correct; restore recreates independent copies).
- A file whose size changes while read never breaks the stream: the member is padded with zeros or cut to the size
  announced in its header, and the caller records a warning.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from typing import Callable

from .index import BLOCK as _BLOCK_TYPE
from .index import CHAR, DIR, FIFO, FILE, SYMLINK, Entry

BLOCK = 512
RECORD = 20 * BLOCK
READ_CHUNK = 1 << 20
FLUSH_AT = 1 << 20
DIRECT = 256 << 10
_ZEROS = bytes(READ_CHUNK)

_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_TYPEFLAG = {FILE: b"0", SYMLINK: b"2", CHAR: b"3", _BLOCK_TYPE: b"4", DIR: b"5", FIFO: b"6"}
_MAX_ID = 0o7777777
_MAX_SIZE = 0o77777777777

# Outcomes of copying a file's content into the archive.
OK, SHRANK, GREW, CHANGED, READ_ERROR = "ok", "shrank", "grew", "changed", "read-error"


def _checksum(header: bytes) -> int:
    # The ustar checksum is the plain sum of the 512 header bytes. Adler-32's low half is 1 + sum mod 65521, and
    # 256 bytes sum to at most 65280, so two halves give the exact sum at C speed (sum() over 512 ints is slower).
    return (zlib.adler32(header[:256]) & 0xFFFF) + (zlib.adler32(header[256:]) & 0xFFFF) - 2


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, or None when the path cannot be expressed there."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    cut = name.rfind(b"/", 0, 156)
    while cut > 0:
        if len(name) - cut - 1 <= 100:
            return name[:cut], name[cut + 1:]
        cut = name.rfind(b"/", 0, cut)
    return None


def pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    """Encode pax records ``"%d key=value\\n"`` (the length counts itself)."""
    out = []
    binary = False
    for key, value in records:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            binary = True
    if binary:
        records = [(b"hdrcharset", b"BINARY")] + records
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out.append(str(length).encode() + body)
    return b"".join(out)


def header(entry: Entry, size: int = 0) -> bytes:
    """The header block(s) of a member (a pax extended header first when needed). Sockets have no tar form: the
    caller skips them."""
    typeflag = _TYPEFLAG[entry.type]
    name = entry.path + b"/" if entry.type == DIR else entry.path
    pax: list[tuple[bytes, bytes]] = []
    split = _split_name(name)
    if split is None:
        pax.append((b"path", name))
        prefix, short = b"", name[:100]
    else:
        prefix, short = split
    link = entry.link or b""
    if len(link) > 100:
        pax.append((b"linkpath", link))
        link = link[:100]
    uid, gid = entry.uid, entry.gid
    if uid > _MAX_ID:
        pax.append((b"uid", str(uid).encode()))
        uid = 0
    if gid > _MAX_ID:
        pax.append((b"gid", str(gid).encode()))
        gid = 0
    if size > _MAX_SIZE:
        pax.append((b"size", str(size).encode()))
    mtime = entry.mtime_ns // 1_000_000_000
    if not 0 <= mtime <= _MAX_SIZE:
        pax.append((b"mtime", str(mtime).encode()))
        mtime = 0
    major = minor = 0
    if entry.rdev is not None:
        major, minor = os.major(entry.rdev), os.minor(entry.rdev)
    block = _USTAR.pack(short, b"%07o\0" % entry.mode, b"%07o\0" % uid, b"%07o\0" % gid,
                        b"%011o\0" % min(size, _MAX_SIZE), b"%011o\0" % mtime, b"        ", typeflag, link,
                        b"ustar\0", b"00", b"", b"", b"%07o\0" % major, b"%07o\0" % minor, prefix, b"")
    block = block[:148] + b"%06o\0 " % _checksum(block) + block[156:]
    if not pax:
        return block
    body = pax_records(pax)
    pax_block = _USTAR.pack(b"././@PaxHeader", b"%07o\0" % 0o644, b"%07o\0" % 0, b"%07o\0" % 0,
                            b"%011o\0" % len(body), b"%011o\0" % 0, b"        ", b"x", b"", b"ustar\0", b"00",
                            b"", b"", b"%07o\0" % 0, b"%07o\0" % 0, b"", b"")
    pax_block = pax_block[:148] + b"%06o\0 " % _checksum(pax_block) + pax_block[156:]
    return pax_block + body + _ZEROS[:_padding(len(body))] + block


def _padding(size: int) -> int:
    return -size % BLOCK


class TarWriter:
    """Writes members to ``sink`` (any ``write(bytes)``), batching small pieces into ~1 MiB writes."""

    def __init__(self, sink: Callable[[bytes], object], poll: Callable[[], None] | None = None) -> None:
        self._sink = sink
        self._poll = poll  # called between the chunks of a large file (cancellation, progress)
        self._pieces: list[bytes] = []
        self._pending = 0
        self.written = 0

    def _emit(self, data: bytes) -> None:
        # Small pieces (headers, small files, padding) are joined into ~1 MiB writes (one copy); large chunks go
        # to the sink as they are. A bytearray buffer regrown after each flush cost ~1 s per GB in copies.
        size = len(data)
        if size >= DIRECT:
            self.flush()
            self._sink(data)
            self.written += size
            return
        self._pieces.append(data)
        self._pending += size
        if self._pending >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._pieces:
            data = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
            self._pieces = []
            self._sink(data)
            self.written += self._pending
            self._pending = 0

    def add(self, entry: Entry) -> bool:
        """A member without content (dir, symlink, fifo, device). False for a socket (not stored in tar)."""
        if entry.type not in _TYPEFLAG or entry.type == FILE:
            return False
        self._emit(header(entry))
        return True

    def add_file(self, entry: Entry, fd: int) -> str:
        """Copy an open regular file as a member of ``entry.size`` bytes (the size announced in its header) and set
        ``entry.hash`` to the sha256 of the bytes stored. Returns OK, SHRANK (padded with zeros), GREW (cut),
        CHANGED (mtime/ctime moved while reading) or READ_ERROR (rest padded). Raises OSError only when the first
        read fails, before anything was written: the caller then leaves the file out."""
        size = entry.size
        digest = hashlib.sha256()
        first = os.read(fd, min(READ_CHUNK, size + 1))  # one byte more than announced reveals growth
        self._emit(header(entry, size))
        outcome = OK
        remaining = size
        chunk = first
        eof_seen = len(first) <= size and len(first) < min(READ_CHUNK, size + 1)
        while True:
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
                outcome = GREW
            if chunk:
                digest.update(chunk)
                self._emit(chunk)
                remaining -= len(chunk)
            if remaining == 0 or not chunk or outcome != OK:
                break
            if self._poll is not None:
                self._poll()
            try:
                request = min(READ_CHUNK, remaining + 1)
                chunk = os.read(fd, request)
            except OSError:
                outcome = READ_ERROR
                break
            eof_seen = len(chunk) < request
        if remaining > 0:
            if outcome == OK:
                outcome = SHRANK
            while remaining > 0:
                pad = _ZEROS[:min(remaining, READ_CHUNK)]
                digest.update(pad)
                self._emit(pad)
                remaining -= len(pad)
        elif outcome == OK and not eof_seen:
            try:
                if os.read(fd, 1):
                    outcome = GREW
            except OSError:
                outcome = READ_ERROR
        pad = _padding(size)
        if pad:
            self._emit(_ZEROS[:pad])
        entry.hash = digest.hexdigest()
        if outcome == OK:
            after = os.fstat(fd)
            if after.st_mtime_ns != entry.mtime_ns or after.st_ctime_ns != entry.ctime_ns:
                outcome = CHANGED
        return outcome

    def close(self) -> None:
        """End of archive: two zero blocks, padded to a whole 10 KiB record like GNU tar."""
        end = 2 * BLOCK
        total = self.written + self._pending + end
        self._emit(_ZEROS[:end + (-total % RECORD)])
        self.flush()
