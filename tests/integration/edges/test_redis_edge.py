"""The Redis edge against a real redis-server: ping, snapshot (also while another save runs), paths, auth, down."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import redis as redis_lib

from maintd.config import Redis as RedisSettings
from maintd.edges import redis as redis_edge
from maintd.errors import Cancelled, ConfigError, MaintdError, UnavailableError
from tests.support.redis_server import RedisServer
from tests.support.waiting import free_port, wait_for


def settings_for(server: RedisServer, **extra) -> RedisSettings:
    return RedisSettings(url=server.url, timeout=2, **extra)


def test_ping_returns_round_trip_seconds(redis_server: RedisServer) -> None:
    with redis_edge.connect(settings_for(redis_server)) as client:
        elapsed = client.ping()
    assert 0 < elapsed < 2


def test_snapshot_writes_rdb_and_reports_keys(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    raw.mset({f"k{i}": i for i in range(25)})
    with redis_edge.connect(settings_for(redis_server)) as client:
        before = client.lastsave()
        snap = client.snapshot(timeout=30)
    assert snap.path == redis_server.dir / "dump.rdb"
    assert snap.path.is_file() and snap.path.read_bytes().startswith(b"REDIS")
    assert snap.keys == {"db0": 25}
    assert snap.lastsave >= before


def test_two_snapshots_in_the_same_second_both_wait_for_their_own_save(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    with redis_edge.connect(settings_for(redis_server)) as client:
        client.snapshot(timeout=30)
        raw.set("late", "value")
        client.snapshot(timeout=30)
    assert int(raw.info("persistence")["rdb_saves"]) == 2
    assert raw.info("persistence")["rdb_changes_since_last_save"] == 0


def test_snapshot_waits_for_a_save_already_in_progress_then_saves_again(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    raw.mset({f"k{i}": "x" * 100 for i in range(200)})
    # An honest slow save: redis sleeps this many microseconds per key while writing the RDB (~0.4 s here).
    raw.config_set("rdb-key-save-delay", 2000)
    raw.bgsave()
    assert int(raw.info("persistence")["rdb_bgsave_in_progress"]) == 1
    raw.set("written-during-the-first-save", "1")
    with redis_edge.connect(settings_for(redis_server)) as client:
        snap = client.snapshot(timeout=60)
    persistence = raw.info("persistence")
    assert int(persistence["rdb_saves"]) == 2  # the running save, then ours
    assert persistence["rdb_changes_since_last_save"] == 0  # ours covers the key written meanwhile
    assert snap.keys == {"db0": 201}


def test_snapshot_timeout_is_unavailable_and_cancel_is_cancelled(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    raw.mset({f"k{i}": "x" for i in range(100)})
    raw.config_set("rdb-key-save-delay", 100000)  # 10 s save
    with redis_edge.connect(settings_for(redis_server)) as client:
        with pytest.raises(UnavailableError, match="timed out"):
            client.snapshot(timeout=0.3)
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        with pytest.raises(Cancelled):
            client.snapshot(timeout=30, cancel=cancel)


def test_failed_save_raises_with_status(redis_server: RedisServer) -> None:
    redis_server.client().set("a", "1")
    # The child writes temp-<pid>.rdb and renames it over dump.rdb: a directory in that place makes it fail.
    (redis_server.dir / "dump.rdb").mkdir()
    with redis_edge.connect(settings_for(redis_server)) as client:
        with pytest.raises(MaintdError, match="BGSAVE failed"):
            client.snapshot(timeout=30)
    assert redis_server.client().info("persistence")["rdb_last_bgsave_status"] == "err"


def test_rdb_path_keyspace_and_aof(tmp_path: Path) -> None:
    server = RedisServer(dir=tmp_path / "redis", appendonly=True).start()
    try:
        server.client().set("a", 1)
        redis_lib.Redis(host="127.0.0.1", port=server.port, db=3).set("b", 2)
        with redis_edge.connect(RedisSettings(url=server.url, timeout=2)) as client:
            assert client.rdb_path() == tmp_path / "redis" / "dump.rdb"
            assert client.keyspace() == {"db0": 1, "db3": 1}
            assert client.aof_enabled() is True
            client.bgrewriteaof(timeout=30)
            assert client.config_get("appendonly") == "yes"
            client.config_set("appendonly", "no")
            assert client.aof_enabled() is False
            assert client.config_get("no-such-parameter") is None
            client.flushall()
            assert client.keyspace() == {}
    finally:
        server.stop()


def test_password_from_file_and_acl_user(tmp_path: Path) -> None:
    server = RedisServer(dir=tmp_path / "redis").start()
    try:
        raw = server.client()
        raw.execute_command("ACL", "SETUSER", "maintd", "on", ">s3cret-pass", "~*", "+@all")
        raw.config_set("requirepass", "default-pass")
        secret = tmp_path / "redis.pass"
        secret.write_text("s3cret-pass\n")
        url = f"redis://maintd@127.0.0.1:{server.port}/0"
        with redis_edge.connect(RedisSettings(url=url, password_file=secret, timeout=2)) as client:
            assert client.ping() > 0
            assert client.keyspace() == {}
        default_secret = tmp_path / "default.pass"
        default_secret.write_text("default-pass\n")
        with redis_edge.connect(RedisSettings(url=server.url, password_file=default_secret, timeout=2)) as client:
            assert client.ping() > 0
        wrong = tmp_path / "wrong.pass"
        wrong.write_text("nope\n")
        with redis_edge.connect(RedisSettings(url=url, password_file=wrong, timeout=2)) as client:
            with pytest.raises(UnavailableError, match="authentication failed") as caught:
                client.ping()
        assert "nope" not in str(caught.value) and "s3cret" not in str(caught.value)
        with redis_edge.connect(RedisSettings(url=server.url, timeout=2)) as client:
            with pytest.raises(MaintdError, match="NOAUTH|Authentication|authentication"):
                client.ping()
    finally:
        server.stop()


def test_missing_password_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        redis_edge.connect(RedisSettings(url="redis://127.0.0.1:1/0", password_file=tmp_path / "absent"))


def test_down_server_is_unavailable() -> None:
    with redis_edge.connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)) as client:
        with pytest.raises(UnavailableError, match="unreachable"):
            client.ping()
        with pytest.raises(UnavailableError):
            client.snapshot(timeout=1)
        with pytest.raises(UnavailableError):
            client.wait_ready(timeout=0.2)


def test_wait_ready_returns_once_a_starting_server_answers(tmp_path: Path) -> None:
    server = RedisServer(dir=tmp_path / "redis")
    client = redis_edge.connect(RedisSettings(url=server.url, timeout=1))
    starter = threading.Timer(0.2, lambda: server.start())
    starter.start()
    try:
        waited = client.wait_ready(timeout=15)
        assert waited > 0
        starter.join()
    finally:
        starter.join()
        server.stop()
        client.close()


def test_unix_socket_url(tmp_path: Path) -> None:
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket", str(sock),
                             "--dir", str(tmp_path), "--save", ""], stdout=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=10, message="unix socket")
        with redis_edge.connect(RedisSettings(url=f"unix://{sock}", timeout=2)) as client:
            wait_for(lambda: client.ping() > 0, timeout=10, message="ping over unix socket")
            assert client.rdb_path() == tmp_path / "dump.rdb"
    finally:
        proc.terminate()
        proc.wait(10)


def test_safe_url_hides_a_password() -> None:
    assert redis_edge.safe_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redis_edge.safe_url("redis://h:1/0") == "redis://h:1/0"
