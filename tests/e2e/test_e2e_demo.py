"""`maintd demo --root DIR`: the README's first command, as a new operator runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from maintd.demo import svcctl
from tests.e2e.daemon_harness import child_env, maintctl, wait_until


def test_demo_starts_and_its_jobs_do_real_work(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    sock = root / "run" / "maintd.sock"
    log = (tmp_path / "demo.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "maintd", "demo", "--root", str(root)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env(),
                            start_new_session=True)
    try:
        wait_until(lambda: maintctl("--socket", str(sock), "status").returncode == 0 or proc.poll() is not None,
                   timeout=30, message="the demo daemon answering")
        assert proc.poll() is None, (tmp_path / "demo.out").read_text()
        assert f"maintctl --socket {sock} status" in (tmp_path / "demo.out").read_text()
        status = json.loads(maintctl("--socket", str(sock), "--json", "status").stdout)
        entries = {s["entry"]: s for s in status["schedules"]}
        assert entries["health"]["next_run"] and entries["backup-full"]["next_run"]
        assert "next run".upper() in maintctl("--socket", str(sock), "status").stdout

        backup = maintctl("--socket", str(sock), "--json", "backup", "full")
        assert backup.returncode == 0, backup.stderr
        backup_id = json.loads(backup.stdout)["id"]
        assert backup_id.endswith("-full")
        listed = json.loads(maintctl("--socket", str(sock), "--json", "backups").stdout)
        assert [b["id"] for b in listed] == [backup_id]
        assert backup_id in maintctl("--socket", str(sock), "backup-show", backup_id).stdout
        assert maintctl("--socket", str(sock), "backup-show", "20000101T000000.000000Z-full").returncode == 64
        health = maintctl("--socket", str(sock), "--json", "run", "health")
        assert health.returncode == 0, health.stdout
        probes = {p["name"]: p for p in json.loads(health.stdout)["data"]["probes"]}
        assert {"bridge", "mcp", "redis", "disk", "backups"} <= set(probes)
        assert all(p["ok"] for p in probes.values()), probes
        cleanup = maintctl("--socket", str(sock), "run", "cleanup")
        assert cleanup.returncode == 0 and "removed 4 file(s)" in cleanup.stdout
        assert not any((root / "app" / "tmp").iterdir())

        second = subprocess.run([sys.executable, "-m", "maintd", "demo", "--root", str(root)], capture_output=True,
                                text=True, timeout=60, env=child_env(), stdin=subprocess.DEVNULL)
        assert second.returncode == 69 and "already runs this demo" in second.stderr
        units = svcctl.Units(root / "units.json")
        assert all(units.pid(name) for name in ("demo-mcp", "demo-bridge", "demo-redis"))  # left running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "demo.out").read_text()
    units = svcctl.Units(root / "units.json")
    assert all(units.pid(name) is None for name in ("demo-mcp", "demo-bridge", "demo-redis"))
    assert not sock.exists()
