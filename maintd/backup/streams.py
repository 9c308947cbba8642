"""Objects on disk: payload -> compress (zstd or gzip) -> encrypt (gpg) -> hash -> file, and back.

``ObjectWriter`` writes ``<name>.tmp`` in bounded memory and returns the object's size and sha256 (of the bytes on
disk, as the manifest records them). ``PayloadReader`` is the reverse: a readable stream of the plaintext that
checks, when it reaches the end, the gpg status, the zstd checksum and the object's size and sha256.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import zstandard

from ..errors import GpgError, IntegrityError, StorageError
from ..edges.gpg import Gpg

CHUNK = 1 << 20
JOB_SIZE = 4 << 20
SUFFIX = {"zstd": "zst", "gzip": "gz"}
DEFAULT_LEVEL = {"zstd": 3, "gzip": 6}


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    sha256: str


def storage_error(err: OSError, path: Path | str, what: str) -> StorageError:
    """A clear message for a failed write: full disk, quota, read-only file system, permissions."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"no space left on {_mount_of(Path(path))} while writing {what} ({path})")
    if err.errno == errno.EFBIG:
        return StorageError(f"file too large for {_mount_of(Path(path))} while writing {what} ({path})")
    return StorageError(f"cannot write {what} ({path}): {err.strerror or err}")


def _mount_of(path: Path) -> str:
    path = path.absolute()
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return str(path)


def compressor(kind: str, level: int | None, threads: int, sink: Any) -> Any:
    """A writer that compresses into ``sink`` (``write``); ``close()`` ends the frame (not the sink)."""
    if kind == "zstd":
        # threads < 0: compress in the calling thread (small streams such as indexes: no worker buffers).
        workers = 0 if threads < 0 else (threads or (os.cpu_count() or 1))
        # zstd's multithreaded mode buffers several jobs of input and output per worker; its default job size
        # (4 windows, 8 MiB at level 3) let peak memory reach ~100 MB when the sink is slow. 4 MiB jobs bound it.
        params = zstandard.ZstdCompressionParameters.from_level(
            level or DEFAULT_LEVEL["zstd"], threads=workers, job_size=JOB_SIZE if workers > 1 else 0,
            write_checksum=True, write_content_size=False)
        cctx = zstandard.ZstdCompressor(compression_params=params)
        return cctx.stream_writer(sink, write_size=CHUNK, closefd=False)
    if kind == "gzip":
        return _GzipWriter(sink, level or DEFAULT_LEVEL["gzip"])
    raise ValueError(f"unknown compression {kind!r}")


class _GzipWriter:
    def __init__(self, sink: Any, level: int) -> None:
        self._sink = sink
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip header and trailer

    def write(self, data: bytes) -> int:
        out = self._zlib.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._zlib.flush())


