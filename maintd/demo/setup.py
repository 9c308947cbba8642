"""Writes the demo set-up under a directory, once: nothing that exists is overwritten.

    DIR/app/        the sample application: VERSION, sources, a "binary", tmp/ and *.log (excluded from backups)
    DIR/conf/       its configuration
    DIR/data/       its data, with a cache/ (excluded from backups)
    DIR/secrets/    backup.passphrase (0600)
    DIR/state/ run/ backups/ reports/ redis/
    DIR/units.json  the units for maintd.demo.svcctl: demo-mcp, demo-bridge (the stand-in HTTP app), demo-redis
    DIR/maintd.toml the daemon's config: `command` service manager, probes, cleanup rules, the default calendar

The planning functions (`layout`, `units`, `render_config`) are pure; `write` creates what is missing.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maintd

OLD_S = 3 * 86400  # age given to the stale files the cleanup rules remove
REDIS_SOCKET_MAX = 100


@dataclass(frozen=True)
class Layout:
    root: Path
    mcp_port: int
    bridge_port: int
    redis: str | None
    """redis-server binary, or None: the demo runs without Redis."""
    redis_port: int

    @property
    def config(self) -> Path:
        return self.root / "maintd.toml"

    @property
    def units_file(self) -> Path:
        return self.root / "units.json"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "maintd.sock"

    @property
    def redis_socket(self) -> Path:
        return self.root / "redis" / "redis.sock"

    @property
    def redis_url(self) -> str:
        if len(os.fsencode(self.redis_socket)) <= REDIS_SOCKET_MAX:
            return f"unix://{self.redis_socket}?db=0"
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def bridge_fail_flag(self) -> Path:
        return self.root / "demo-bridge.fail"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def layout(root: Path, redis: str | None) -> Layout:
    """Ports come from an existing units.json (a second run reuses them), else free ones now."""
    root = root.resolve()
    ports = {"demo-mcp": 0, "demo-bridge": 0, "demo-redis": 0}
    units_file = root / "units.json"
    if units_file.exists():
        known = json.loads(units_file.read_text())
        for name in ports:
            argv = known.get(name, {}).get("argv", [])
            if "--port" in argv:
                ports[name] = int(argv[argv.index("--port") + 1])
        if "demo-redis" not in known:
            redis = None  # the set-up was written without Redis: keep it so
    return Layout(root=root, mcp_port=ports["demo-mcp"] or free_port(),
                  bridge_port=ports["demo-bridge"] or free_port(), redis=redis,
                  redis_port=ports["demo-redis"] or free_port())


def units(lay: Layout) -> dict[str, Any]:
    cwd = str(Path(maintd.__file__).resolve().parent.parent)
    service = [sys.executable, "-m", "maintd.demo.service"]
    out: dict[str, Any] = {
        "demo-mcp": {"argv": service + ["--port", str(lay.mcp_port),
                                        "--notify-log", str(lay.root / "demo-mcp.notify.jsonl")], "cwd": cwd},
        "demo-bridge": {"argv": service + ["--port", str(lay.bridge_port),
                                           "--version-file", str(lay.root / "app" / "VERSION"),
                                           "--fail-flag", str(lay.bridge_fail_flag)], "cwd": cwd},
    }
    if lay.redis:
        tcp = lay.redis_url.startswith("redis://")
        out["demo-redis"] = {"argv": [lay.redis, "--port", str(lay.redis_port if tcp else 0),
                                      "--bind", "127.0.0.1", "--unixsocket", str(lay.redis_socket),
                                      "--unixsocketperm", "700", "--dir", str(lay.root / "redis"),
                                      "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
                                      "--daemonize", "no", "--logfile", ""], "cwd": str(lay.root / "redis")}
    return out


def _q(value: Any) -> str:
    """A TOML value: JSON's string escapes are valid in TOML basic strings."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    return json.dumps(value)


