"""maintctl, as an operator runs it, against a real daemon over its real socket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.daemon_harness import (DaemonFactory, SlowHealthEndpoint, child_env, maintctl, slow_probe,
                                      wait_until)


def test_status_shows_every_calendar_entry_with_next_runs(daemons: DaemonFactory) -> None:
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


def test_jobs_lists_the_registry(daemons: DaemonFactory) -> None:
    daemon = daemons.start()
    jobs = json.loads(daemon.ctl("jobs", "--json").stdout)
    health = next(j for j in jobs if j["name"] == "health")
    assert "health" in health["entries"] and health["description"]
    assert "health" in daemon.ctl("jobs").stdout


def test_run_streams_then_prints_the_result_and_history_keeps_it(daemons: DaemonFactory) -> None:
    daemon = daemons.start()
    human = daemon.ctl("run", "health")
    assert human.returncode == 0, human.stderr
    assert "health succeeded" in human.stdout and "no probes configured" in human.stdout
    assert "started health" in human.stderr  # events go to stderr, results to stdout
    result = json.loads(daemon.ctl("--json", "run", "health").stdout)
    assert result["outcome"] == "succeeded" and result["job"] == "health" and result["duration_s"] >= 0
    history = json.loads(daemon.ctl("--json", "history", "health", "-n", "5").stdout)
    assert [h["run_id"] for h in history][0] == result["run_id"]
    assert len(history) == 2 and all(h["trigger"] == "manual" for h in history)
    assert result["run_id"] in daemon.ctl("history").stdout


def test_failed_run_exits_1_with_the_reason(daemons: DaemonFactory) -> None:
    daemon = daemons.start({"health": {"probes": [{"kind": "http", "name": "nothing-there",
                                                   "url": "http://127.0.0.1:9/health", "timeout": 2}]}})
    result = daemon.ctl("run", "health")
    assert result.returncode == 1
    assert "health failed" in result.stdout and "nothing-there" in result.stdout


def test_second_run_of_a_busy_job_answers_busy_and_wait_queues(daemons: DaemonFactory,
                                                               slow_endpoint: SlowHealthEndpoint) -> None:
    daemon = daemons.start(slow_probe(slow_endpoint))
    detached = json.loads(daemon.ctl("--json", "run", "health", "--detach").stdout)
    run_id = detached["run_id"]
    wait_until(lambda: slow_endpoint.requests >= 1, message="the first run probing")
    busy = daemon.ctl("run", "health")
    assert busy.returncode == 75, busy.stderr
    assert "busy" in busy.stderr or "lock" in busy.stderr
    waiting = subprocess.Popen([sys.executable, "-m", "maintd.ctl", "--socket", str(daemon.socket), "--json",
                                "run", "health", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=child_env())
    try:
        wait_until(lambda: len(daemon.call("status")["active"]) == 2, message="the second run waiting for locks")
        slow_endpoint.release.set()
        watched = json.loads(daemon.ctl("--json", "watch", run_id).stdout)
        assert watched["run_id"] == run_id and watched["outcome"] == "succeeded"
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    assert json.loads(out)["outcome"] == "succeeded"


def test_cancel_interrupts_a_running_run(daemons: DaemonFactory, slow_endpoint: SlowHealthEndpoint) -> None:
    daemon = daemons.start(slow_probe(slow_endpoint, timeout=5))
    run_id = json.loads(daemon.ctl("--json", "run", "health", "--detach").stdout)["run_id"]
    wait_until(lambda: slow_endpoint.requests >= 1)
    assert daemon.ctl("cancel", run_id).returncode == 0
    slow_endpoint.release.set()
    wait_until(lambda: daemon.call("history", job="health")[0]["outcome"] == "interrupted",
               message="the run recorded interrupted")
    assert daemon.ctl("cancel", run_id).returncode == 64  # not running any more


def test_pause_and_resume_survive_a_restart(daemons: DaemonFactory) -> None:
    extra = {"jobs": {"health": {"schedule": "0 2 * * *"}, "cleanup": {"schedule": "0 3 * * *"}}}
    daemon = daemons.start(extra)
    assert daemon.ctl("pause", "health").returncode == 0
    assert daemon.stop() == 0
    daemon = daemons.start(extra, write=False)
    status = json.loads(daemon.ctl("--json", "status").stdout)
    paused = {s["entry"]: s["paused"] for s in status["schedules"]}
    assert paused["health"] and not paused["cleanup"]
    assert "paused" in daemon.ctl("status").stdout
    assert daemon.ctl("pause").returncode == 0  # everything
    assert all(s["paused"] for s in daemon.call("status")["schedules"])
    assert json.loads(daemon.ctl("--json", "resume").stdout)["paused"] == []
    assert daemon.ctl("pause", "no-such-job").returncode == 64


def test_exit_codes_for_usage_and_unreachable_daemon(tmp_path: Path) -> None:
    assert maintctl("no-such-command").returncode == 64
    assert maintctl("run").returncode == 64
    assert maintctl("--socket", str(tmp_path / "none.sock"), "status").returncode == 69
    unreachable = maintctl("--socket", str(tmp_path / "none.sock"), "--json", "status")
    assert json.loads(unreachable.stdout)["exit_code"] == 69 and "not running" in unreachable.stderr
    assert maintctl("--help").returncode == 0 and maintctl("restore", "--help").returncode == 0


def test_unknown_job_and_bad_arguments_are_usage_errors(daemons: DaemonFactory) -> None:
    daemon = daemons.start()
    unknown = daemon.ctl("run", "no-such-job")
    assert unknown.returncode == 64 and "no-such-job" in unknown.stderr
    bad = daemon.ctl("run", "health", "--arg", "bogus=1")
    assert bad.returncode == 64 and "bogus" in bad.stderr
    assert daemon.ctl("run", "health", "--arg", "novalue").returncode == 64


def test_socket_is_found_through_the_config_file(daemons: DaemonFactory) -> None:
    daemon = daemons.start()
    result = maintctl("--config", str(daemon.config), "--json", "status")
    assert result.returncode == 0 and json.loads(result.stdout)["pid"] == daemon.pid
    assert maintctl("--config", str(daemon.config.with_name("missing.toml")), "status").returncode == 78
