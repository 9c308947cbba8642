"""The Redis part of a backup: BGSAVE through edges/redis, then the RDB file through compress+encrypt."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from ..edges import redis as redis_edge
from ..edges.gpg import Gpg
from ..errors import IntegrityError, MaintdError
from .catalog import Staging
from .streams import CHUNK, ObjectInfo, ObjectWriter


@dataclass(frozen=True)
class RdbCopy:
    name: str
    info: ObjectInfo
    manifest: dict[str, Any]


def snapshot(settings_redis: Any, cancel: threading.Event | None) -> redis_edge.Snapshot:
    """BGSAVE and wait for it. UnavailableError when Redis cannot be reached, MaintdError when it refuses."""
    with redis_edge.connect(settings_redis) as client:
        client.ping()
        return client.snapshot(timeout=settings_redis.save_timeout, cancel=cancel)


def store(snap: redis_edge.Snapshot, staging: Staging, gpg: Gpg, *, compression: str, level: int | None,
          threads: int) -> RdbCopy:
    """Copy the RDB file Redis wrote into ``redis.rdb.*.gpg``; the manifest part records its keys, size, sha256
    and LASTSAVE. The file is opened once: a later save renaming a new RDB into place does not disturb the copy."""
    name = f"redis.rdb.{'zst' if compression == 'zstd' else 'gz'}.gpg"
    digest = hashlib.sha256()
    size = 0
    try:
        handle = snap.path.open("rb")
    except OSError as err:
        raise MaintdError(f"cannot read the Redis RDB {snap.path}: {err.strerror} (maintd must be able to read "
                          "Redis's dir)") from err
    writer = ObjectWriter(staging.object_path(name), gpg, compression=compression, level=level, threads=threads,
                          what=name)
    try:
        with handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
        if size == 0:
            raise IntegrityError(f"the Redis RDB {snap.path} is empty")
        info = writer.close()
    except BaseException:
        writer.abort()
        raise
    staging.finish_object(name)
    return RdbCopy(name, info, {"keys": dict(snap.keys), "rdb_size": size, "rdb_sha256": digest.hexdigest(),
                                "lastsave": snap.lastsave, "object": name})