def render_config(lay: Layout, admin_group: str) -> str:
    root = lay.root
    svcctl = [sys.executable, "-m", "maintd.demo.svcctl", "--units", str(lay.units_file)]
    redis_on = lay.redis is not None
    lines = [
        "# maintd demo configuration, written by `maintd demo`. Everything lives under this directory.",
        'timezone = "UTC"', "",
        "[paths]",
        f"state_dir = {_q(root / 'state')}",
        f"backup_root = {_q(root / 'backups')}",
        f"reports_dir = {_q(root / 'reports')}",
        f"runtime_dir = {_q(root / 'run')}", "",
        "[control]",
        f"socket = {_q(lay.socket)}",
        "# The demo admits your own primary group; a real install uses maintd-admin.",
        f"admin_group = {_q(admin_group)}", "",
        "[logging]", 'format = "auto"', 'level = "info"', "",
        "[daemon]", 'stop_timeout = "20s"', "",
        "[target]", 'name = "demo"', f"version_file = {_q(root / 'app' / 'VERSION')}",
        "[[target.components]]", 'name = "application"', f"path = {_q(root / 'app')}",
        'exclude = ["tmp", "*.log"]',
        "[[target.components]]", 'name = "config"', f"path = {_q(root / 'conf')}",
        "[[target.components]]", 'name = "data"', f"path = {_q(root / 'data')}", 'exclude = ["cache"]', "",
        "[redis]",
        f"url = {_q(lay.redis_url)}",
        f"unit = {_q('demo-redis' if redis_on else '')}",
        f"required = {'true' if redis_on else 'false'}", "",
        "[services]", 'manager = "command"', 'units = ["demo-mcp", "demo-bridge"]',
        "[services.command]",
        f"start = {_q(svcctl + ['start', '{unit}'])}",
        f"stop = {_q(svcctl + ['stop', '{unit}'])}",
        f"restart = {_q(svcctl + ['restart', '{unit}'])}",
        f"is_active = {_q(svcctl + ['is-active', '{unit}'])}", "",
        "[backup]",
        f"passphrase_file = {_q(root / 'secrets' / 'backup.passphrase')}",
        f"redis = {'true' if redis_on else 'false'}",
        "min_free_bytes = 67108864", "",
        "[health.remediation]", "failures_before_restart = 2", "",
        "[[health.probes]]", 'kind = "http"', 'name = "bridge"',
        f"url = {_q(f'http://127.0.0.1:{lay.bridge_port}/health')}",
        'expect_json = { status = "healthy" }',
        f"expect_version_file = {_q(root / 'app' / 'VERSION')}", 'unit = "demo-bridge"',
        "[[health.probes]]", 'kind = "http"', 'name = "mcp"',
        f"url = {_q(f'http://127.0.0.1:{lay.mcp_port}/health')}", 'unit = "demo-mcp"',
    ]
    if redis_on:
        lines += ["[[health.probes]]", 'kind = "redis"', 'name = "redis"', 'unit = "demo-redis"']
    lines += [
        "[[health.probes]]", 'kind = "disk"', 'name = "disk"', f"path = {_q(root)}", "min_free_percent = 5.0",
        "[[health.probes]]", 'kind = "backup_age"', 'name = "backups"', "",
        "[[cleanup.rules]]", f"root = {_q(root / 'app' / 'tmp')}", 'patterns = ["*"]', 'min_age = "1d"',
        'kind = "both"',
        "[[cleanup.rules]]", f"root = {_q(root / 'data' / 'cache')}", 'patterns = ["*"]', 'min_age = "2d"',
        "recursive = true", "",
        "[recovery.function_test]", f"url = {_q(f'http://127.0.0.1:{lay.mcp_port}/notify')}", "",
        "# The default calendar applies (backups, verify, drill...); health runs more often in the demo.",
        "[jobs.health]", 'schedule = "*/10 * * * *"', "",
    ]
    return "\n".join(lines)


SAMPLE_FILES: dict[str, str] = {
    "app/VERSION": "1.0.0-demo\n",
    "app/README.md": "# demo application\nA stand-in for the maintained service.\n",
    "app/lib/server.js": "// the MCP server (stand-in)\nmodule.exports = { port: 3000 };\n",
    "app/lib/bridge.js": "// the bridge (stand-in)\nmodule.exports = { port: 8080 };\n",
    "app/bridge.log": "2026-01-01T00:00:00Z started\n",
    "conf/app.json": '{"listen": "127.0.0.1", "log_level": "info"}\n',
    "conf/bridge.env": "BRIDGE_MODE=demo\n",
    "data/events/2026-01-01.jsonl": '{"event": "hello"}\n{"event": "world"}\n',
    "data/users.json": '[{"id": 1, "name": "demo"}]\n',
}
STALE_FILES = ("app/tmp/upload-1.part", "app/tmp/upload-2.part", "data/cache/thumb-1.bin", "data/cache/a/b.bin")


def write(lay: Layout) -> list[Path]:
    """Create what is missing; return the paths created."""
    created: list[Path] = []
    root = lay.root
    for name in ("state", "run", "backups", "reports", "redis", "app/tmp", "data/cache"):
        path = root / name
        if not path.exists():
            path.mkdir(parents=True, mode=0o700 if name in ("state", "backups") else 0o755)
            created.append(path)
    for name, text in SAMPLE_FILES.items():
        created += _write_once(root / name, text.encode())
    created += _write_once(root / "app" / "bin" / "bridge", os.urandom(256 * 1024), mode=0o755)
    old = time.time() - OLD_S
    for name in STALE_FILES:
        made = _write_once(root / name, os.urandom(4096))
        if made:
            os.utime(made[0], (old, old))
        created += made
    created += _write_once(root / "secrets" / "backup.passphrase", (secrets.token_urlsafe(32) + "\n").encode(),
                           mode=0o600, dir_mode=0o700)
    created += _write_once(lay.units_file, json.dumps(units(lay), indent=2).encode())
    created += _write_once(lay.config, render_config(lay, primary_group()).encode(), mode=0o640)
    return created


def primary_group() -> str:
    gid = os.getgid()
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _write_once(path: Path, content: bytes, *, mode: int = 0o644, dir_mode: int = 0o755) -> list[Path]:
    if path.exists():
        return []
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(temporary, mode)
    os.rename(temporary, path)
    return [path]
