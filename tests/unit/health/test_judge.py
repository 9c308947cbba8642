"""Pure probe verdicts: HTTP replies, disk thresholds, ages, backup and drill state."""

from __future__ import annotations

from pathlib import Path

from maintd.config import DiskProbe, HttpProbe
from maintd.health.backups import judge_drill, judge_local, judge_tiers
from maintd.health.judge import judge_age, judge_disk, judge_http
from maintd.health.result import worst

PROBE = HttpProbe(name="bridge", url="http://x/health", expect_json={"status": "healthy"})


def test_http_ok_mentions_status_time_and_version() -> None:
    assert judge_http(PROBE, 200, {"status": "healthy", "version": "1.2.3"}, 0.0123, "1.2.3") == (
        "ok", "HTTP 200 in 12.3 ms, version 1.2.3")


def test_http_collects_every_problem() -> None:
    status, message = judge_http(PROBE, 500, {"version": "1.0"}, 0.1, "1.2.3")
    assert status == "failed"
    assert message == ("HTTP 500 (expected 200); status missing (expected 'healthy'); "
                       "version '1.0' != '1.2.3' in the VERSION file")


def test_http_body_that_is_not_an_object_fails_only_when_fields_are_expected() -> None:
    assert judge_http(PROBE, 200, ["x"], 0.1, None)[1] == "reply is not a JSON object"
    bare = HttpProbe(name="mcp", url="http://x/health")
    assert judge_http(bare, 200, None, 0.1, None)[0] == "ok"


def test_http_version_numbers_compare_as_text() -> None:
    assert judge_http(HttpProbe(name="v", url="http://x"), 200, {"version": 2}, 0.1, "2")[0] == "ok"


def test_disk_thresholds_bytes_and_percent() -> None:
    probe = DiskProbe(name="d", path=Path("/data"), min_free_bytes="10GiB", min_free_percent=10)
    gib = 1 << 30
    assert judge_disk(probe, 50 * gib, 100 * gib) == ("ok", "50.0 GiB free (50.0%) on /data")
    assert judge_disk(probe, 5 * gib, 100 * gib) == (
        "failed", "5.0 GiB free (5.0%) on /data: below 10.0 GiB and below 10%")
    assert judge_disk(probe, 11 * gib, 200 * gib)[1].endswith("below 10%")


def test_age_verdict() -> None:
    assert judge_age("f", 30, 60) == ("ok", "f is 30s old (limit 60s)")
    assert judge_age("f", 7200, 3600) == ("failed", "f is 2.0h old (limit 60m)")


def test_local_verdict_follows_the_status_row() -> None:
    assert judge_local({"stale": True, "scheduled": True, "detail": "no good backup"}) == (
        "failed", "local: no good backup")
    assert judge_local({"stale": False, "scheduled": True, "detail": "the newest good backup x is 3 h old"}) == (
        "ok", "the newest good backup x is 3 h old")
    # Nothing scheduled: nothing can be overdue, and nothing will be taken either.
    assert judge_local({"stale": False, "scheduled": False, "detail": "no enabled backup schedule"})[0] == (
        "degraded")


def test_tiers_and_drill_verdicts() -> None:
    assert judge_tiers([]) is None
    assert judge_tiers(["offsite: newest x is 2d old (RPO 1d)"]) == (
        "failed", "stale tier(s): offsite: newest x is 2d old (RPO 1d)")
    assert judge_drill(None) is None
    assert judge_drill({"time": "t", "ok": True}) is None
    assert judge_drill({"time": "t", "outcome": "failed", "error": "keys differ"}) == (
        "degraded", "last drill (t) failed: keys differ")
    assert worst(["ok", "degraded"]) == "degraded" and worst(["degraded", "failed"]) == "failed"
    assert worst([]) == "ok"
