"""Stopping the daemon while a job runs: warm stop within the deadline, the run recorded interrupted, nothing
half-written left behind; a second signal stops at once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from maintd.state import State
from tests.e2e.daemon_harness import Daemon, DaemonFactory, NotifyListener, SlowHealthEndpoint, slow_probe, wait_until
from tests.support.redis_server import RedisServer

STOP_TIMEOUT_S = 8.0


def _leftovers(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.name.endswith((".tmp", ".part")) or (path.parent.name == ".incomplete"):
                found.append(str(path))
    return found


def _backup_stuck_in_redis_phase(daemons: DaemonFactory, redis_server: RedisServer, tmp_path: Path,
                                 env: dict[str, str] | None = None) -> tuple[Daemon, str]:
    """A daemon whose full backup has staged its objects and now waits for a slow (30 s) Redis snapshot."""
    client = redis_server.client()
    for number in range(30):
        client.set(f"key:{number}", "value")
    client.config_set("rdb-key-save-delay", 1_000_000)  # one second per key
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "records.json").write_text('{"a": 1}')
    daemon = daemons.start({"redis": {"url": redis_server.url}, "backup": {"redis": True},
                            "daemon": {"stop_timeout": f"{STOP_TIMEOUT_S}s"}}, env=env)
    run_id = json.loads(daemon.ctl("--json", "backup", "full", "--detach").stdout)["run_id"]

    def in_redis_phase() -> bool:
        active = daemon.call("status")["active"]
        return bool(active) and (active[0].get("progress") or {}).get("phase") == "redis"

    wait_until(in_redis_phase, timeout=30, message="the backup waiting for the Redis snapshot")
    assert _leftovers(tmp_path / "backups"), "the backup should have staged objects by now"
    return daemon, run_id


def test_sigterm_during_a_backup_interrupts_it_and_leaves_no_temp_files(
        daemons: DaemonFactory, redis_server: RedisServer, notify_socket: NotifyListener, tmp_path: Path) -> None:
    daemon, run_id = _backup_stuck_in_redis_phase(daemons, redis_server, tmp_path,
                                                  env={"NOTIFY_SOCKET": str(notify_socket.path)})
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(STOP_TIMEOUT_S + 5) == 0
    assert time.monotonic() - started < STOP_TIMEOUT_S
    notify_socket.wait_for(lambda m: m.get("STOPPING") == "1")
    assert any("EXTEND_TIMEOUT_USEC" in m for m in notify_socket.messages)
    record = State.open(tmp_path / "state").get_run(run_id)
    assert record is not None and record.outcome.value == "interrupted"
    assert _leftovers(tmp_path / "backups", tmp_path / "state") == []
    assert not daemons.socket.exists()


def test_after_a_kill_9_the_next_start_cleans_up_and_records_the_run_interrupted(
        daemons: DaemonFactory, redis_server: RedisServer, tmp_path: Path) -> None:
    daemon, run_id = _backup_stuck_in_redis_phase(daemons, redis_server, tmp_path)
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit(10)
    assert daemons.socket.exists()  # what a crash leaves: a stale socket, a staged backup, a "running" run
    again = daemons.start(write=False)
    history = {r["run_id"]: r for r in again.call("history")}
    assert history[run_id]["outcome"] == "interrupted"
    assert _leftovers(tmp_path / "backups") == []
    assert again.call("backups") == []  # nothing half-written looks like a backup
    assert again.events("daemon.incomplete_backups_removed") and again.events("control.stale_socket_removed")


def test_a_second_sigterm_stops_at_once(daemons: DaemonFactory, slow_endpoint: SlowHealthEndpoint) -> None:
    daemon = daemons.start({**slow_probe(slow_endpoint), "daemon": {"stop_timeout": "60s"}})
    assert daemon.ctl("run", "health", "--detach").returncode == 0
    wait_until(lambda: slow_endpoint.requests >= 1, message="the health run probing")
    daemon.signal(signal.SIGTERM)
    wait_until(lambda: daemon.events("daemon.stopping"), message="the warm stop begun")
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 1
    assert time.monotonic() - started < 5
    assert daemon.events("daemon.cold_stop")
    assert not daemons.socket.exists()


def test_a_job_that_ignores_the_stop_is_recorded_interrupted_at_the_deadline(
        daemons: DaemonFactory, slow_endpoint: SlowHealthEndpoint, tmp_path: Path) -> None:
    daemon = daemons.start({**slow_probe(slow_endpoint), "daemon": {"stop_timeout": "1s"}})
    run_id = json.loads(daemon.ctl("--json", "run", "health", "--detach").stdout)["run_id"]
    wait_until(lambda: slow_endpoint.requests >= 1, message="the health run probing")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(15) == 0
    record = State.open(tmp_path / "state").get_run(run_id)
    assert record is not None and record.outcome.value == "interrupted"
