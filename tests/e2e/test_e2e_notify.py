"""The daemon as systemd sees it: sd_notify messages on a datagram NOTIFY_SOCKET owned by the test."""

from __future__ import annotations

import signal

from tests.e2e.daemon_harness import DaemonFactory, NotifyListener, monotonic_us, wait_until
from maintd import ctl


def _env(notify: NotifyListener, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(notify.path), **extra}


def test_ready_comes_only_once_the_socket_answers_with_a_status(daemons: DaemonFactory,
                                                                 notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket), wait=False)
    index, ready = notify_socket.wait_for(lambda m: m.get("READY") == "1", message="READY=1")
    # At the moment READY=1 is sent the control socket already serves requests.
    assert ctl.Client(daemons.socket, timeout=5).call("ping")["pid"] == daemon.pid
    assert ready.get("STATUS", "").startswith("idle")
    assert all("READY" not in m for m in notify_socket.messages[:index])


def test_watchdog_is_pinged_at_half_the_period(daemons: DaemonFactory, notify_socket: NotifyListener) -> None:
    daemons.start(env=_env(notify_socket, WATCHDOG_USEC="400000"))
    first, _ = notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", message="WATCHDOG=1")
    notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", after=first + 1, message="a second WATCHDOG=1")


def test_watchdog_meant_for_another_pid_is_not_pinged(daemons: DaemonFactory,
                                                      notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket, WATCHDOG_USEC="200000", WATCHDOG_PID="1"))
    daemon.call("status")  # a full round trip after READY, which is more than two watchdog periods here
    wait_until(lambda: any(m.get("READY") for m in notify_socket.messages))
    assert daemon.call("ping")["pong"]
    assert not any("WATCHDOG" in m for m in notify_socket.messages)


def test_sighup_reloads_between_reloading_and_ready(daemons: DaemonFactory, notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket))
    ready, _ = notify_socket.wait_for(lambda m: m.get("READY") == "1")
    daemons.config({"jobs": {"health": {"schedule": "17 3 * * *"}}})
    before = monotonic_us()
    daemon.signal(signal.SIGHUP)
    reloading, message = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", after=ready + 1)
    assert before <= int(message["MONOTONIC_USEC"]) <= monotonic_us()
    notify_socket.wait_for(lambda m: m.get("READY") == "1", after=reloading + 1, message="READY=1 after reload")
    health = next(s for s in daemon.call("status")["schedules"] if s["entry"] == "health")
    assert health["schedule"] == "17 3 * * *"
    assert health["next_run"] is not None


def test_broken_config_on_reload_keeps_the_old_one_and_says_why(daemons: DaemonFactory,
                                                                notify_socket: NotifyListener) -> None:
    daemon = daemons.start({"jobs": {"health": {"schedule": "5 4 * * *"}}}, env=_env(notify_socket))
    ready, _ = notify_socket.wait_for(lambda m: m.get("READY") == "1")
    daemon.config.write_text(daemon.config.read_text() + "\n[bogus_section]\nkey = 1\n")
    daemon.signal(signal.SIGHUP)
    reloading, _ = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", after=ready + 1)
    _, after = notify_socket.wait_for(lambda m: m.get("READY") == "1", after=reloading + 1)
    assert "reload failed" in after["STATUS"] and "bogus_section" in after["STATUS"]
    health = next(s for s in daemon.call("status")["schedules"] if s["entry"] == "health")
    assert health["schedule"] == "5 4 * * *"
    # The same through maintctl (what ExecReload runs): refused, exit 78, the problem named.
    result = daemon.ctl("reload", "--wait")
    assert result.returncode == 78
    assert "bogus_section" in result.stderr
    assert daemon.events("daemon.reload_failed")


def test_reload_wait_through_maintctl_applies_the_new_config(daemons: DaemonFactory,
                                                              notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket))
    daemons.config({"jobs": {"cleanup": {"schedule": "1 1 1 1 *"}}})
    result = daemon.ctl("reload", "--wait")
    assert result.returncode == 0, result.stderr
    assert "reloaded" in result.stdout
    cleanup = next(s for s in daemon.call("status")["schedules"] if s["entry"] == "cleanup")
    assert cleanup["schedule"] == "1 1 1 1 *"
    assert any(m.get("RELOADING") == "1" and "MONOTONIC_USEC" in m for m in notify_socket.messages)


def test_sigterm_sends_stopping_exits_0_and_removes_the_socket(daemons: DaemonFactory,
                                                                notify_socket: NotifyListener) -> None:
    daemon = daemons.start(env=_env(notify_socket))
    daemon.signal(signal.SIGTERM)
    notify_socket.wait_for(lambda m: m.get("STOPPING") == "1", message="STOPPING=1")
    assert daemon.wait_exit(20) == 0
    assert not daemons.socket.exists()
    assert daemon.events("daemon.stopped")
