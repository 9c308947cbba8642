"""maintctl, as an operator runs it, against a real daemon over its real socket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.daemon_harness import (DaemonFactory, SlowHealthEndpoint, child_env, maintctl, slow_probe,
                                      wait_until)


def test_status_jobs_run_and_history_in_tables_and_json(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"jobs": {"health": {"schedule": "30 2 * * *"}}})
    human = daemon.ctl("status")
    assert human.returncode == 0, human.stderr
    assert "health" in human.stdout and "30 2 * * *" in human.stdout and "running: nothing" in human.stdout
    status = json.loads(daemon.ctl("--json", "status").stdout)
    assert status["pid"] == daemon.pid and status["timezone"] == "UTC"
    entries = {s["entry"]: s for s in status["schedules"]}
    assert entries["health"]["next_run"].endswith("02:30:00+00:00")
    assert entries["backup-full"]["job"] == "backup"
    assert status["active"] == [] and status["paused"] == []

    jobs = json.loads(daemon.ctl("jobs", "--json").stdout)  # options may follow the command
    assert "health" in next(j for j in jobs if j["name"] == "health")["entries"]

    run = daemon.ctl("run", "health")
    assert run.returncode == 0, run.stderr
    assert "health succeeded" in run.stdout and "no probes configured" in run.stdout
    assert "started health" in run.stderr  # events on stderr, the result on stdout
    result = json.loads(daemon.ctl("--json", "run", "health").stdout)
    assert result["outcome"] == "succeeded" and result["job"] == "health" and result["duration_s"] >= 0
    history = json.loads(daemon.ctl("--json", "history", "health", "-n", "5").stdout)
    assert [h["run_id"] for h in history][0] == result["run_id"]
    assert len(history) == 2 and all(h["trigger"] == "manual" for h in history)
    assert result["run_id"] in daemon.ctl("history").stdout
    health = next(s for s in daemon.call("status")["schedules"] if s["entry"] == "health")
    assert health["last"]["run_id"] == result["run_id"]

    unknown = daemon.ctl("run", "no-such-job")
    assert unknown.returncode == 64 and "no-such-job" in unknown.stderr
    bad = daemon.ctl("run", "health", "--arg", "bogus=1")
    assert bad.returncode == 64 and "bogus" in bad.stderr
    assert daemon.ctl("run", "health", "--arg", "novalue").returncode == 64

    by_config = maintctl("--config", str(daemon.config), "--json", "status")  # the socket found in the config
    assert by_config.returncode == 0 and json.loads(by_config.stdout)["pid"] == daemon.pid
    assert maintctl("--config", str(daemon.config.with_name("missing.toml")), "status").returncode == 78


def test_failed_run_exits_1_with_the_reason(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"health": {"probes": [{"kind": "http", "name": "nothing-there",
                                                   "url": "http://127.0.0.1:9/health", "timeout": 2}]}})
    result = daemon.ctl("run", "health")
    assert result.returncode == 1
    assert "health failed" in result.stdout and "nothing-there" in result.stdout


def test_a_run_failing_with_a_classified_error_exits_with_its_code(daemons: DaemonFactory) -> None:
    daemon = daemons.start()
    unknown = daemon.ctl("verify", "20990101T000000.000000Z-full")
    assert unknown.returncode == 64, (unknown.stdout, unknown.stderr)
    assert "20990101T000000.000000Z-full" in unknown.stdout + unknown.stderr
    as_json = json.loads(daemon.ctl("--json", "verify", "20990101T000000.000000Z-full").stdout)
    assert as_json["outcome"] == "failed" and as_json["error_code"] == "not_found"


def test_busy_wait_watch_and_cancel(daemons: DaemonFactory, slow_endpoint: SlowHealthEndpoint) -> None:
    daemon = daemons.start(slow_probe(slow_endpoint))
    first = json.loads(daemon.ctl("--json", "run", "health", "--detach").stdout)["run_id"]
    wait_until(lambda: slow_endpoint.requests >= 1, message="the first run probing")

    busy = daemon.ctl("run", "health")
    assert busy.returncode == 75, busy.stderr
    assert first in busy.stderr and "--wait" in busy.stderr  # names the holder, says what to do
    waiting = subprocess.Popen([sys.executable, "-m", "maintd.ctl", "--socket", str(daemon.socket), "--json",
                                "run", "health", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=child_env())
    try:
        wait_until(lambda: len(daemon.call("status")["active"]) == 2, message="the second run waiting for locks")
        assert "waiting" in [a["state"] for a in daemon.call("status")["active"]]
        assert daemon.ctl("cancel", first).returncode == 0
        slow_endpoint.release.set()
        watched = daemon.ctl("--json", "watch", first)
        assert watched.returncode == 1 and json.loads(watched.stdout)["outcome"] == "interrupted"
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    assert json.loads(out)["outcome"] == "succeeded"
    assert daemon.ctl("cancel", first).returncode == 64  # not running any more
    assert daemon.ctl("watch", first).returncode == 1  # a finished run: its record, at once


def test_pause_and_resume_survive_a_restart(daemons: DaemonFactory) -> None:
    extra = {"jobs": {"health": {"schedule": "0 2 * * *"}, "cleanup": {"schedule": "0 3 * * *"}}}
    daemon = daemons.start(extra)
    assert daemon.ctl("pause", "health").returncode == 0
    assert daemon.stop() == 0
    daemon = daemons.start(extra, write=False)
    paused = {s["entry"]: s["paused"] for s in json.loads(daemon.ctl("--json", "status").stdout)["schedules"]}
    assert paused["health"] and not paused["cleanup"]
    assert "paused" in daemon.ctl("status").stdout
    assert daemon.ctl("pause").returncode == 0  # everything
    assert all(s["paused"] for s in daemon.call("status")["schedules"])
    assert json.loads(daemon.ctl("--json", "resume").stdout)["paused"] == []
    assert daemon.ctl("pause", "no-such-job").returncode == 64


def test_exit_codes_for_usage_and_unreachable_daemon(tmp_path: Path) -> None:
    assert maintctl("no-such-command").returncode == 64
    assert maintctl("run").returncode == 64
    unreachable = maintctl("--socket", str(tmp_path / "none.sock"), "--json", "status")
    assert unreachable.returncode == 69
    assert json.loads(unreachable.stdout)["exit_code"] == 69 and "not running" in unreachable.stderr
    assert maintctl("--help").returncode == 0 and maintctl("restore", "--help").returncode == 0
