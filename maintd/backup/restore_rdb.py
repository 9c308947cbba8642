"""The Redis snapshot of a backup, decrypted into a file: size and sha256 checked against the manifest."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from ..edges.gpg import Gpg
from ..errors import IntegrityError
from . import reader
from .catalog import Catalog, Manifest
from .streams import CHUNK


def write_rdb(env: Any, manifest: Manifest, path: Path) -> int:
    """Decrypt the backup's RDB into ``path`` via a temporary name (fsync, rename). Returns the size. ``env``: a
    RestoreEnv (its catalog and key). The file is 0600 (Redis runs as its own user: the operator chowns it), or
    has the mode of the RDB it replaces."""
    tmp = path.with_name(f".{path.name}.restoring")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o600
    try:
        size = copy_rdb(env.catalog, env.gpg, manifest, tmp)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def copy_rdb(catalog: Catalog, gpg: Gpg, manifest: Manifest, dest: Path) -> int:
    """Decrypt the backup's RDB into the new file ``dest`` and fsync it; size and sha256 are checked against the
    manifest (IntegrityError). Returns the size."""
    expected = manifest.redis or {}
    digest = hashlib.sha256()
    size = 0
    with reader.open_object(catalog, gpg, manifest.id, manifest.redis_name(), manifest) as stream, \
            open(dest, "xb", opener=_owner_only) as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if "rdb_size" in expected and size != int(expected["rdb_size"]):
        raise IntegrityError(f"backup {manifest.id}: RDB is {size} bytes, the manifest says {expected['rdb_size']}")
    if expected.get("rdb_sha256") and digest.hexdigest() != expected["rdb_sha256"]:
        raise IntegrityError(f"backup {manifest.id}: RDB sha256 does not match the manifest")
    return size


def _owner_only(path: str, flags: int) -> int:
    """Created 0600: a Redis dataset is never world-readable."""
    return os.open(path, flags, 0o600)
