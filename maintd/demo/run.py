"""`maintd demo --root DIR`: a self-contained demo of maintd, without root.

Writes the set-up under DIR once (maintd.demo.setup), starts its units (two stand-in HTTP services and, when
redis-server is installed, a private Redis seeded with a few keys), prints how to talk to the daemon, then runs
the daemon in the foreground exactly as `maintd run` does. Ctrl-C stops the daemon, then the demo units.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

from ..errors import EX_UNAVAILABLE
from . import setup, svcctl

UNIT_START_TIMEOUT_S = 15.0


def run_demo(root: Path, *, log_format: str | None = None) -> int:
    from .. import daemon  # the entry layer: same code path as `maintd run`

    redis = shutil.which("redis-server")
    lay = setup.layout(root, redis)
    created = setup.write(lay)
    print(f"maintd demo under {lay.root} ({'wrote ' + str(len(created)) + ' new files' if created else 'reused'})")
    if lay.redis is None:
        print("note: redis-server is not installed (or the set-up was written without it): the Redis parts "
              "(Redis probe, Redis in backups) are off. Install it (apt-get install redis-server) and use a new "
              "--root to include them.")
    running = _running_daemon(lay)
    if running is not None:
        print(f"a maintd (pid {running}) already runs this demo; talk to it with:\n\n"
              f"    {_maintctl()} --socket {lay.socket} status", file=sys.stderr)
        return EX_UNAVAILABLE
    units = svcctl.Units(lay.units_file)
    names = [n for n in ("demo-redis", "demo-mcp", "demo-bridge") if n in units.units]
    try:
        for name in names:
            if units.start(name) != 0:
                print(f"warning: unit {name} did not start; see {lay.root / 'run' / (name + '.log')}",
                      file=sys.stderr)
        _wait_until_up(lay)
        if lay.redis is not None:
            _seed_redis(lay)
        _print_help(lay)
        return daemon.run(lay.config, log_format)
    except KeyboardInterrupt:  # Ctrl-C before the daemon took over its signals
        return 130
    finally:
        for name in reversed(names):
            units.stop(name)
        print("demo units stopped", file=sys.stderr)


def _running_daemon(lay: setup.Layout) -> int | None:
    """The pid of a daemon already answering on the demo's socket (its units must not be touched)."""
    from ..ctl import Client, CtlError
    try:
        return int(Client(lay.socket, timeout=5).call("ping")["pid"])
    except (CtlError, KeyError, TypeError, ValueError):
        return None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until_up(lay: setup.Layout) -> None:
    deadline = time.monotonic() + UNIT_START_TIMEOUT_S
    pending = {lay.mcp_port, lay.bridge_port}
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if not _port_open(p)}
        if pending:
            time.sleep(0.05)
    if pending:
        print(f"warning: nothing answers yet on port(s) {sorted(pending)}; the health job will say more",
              file=sys.stderr)


def _seed_redis(lay: setup.Layout) -> None:
    from ..config import Redis
    from ..edges import redis as redis_edge
    from ..errors import MaintdError

    try:
        with redis_edge.connect(Redis(url=lay.redis_url, unit="demo-redis")) as client:
            client.wait_ready(timeout=UNIT_START_TIMEOUT_S)
            if client.dbsize() == 0:
                for key, value in (("demo:greeting", "hello"), ("demo:counter", "42"),
                                   ("demo:user:1", '{"name": "demo"}')):
                    client.execute("SET", key, value)
    except MaintdError as err:
        print(f"warning: could not seed the demo Redis: {err}", file=sys.stderr)


def _maintctl() -> str:
    beside = Path(sys.executable).parent / "maintctl"
    return str(beside) if beside.exists() else "maintctl"


def _print_help(lay: setup.Layout) -> None:
    ctl = f"{_maintctl()} --socket {lay.socket}"
    print(f"""
The daemon starts now (config {lay.config}). In another terminal:

    {ctl} status
    {ctl} backup full        (until the first backup, health reports the `backups` probe failed)
    {ctl} run health
    {ctl} run cleanup
    {ctl} backups
    {ctl} history

Break the bridge on purpose: touch {lay.bridge_fail_flag}  (health restarts it after 2 failed checks)
Stop everything: Ctrl-C
""", flush=True)
