"""Placing a backup's RDB under a real redis-server, with and without append-only mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from maintd.config import Redis as RedisSettings
from maintd.edges import redis as redis_edge
from maintd.recovery.redis_restore import (RedisLayout, aof_seed, aside_moves, ask_layout, key_problems,
                                           place_snapshot)
from tests.support.redis_server import RedisServer


def _client(server: RedisServer) -> redis_edge.RedisClient:
    return redis_edge.connect(RedisSettings(url=server.url, unit=""))


@pytest.mark.parametrize("appendonly", [False, True], ids=["rdb", "appendonly"])
def test_the_snapshot_replaces_the_dataset_after_a_restart(tmp_path: Path, appendonly: bool) -> None:
    server = RedisServer(dir=tmp_path / "redis", appendonly=appendonly).start()
    try:
        raw = server.client()
        for i in range(50):
            raw.set(f"key:{i}", i)
        raw.save()
        snapshot = (server.dir / "dump.rdb").read_bytes()  # what a backup holds
        raw.flushall()
        raw.set("after-the-backup", 1)  # the AOF now says: 1 key
        with _client(server) as client:
            layout = ask_layout(client)
        assert layout.appendonly is appendonly and layout.rdb == server.dir / "dump.rdb"
        server.stop()

        def write(tmp: Path) -> int:
            tmp.write_bytes(snapshot)
            return len(snapshot)

        notes = place_snapshot(layout, write, "20261203T173000Z")
        server.start()
        with _client(server) as client:
            assert client.keyspace() == {"db0": 50}
        assert any("kept" in n for n in notes)
        assert (server.dir / "dump.rdb.pre-restore.20261203T173000Z").exists()
        if appendonly:
            assert (server.dir / "appendonlydir.pre-restore.20261203T173000Z").is_dir()
            raw = server.client()
            raw.set("written-after-restore", 1)
            server.stop()
            server.start()  # the AOF keeps both the snapshot and later writes
            assert server.client().dbsize() == 51
    finally:
        server.stop()


def test_aof_seed_for_redis7_names_the_rdb_as_base() -> None:
    layout = RedisLayout(Path("/r/dump.rdb"), True, Path("/r/appendonlydir"), "appendonly.aof")
    seeds = dict(aof_seed(layout))
    assert seeds[Path("/r/appendonlydir/appendonly.aof.1.base.rdb")] == "rdb"
    assert seeds[Path("/r/appendonlydir/appendonly.aof.manifest")] == (
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
    assert aof_seed(RedisLayout(Path("/r/dump.rdb"), True, None)) == [(Path("/r/appendonly.aof"), "rdb")]
    assert aof_seed(RedisLayout(Path("/r/dump.rdb"), False, Path("/r/appendonlydir"))) == []


def test_aside_moves_keep_rdb_and_aof() -> None:
    layout = RedisLayout(Path("/r/dump.rdb"), True, Path("/r/appendonlydir"))
    assert aside_moves(layout, "S") == [(Path("/r/dump.rdb"), Path("/r/dump.rdb.pre-restore.S")),
                                        (Path("/r/appendonlydir"), Path("/r/appendonlydir.pre-restore.S")),
                                        (Path("/r/appendonly.aof"), Path("/r/appendonly.aof.pre-restore.S"))]


def test_key_problems_accept_a_tolerated_shortfall_only() -> None:
    assert key_problems({"db0": 100}, {"db0": 100}) == []
    assert key_problems({"db0": 100}, {"db0": 99}) == ["db0: 99 keys loaded, the backup recorded 100"]
    assert key_problems({"db0": 100}, {"db0": 95}, tolerance=0.05) == []
    assert key_problems({"db0": 100}, {"db0": 101}, tolerance=0.5) != []
    assert key_problems({"db0": 3}, {"db0": 3, "db1": 1}) == ["db1: 1 keys loaded, the backup recorded 0"]
