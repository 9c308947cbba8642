"""Reading backups back: the API restore, verify, drill and the backup's change detection use.

- ``open_object(catalog, gpg, backup_id, name)``: the plaintext payload of one object as a buffered binary stream;
  at its end the object's size and sha256 (manifest), gpg's MDC and the zstd checksum are checked
  (IntegrityError / GpgError). Read to the end before trusting the bytes.
- ``check_object(catalog, backup_id, name)``: size and sha256 of the stored file only (no key needed): what a
  restore runs over the whole chain before writing anything.
- ``open_index(catalog, gpg, backup_id, component)``: a context manager yielding ``(header, entries)``, the
  entries a lazy iterator of ``index.Entry`` sorted by path bytes. ``read_index`` is the same as a generator.
- ``open_cached_index``: the plaintext copy kept in ``state_dir/index-cache`` (public-key mode).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterator

import zstandard

from ..edges.gpg import Gpg
from ..errors import IntegrityError
from . import index
from .catalog import Catalog, Manifest
from .streams import CHUNK, file_sha256, open_payload

CACHE_SUFFIX = ".index.zst"


def open_object(catalog: Catalog, gpg: Gpg, backup_id: str, name: str,
                manifest: Manifest | None = None) -> io.BufferedReader:
    manifest = manifest or catalog.get(backup_id)
    expect = manifest.object_info(name)
    return open_payload(catalog.object_path(backup_id, name), gpg, compression=manifest.compression,
                        expect=expect, what=f"backup {backup_id} object {name}")


def check_object(catalog: Catalog, backup_id: str, name: str, manifest: Manifest | None = None) -> None:
    manifest = manifest or catalog.get(backup_id)
    expect = manifest.object_info(name)
    path = catalog.object_path(backup_id, name)
    try:
        actual = file_sha256(path)
    except FileNotFoundError as err:
        raise IntegrityError(f"backup {backup_id} object {name}: missing") from err
    except OSError as err:
        raise IntegrityError(f"backup {backup_id} object {name}: unreadable ({err.strerror})") from err
    if actual.size != expect.size:
        raise IntegrityError(f"backup {backup_id} object {name}: size {actual.size}, manifest says {expect.size}")
    if actual.sha256 != expect.sha256:
        raise IntegrityError(f"backup {backup_id} object {name}: sha256 mismatch (damaged or altered)")


def _lines(stream: Any) -> Iterator[bytes]:
    # BufferedReader iteration yields lines; wrap for clarity.
    yield from stream


@contextlib.contextmanager
def open_index(catalog: Catalog, gpg: Gpg, backup_id: str, component: str,
               manifest: Manifest | None = None) -> Iterator[tuple[dict[str, Any], Iterator[index.Entry]]]:
    manifest = manifest or catalog.get(backup_id)
    name = manifest.index_name(component)
    stream = open_object(catalog, gpg, backup_id, name, manifest)
    try:
        header, entries = index.parse_lines(_lines(stream), where=f"backup {backup_id} object {name}")
        yield header, entries
    finally:
        stream.close()


def read_index(catalog: Catalog, gpg: Gpg, backup_id: str, component: str,
               manifest: Manifest | None = None) -> Iterator[index.Entry]:
    """The entries of one component's index; the object's checks run when the iterator is exhausted."""
    with open_index(catalog, gpg, backup_id, component, manifest) as (_header, entries):
        yield from entries


def cache_path(catalog: Catalog, backup_id: str, component: str) -> Path | None:
    directory = catalog.cache_dir(backup_id)
    return directory / f"{component}{CACHE_SUFFIX}" if directory is not None else None


@contextlib.contextmanager
def open_cached_index(path: Path) -> Iterator[tuple[dict[str, Any], Iterator[index.Entry]]]:
    """The plaintext (zstd) cache copy of an index. IntegrityError when it is damaged."""
    handle = path.open("rb")
    reader = zstandard.ZstdDecompressor().stream_reader(handle, read_size=CHUNK, closefd=False)
    stream = io.BufferedReader(_ZstdRaw(reader, str(path)), buffer_size=CHUNK)
    try:
        header, entries = index.parse_lines(_lines(stream), where=str(path))
        yield header, entries
    finally:
        stream.close()
        handle.close()


class _ZstdRaw(io.RawIOBase):
    def __init__(self, reader: Any, where: str) -> None:
        super().__init__()
        self._reader = reader
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._reader.readinto(buffer)
        except zstandard.ZstdError as err:
            raise IntegrityError(f"{self._where}: damaged ({err})") from err
