"""The RDB a `--component redis --target DIR` restore writes (what the offline `maintd restore` does too): readable
by its owner only (Redis runs as its own user; the operator chowns it), or with the mode of the RDB it replaces."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.restore_rig import Rig, make_rig


@pytest.fixture
def redis_rig(tmp_path: Path, redis_server: RedisServer) -> Iterator[Rig]:
    client = redis_server.client()
    for i in range(10):
        client.set(f"k:{i}", i)
    made = make_rig(tmp_path / "rig", {"backup": {"redis": True}, "redis": {"url": redis_server.url}})
    (made.data / "a.txt").write_text("a\n")
    made.backup("full")
    yield made
    made.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_rdb_is_written_owner_only(redis_rig: Rig, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    old = os.umask(0o022)
    try:
        redis_rig.run("restore", components="redis", target=str(target))
    finally:
        os.umask(old)
    assert (target / "dump.rdb").stat().st_size > 0
    assert _mode(target / "dump.rdb") == 0o600


def test_an_existing_rdb_keeps_its_mode(redis_rig: Rig, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    target.mkdir()
    (target / "dump.rdb").write_bytes(b"old")
    os.chmod(target / "dump.rdb", 0o640)
    redis_rig.run("restore", components="redis", target=str(target))
    assert (target / "dump.rdb").read_bytes().startswith(b"REDIS")
    assert _mode(target / "dump.rdb") == 0o640