class ObjectWriter:
    """Writes one object to ``path`` + ``.tmp`` (the caller renames it after ``close``)."""

    def __init__(self, path: Path, gpg: Gpg, *, compression: str = "zstd", level: int | None = None,
                 threads: int = 0, what: str | None = None) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.what = what or path.name
        self._digest = hashlib.sha256()
        self.size = 0
        self.plain_bytes = 0
        try:
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise storage_error(err, self.tmp, self.what) from err
        try:
            self._encrypt = gpg.encrypt_stream(self._to_file)
        except BaseException:
            os.close(self._fd)
            raise
        self._compress = compressor(compression, level, threads, self._encrypt)
        self._closed = False

    def _to_file(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(chunk)

    def write(self, data: bytes) -> int:
        try:
            self._compress.write(data)
        except OSError as err:
            raise storage_error(err, self.tmp, self.what) from err
        except zstandard.ZstdError as err:
            cause = self._encrypt.sink_error
            if isinstance(cause, OSError):
                raise storage_error(cause, self.tmp, self.what) from err
            raise
        self.plain_bytes += len(data)
        return len(data)

    def close(self) -> ObjectInfo:
        """Finish compression and encryption, fsync; returns the object's size and sha256."""
        if self._closed:
            raise ValueError("ObjectWriter closed twice")
        self._closed = True
        try:
            self._compress.close()
            self._encrypt.close()
            os.fsync(self._fd)
        except OSError as err:
            self._encrypt.abort()
            raise storage_error(err, self.tmp, self.what) from err
        except BaseException:
            self._encrypt.abort()
            raise
        finally:
            os.close(self._fd)
        return ObjectInfo(self.size, self._digest.hexdigest())

    def abort(self) -> None:
        """Stop gpg, close and remove the temporary file. Never raises."""
        if not self._closed:
            self._closed = True
            self._encrypt.abort()
            try:
                os.close(self._fd)
            except OSError:
                pass
        try:
            self.tmp.unlink()
        except OSError:
            pass


class _HashingSource:
    """The encrypted file as gpg reads it, hashed on the way."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(CHUNK if size is None or size < 0 else max(size, CHUNK))
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def file_sha256(path: Path) -> ObjectInfo:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ObjectInfo(size, digest.hexdigest())


class PayloadReader(io.RawIOBase):
    """The plaintext of an object. At the end of the data it checks, in order: that the file's size and sha256
    equal ``expect`` (when given; IntegrityError naming ``what``), gpg's verdict (GpgError: wrong key) and the
    compression's own checksum. Read to the end (``read()`` returns b"") before trusting the bytes."""

    def __init__(self, path: Path, gpg: Gpg, *, compression: str, expect: ObjectInfo | None = None,
                 what: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.what = what or str(path)
        self.expect = expect
        try:
            self._file = path.open("rb", buffering=0)
        except FileNotFoundError as err:
            raise IntegrityError(f"{self.what}: object missing ({path})") from err
        except OSError as err:
            raise IntegrityError(f"{self.what}: cannot read {path}: {err.strerror}") from err
        self._source = _HashingSource(self._file)
        self._plain = gpg.decrypt_stream(self._source)
        self._compression = compression
        if compression == "zstd":
            self._reader: Any = zstandard.ZstdDecompressor().stream_reader(self._plain, read_size=CHUNK,
                                                                           read_across_frames=True, closefd=False)
        elif compression == "gzip":
            self._reader = _GzipReader(self._plain)
        else:
            raise IntegrityError(f"{self.what}: unknown compression {compression!r}")
        self._done = False
        self.plain_size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        try:
            count = self._reader.readinto(buffer)
        except (zstandard.ZstdError, zlib.error) as err:
            self._fail_checked(f"cannot decompress: {err}", err)
        except GpgError as err:
            self._fail_checked(err.message, err)
        if count == 0:
            self._done = True
            self._finish()
            return 0
        self.plain_size += count
        return count

    def _fail_checked(self, message: str, err: BaseException) -> None:
        """A failure mid-stream: a damaged file explains it best, else re-raise as is."""
        self._done = True
        self._check_file_hash(full=True)
        if isinstance(err, GpgError):
            raise err
        raise IntegrityError(f"{self.what}: {message}") from err

    def _check_file_hash(self, *, full: bool) -> None:
        if self.expect is None:
            return
        actual = file_sha256(self.path) if full else ObjectInfo(self._source.size, self._source.digest.hexdigest())
        if actual.size != self.expect.size:
            raise IntegrityError(f"{self.what}: size {actual.size} but the manifest says {self.expect.size}")
        if actual.sha256 != self.expect.sha256:
            raise IntegrityError(f"{self.what}: sha256 mismatch (damaged or altered)")

    def _finish(self) -> None:
        try:
            while self._plain.read(CHUNK):  # let gpg finish: it checks the MDC at the very end
                pass
        except GpgError as err:
            self._fail_checked(err.message, err)
        self._source.drain()
        self._check_file_hash(full=False)

    def close(self) -> None:
        if not self.closed:
            try:
                self._plain.close()
            finally:
                self._file.close()
        super().close()


class _GzipReader:
    def __init__(self, source: Any) -> None:
        self._source = source
        self._zlib = zlib.decompressobj(31)
        self._pending = b""
        self._eof = False

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._eof:
            data = self._zlib.unconsumed_tail or self._source.read(CHUNK)
            if not data:
                self._pending = self._zlib.flush()
                self._eof = True
                if not self._zlib.eof:
                    raise zlib.error("truncated gzip stream")
                break
            self._pending = self._zlib.decompress(data, 4 * CHUNK)  # bounded output per step
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_payload(path: Path, gpg: Gpg, *, compression: str, expect: ObjectInfo | None = None,
                 what: str | None = None) -> io.BufferedReader:
    """A buffered plaintext stream of an object (see PayloadReader)."""
    return io.BufferedReader(PayloadReader(path, gpg, compression=compression, expect=expect, what=what),
                             buffer_size=CHUNK)


SinkFunc = Callable[[bytes], None]
