"""The daemon as systemd sees it: sd_notify messages on a datagram NOTIFY_SOCKET owned by the test."""

from __future__ import annotations

import signal

from maintd import ctl
from tests.e2e.daemon_harness import DaemonFactory, NotifyListener, monotonic_us


def _env(notify: NotifyListener, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(notify.path), **extra}


def test_ready_after_the_socket_answers_then_watchdog_pings_and_stopping_on_sigterm(
        daemons: DaemonFactory, notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket, WATCHDOG_USEC="400000"), wait=False)
    index, ready = notify_socket.wait_for(lambda m: m.get("READY") == "1", message="READY=1")
    # At the moment READY=1 is sent the control socket already serves requests.
    assert ctl.Client(daemons.socket, timeout=5).call("ping")["pid"] == daemon.pid
    assert ready.get("STATUS", "").startswith("idle")
    assert all("READY" not in m for m in notify_socket.messages[:index])
    first, _ = notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", message="WATCHDOG=1")
    second, _ = notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", after=first + 1, message="WATCHDOG=1")

    daemon.signal(signal.SIGTERM)
    notify_socket.wait_for(lambda m: m.get("STOPPING") == "1", after=second, message="STOPPING=1")
    assert daemon.wait_exit(20) == 0
    assert not daemons.socket.exists()
    assert daemon.events("daemon.stopped")


def test_reload_swaps_a_good_config_keeps_a_broken_one_and_always_ends_ready(
        daemons: DaemonFactory, notify_socket: NotifyListener) -> None:
    # A watchdog meant for another process (WATCHDOG_PID) is never pinged.
    daemon = daemons.start({"jobs": {"health": {"schedule": "5 4 * * *"}}},
                           env=_env(notify_socket, WATCHDOG_USEC="200000", WATCHDOG_PID="1"))
    ready, _ = notify_socket.wait_for(lambda m: m.get("READY") == "1")

    daemons.config({"jobs": {"health": {"schedule": "17 3 * * *"}}})
    before = monotonic_us()
    daemon.signal(signal.SIGHUP)
    reloading, message = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", after=ready + 1)
    assert before <= int(message["MONOTONIC_USEC"]) <= monotonic_us()
    ready, _ = notify_socket.wait_for(lambda m: m.get("READY") == "1", after=reloading + 1)
    assert _health_schedule(daemon) == "17 3 * * *"

    good = daemon.config.read_text()
    daemon.config.write_text(good + "\n[bogus_section]\nkey = 1\n")
    daemon.signal(signal.SIGHUP)
    reloading, _ = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", after=ready + 1)
    ready, after = notify_socket.wait_for(lambda m: m.get("READY") == "1", after=reloading + 1)
    assert "reload failed" in after["STATUS"] and "bogus_section" in after["STATUS"]
    assert _health_schedule(daemon) == "17 3 * * *"  # the previous config stays
    assert daemon.events("daemon.reload_failed")

    # What ExecReload runs: refused with exit 78 and the problem named; accepted once the file is fixed.
    refused = daemon.ctl("reload", "--wait")
    assert refused.returncode == 78 and "bogus_section" in refused.stderr
    daemons.config({"jobs": {"health": {"schedule": "1 1 1 1 *"}}})
    accepted = daemon.ctl("reload", "--wait")
    assert accepted.returncode == 0 and "reloaded" in accepted.stdout
    assert _health_schedule(daemon) == "1 1 1 1 *"
    assert sum(1 for m in notify_socket.messages if m.get("RELOADING") == "1") == 4
    assert sum(1 for m in notify_socket.messages if m.get("READY") == "1") == 5  # start + every reload
    assert not any("WATCHDOG" in m for m in notify_socket.messages)


def _health_schedule(daemon) -> str:  # type: ignore[no-untyped-def]
    return next(s for s in daemon.call("status")["schedules"] if s["entry"] == "health")["schedule"]
