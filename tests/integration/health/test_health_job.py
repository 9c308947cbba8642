"""The health job against real parts: a redis-server, the stand-in HTTP app run by the command service manager."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from structlog.testing import capture_logs

from maintd.config import Settings
from maintd.jobs import health
from maintd.model import Outcome, RunRecord, Trigger
from tests.conftest import StandInService
from tests.support.redis_server import RedisServer
from tests.support.waiting import free_port, wait_for


def http_probe(service: StandInService, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "name": "app-http", "url": service.url, "timeout": 3,
            "expect_json": {"status": "healthy"}, "expect_version_file": str(service.version_file), **extra}


def run_health(make_ctx: Callable, settings: Settings, **kw: Any):
    ctx = make_ctx(settings, **kw)
    result = health.run(ctx, health.parse_args({"dry_run": kw.get("dry_run", False)}))
    return ctx, result


def test_every_probe_kind_passes_against_real_services(
        tmp_path: Path, settings: Callable[..., Settings], stand_in: StandInService, redis_server: RedisServer,
        make_ctx: Callable, clock) -> None:
    fresh = tmp_path / "reports" / "daily.txt"
    fresh.parent.mkdir(parents=True)
    fresh.write_text("x")
    os.utime(fresh, (clock().timestamp() - 60, clock().timestamp() - 60))
    config = settings({"redis": {"url": redis_server.url},
                       "health": {"probes": [
                           http_probe(stand_in, unit="app"),
                           {"kind": "redis", "name": "redis"},
                           {"kind": "unit", "name": "app-unit", "unit": "app"},
                           {"kind": "disk", "name": "disk", "path": str(tmp_path), "min_free_percent": 0.001,
                            "min_free_bytes": "1MiB"},
                           {"kind": "file_age", "name": "report", "path": str(fresh.parent), "max_age": "1h"}]}})
    ctx, result = run_health(make_ctx, config)
    assert result.outcome is None and not result.warnings
    assert [p["status"] for p in result.data["probes"]] == ["ok"] * 5
    assert "version 1.2.3" in result.data["probes"][0]["message"]
    assert result.data["probes"][1]["message"].startswith("PONG in")
    assert result.summary == "5/5 probe(s) ok"
    stored = ctx.state.get("health.last")
    assert stored["ok"] is True and [p["name"] for p in stored["probes"]] == [
        "app-http", "redis", "app-unit", "disk", "report"]
    assert ctx.state.get("health.probe.redis")["checks"] == 1
    assert any(line.startswith("ok       app-http (http): HTTP 200") for line in result.data["report"])


def test_version_mismatch_fails_the_http_probe(
        tmp_path: Path, settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable) -> None:
    deployed = tmp_path / "deployed-VERSION"
    deployed.write_text("2.0.0\n")
    config = settings({"health": {"probes": [http_probe(stand_in, expect_version_file=str(deployed))]}})
    ctx, result = run_health(make_ctx, config)
    assert result.outcome is Outcome.FAILED
    assert result.data["probes"][0]["message"] == "version '1.2.3' != '2.0.0' in the VERSION file"
    assert result.summary == "0/1 probe(s) ok; failed: app-http"
    assert ctx.state.get("health.last")["ok"] is False


def test_unhealthy_status_and_expected_field_are_both_reported(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable) -> None:
    stand_in.fail_flag.write_text("")
    _, result = run_health(make_ctx, settings({"health": {"probes": [http_probe(stand_in)]}}))
    message = result.data["probes"][0]["message"]
    assert "HTTP 503 (expected 200)" in message and "status = 'unhealthy' (expected 'healthy')" in message


def test_remediation_restarts_the_app_after_n_failures_then_counters_reset(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable, clock) -> None:
    config = settings({"health": {"probes": [http_probe(stand_in, unit="app")],
                                  "remediation": {"failures_before_restart": 3, "max_restarts": 3,
                                                  "window": "1h"}}})
    stand_in.fail_flag.write_text("")
    first_pid = stand_in.pid()
    for attempt in (1, 2):
        _, result = run_health(make_ctx, config)
        assert result.data["actions"] == [] and stand_in.pid() == first_pid, attempt
        clock.advance(300)
    with capture_logs() as logs:
        ctx, result = run_health(make_ctx, config)
    assert stand_in.pid() not in (None, first_pid)
    assert result.data["actions"][0] | {"time": None} == {
        "time": None, "unit": "app", "action": "restart", "outcome": "restarted", "probes": ["app-http"],
        "failures": 3, "error": None}
    assert "remediation: restarted app after 3 consecutive failure(s) of app-http" in result.data["report"]
    assert "restarted app" in result.summary
    assert [e["unit"] for e in logs if e["event"] == "health.remediated"] == ["app"]
    assert ctx.state.get("health.remediations")[-1]["outcome"] == "restarted"
    assert ctx.state.get("health.remediation")["failures"] == {"app-http": 0}

    # The app is still broken (the flag persists): counting starts again from zero, no restart on the next run.
    clock.advance(300)
    _, result = run_health(make_ctx, config)
    assert result.data["actions"] == []
    stand_in.fail_flag.unlink()
    wait_for(stand_in.healthy, timeout=10, message="app healthy")
    clock.advance(300)
    ctx, result = run_health(make_ctx, config)
    assert result.outcome is None
    assert ctx.state.get("health.remediation")["failures"] == {"app-http": 0}
    assert ctx.state.get("health.probe.app-http") | {"last_ok": None, "last_failure": None} == {
        "checks": 5, "failures": 4, "consecutive_failures": 0, "last_status": "ok",
        "last_message": ctx.state.get("health.probe.app-http")["last_message"], "last_ok": None,
        "last_failure": None}


def test_restart_budget_is_enforced_within_the_window_and_refills_after_it(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable, clock) -> None:
    config = settings({"health": {"probes": [http_probe(stand_in, unit="app")],
                                  "remediation": {"failures_before_restart": 1, "max_restarts": 2,
                                                  "window": "1h"}}})
    stand_in.fail_flag.write_text("")
    outcomes = []
    with capture_logs() as logs:
        for _ in range(4):  # every 10 minutes: restart, restart, exhausted, exhausted
            pid_before = stand_in.pid()
            _, result = run_health(make_ctx, config)
            outcomes.append((result.data["actions"][0]["outcome"], stand_in.pid() != pid_before))
            clock.advance(600)
    assert outcomes == [("restarted", True), ("restarted", True), ("budget_exhausted", False),
                        ("budget_exhausted", False)]
    assert len([e for e in logs if e["event"] == "health.restart_budget_exhausted"]) == 2
    assert any(line.startswith("remediation: restart budget exhausted for app (2 restart(s) in the last 60m)")
               for line in result.data["report"])
    clock.advance(3600)  # both restarts have left the window
    pid_before = stand_in.pid()
    _, result = run_health(make_ctx, config)
    assert result.data["actions"][0]["outcome"] == "restarted" and stand_in.pid() != pid_before


def test_budget_survives_a_new_state_handle(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable, clock) -> None:
    from maintd.state import State
    config = settings({"health": {"probes": [http_probe(stand_in, unit="app")],
                                  "remediation": {"failures_before_restart": 1, "max_restarts": 1}}})
    stand_in.fail_flag.write_text("")
    run_health(make_ctx, config)
    reopened = State.open(config.paths.state_dir)  # as after a daemon restart
    try:
        ctx = make_ctx(config)
        ctx.state = reopened
        result = health.run(ctx, {"dry_run": False})
    finally:
        reopened.close()
    assert result.data["actions"][0]["outcome"] == "budget_exhausted"


def test_dry_run_reports_the_restart_and_changes_nothing(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable) -> None:
    config = settings({"health": {"probes": [http_probe(stand_in, unit="app")],
                                  "remediation": {"failures_before_restart": 1}}})
    stand_in.fail_flag.write_text("")
    pid = stand_in.pid()
    ctx, result = run_health(make_ctx, config, dry_run=True)
    assert result.data["actions"][0]["outcome"] == "would"
    assert "remediation: would restart app after 1 consecutive failure(s) of app-http (dry run)" in result.data[
        "report"]
    assert stand_in.pid() == pid
    assert ctx.state.get("health.last") is None and ctx.state.get("health.remediation") is None


def test_restart_is_deferred_while_a_recovery_runs(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable, clock) -> None:
    config = settings({"health": {"probes": [http_probe(stand_in, unit="app")],
                                  "remediation": {"failures_before_restart": 1}}})
    stand_in.fail_flag.write_text("")
    ctx = make_ctx(config)
    ctx.state.record_start(RunRecord(run_id="rec-1", job="recover", trigger=Trigger.MANUAL, started=clock()))
    pid = stand_in.pid()
    result = health.run(ctx, {"dry_run": False})
    assert result.data["actions"][0]["outcome"] == "deferred"
    assert stand_in.pid() == pid
    assert ctx.state.get("health.remediation")["failures"] == {"app-http": 1}  # counting goes on
    assert ctx.state.get("health.remediation")["restarts"] == {}


def test_failed_restart_is_a_warning_and_counts_against_the_budget(
        settings: Callable[..., Settings], make_ctx: Callable) -> None:
    config = settings({"health": {"probes": [{"kind": "unit", "name": "ghost-unit", "unit": "ghost"}],
                                  "remediation": {"failures_before_restart": 1, "max_restarts": 1}}})
    ctx, result = run_health(make_ctx, config)
    assert result.data["probes"][0]["message"] == "ghost is not active"
    action = result.data["actions"][0]
    assert action["outcome"] == "failed" and "exited with 1" in action["error"]
    assert any(w.startswith("restart of ghost failed") for w in result.warnings)
    _, result = run_health(make_ctx, config)
    assert result.data["actions"][0]["outcome"] == "budget_exhausted"


def test_unit_probe_follows_the_service_manager(
        settings: Callable[..., Settings], stand_in: StandInService, make_ctx: Callable) -> None:
    config = settings({"health": {"probes": [{"kind": "unit", "name": "app-unit", "unit": "app"}]}})
    _, result = run_health(make_ctx, config)
    assert result.data["probes"][0]["status"] == "ok"
    stand_in.stop()
    _, result = run_health(make_ctx, config)
    assert result.data["probes"][0] | {"duration_s": 0} == {
        "name": "app-unit", "kind": "unit", "ok": False, "status": "failed", "message": "app is not active",
        "duration_s": 0, "unit": "app"}


def test_redis_probe_failures_down_and_with_password(
        tmp_path: Path, settings: Callable[..., Settings], redis_server: RedisServer, make_ctx: Callable) -> None:
    redis_server.client().config_set("requirepass", "pw-from-file")
    secret = tmp_path / "secrets" / "redis.pass"
    secret.write_text("pw-from-file\n")
    probes = {"health": {"probes": [{"kind": "redis", "name": "redis", "timeout": 2}]}}
    _, result = run_health(make_ctx, settings({"redis": {"url": redis_server.url, "password_file": str(secret)},
                                               **probes}))
    assert result.data["probes"][0]["status"] == "ok"
    _, result = run_health(make_ctx, settings({"redis": {"url": redis_server.url}, **probes}))
    assert result.data["probes"][0]["status"] == "failed"
    assert "pw-from-file" not in str(result.data)
    down = f"redis://127.0.0.1:{free_port()}/0"
    _, result = run_health(make_ctx, settings({"redis": {"url": down}, **probes}))
    assert "unreachable" in result.data["probes"][0]["message"]


def test_disk_probe_thresholds_and_missing_path(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    config = settings({"health": {"probes": [
        {"kind": "disk", "name": "roomy", "path": str(tmp_path), "min_free_percent": 0},
        {"kind": "disk", "name": "greedy", "path": str(tmp_path), "min_free_bytes": "1000TiB",
         "min_free_percent": ""},
        {"kind": "disk", "name": "gone", "path": str(tmp_path / "absent")}]}})
    _, result = run_health(make_ctx, config)
    roomy, greedy, gone = result.data["probes"]
    assert roomy["status"] == "ok" and "free" in roomy["message"]
    assert greedy["status"] == "failed" and greedy["message"].endswith("below 1000.0 TiB")
    assert gone["status"] == "failed" and "No such file" in gone["message"]


def test_file_age_probe_counts_the_newest_entry_one_level_down(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable, clock) -> None:
    watched = tmp_path / "backups-out"
    (watched / "sub").mkdir(parents=True)
    (watched / "empty").mkdir()
    old, new = watched / "old.tar", watched / "sub" / "new.tar"
    old.write_text("o")
    new.write_text("n")
    now = clock().timestamp()
    for path, age in ((old, 5 * 86400), (new, 2 * 3600), (watched / "sub", 3 * 86400),
                      (watched / "empty", 3 * 86400)):
        os.utime(path, (now - age, now - age))
    config = settings({"health": {"probes": [
        {"kind": "file_age", "name": "dir", "path": str(watched), "max_age": "3h"},
        {"kind": "file_age", "name": "file", "path": str(old), "max_age": "1d"},
        {"kind": "file_age", "name": "empty", "path": str(watched / "empty"), "max_age": "1d"},
        {"kind": "file_age", "name": "missing", "path": str(tmp_path / "nope"), "max_age": "1d"}]}})
    _, result = run_health(make_ctx, config)
    by_name = {p["name"]: p for p in result.data["probes"]}
    assert by_name["dir"]["status"] == "ok" and str(new) in by_name["dir"]["message"]
    assert by_name["file"]["status"] == "failed" and "5.0d old (limit 24.0h)" in by_name["file"]["message"]
    assert by_name["empty"]["message"].endswith("is empty")
    assert by_name["missing"]["status"] == "failed"


def test_a_probe_that_hangs_is_failed_at_its_deadline(
        settings: Callable[..., Settings], make_ctx: Callable) -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(3)"]
    config = settings({"services": {"command": {"is_active": hang, "timeout": 5}},
                       "health": {"probes": [{"kind": "unit", "name": "slow", "unit": "x", "timeout": 0.2}]}})
    ctx, result = run_health(make_ctx, config)
    probe = result.data["probes"][0]
    assert probe["message"] == "no answer within 0.2s"
    assert probe["duration_s"] < 2.5


def test_no_probes_is_a_success_with_a_note(settings: Callable[..., Settings], make_ctx: Callable) -> None:
    _, result = run_health(make_ctx, settings())
    assert result.summary == "no probes configured" and result.outcome is None


def test_parse_args_coerces_cli_strings() -> None:
    assert health.parse_args({"dry_run": "yes"}) == {"dry_run": True}
    assert health.parse_args({}) == {"dry_run": False}
    with pytest.raises(Exception, match="only dry_run"):
        health.parse_args({"verbose": "1"})
    with pytest.raises(Exception, match="true or false"):
        health.parse_args({"dry_run": "maybe"})
