"""The backup_age probe against real backups written by the backup job: a scheduled backup overdue by more than
backup.local_rpo fails it, an old backup whose successor is not due yet does not; the last drill degrades it."""

from __future__ import annotations

from typing import Callable

from maintd.config import Settings
from maintd.jobs import health
from maintd.jobs.backup import run_backup

# The clock starts on Sunday 2026-03-01 02:00 UTC; incrementals are due every 4 hours.
PROBES = {"health": {"probes": [{"kind": "backup_age", "name": "backups"}]}, "backup": {"local_rpo": "15m"},
          "jobs": {"backup-incremental": {"schedule": "0 */4 * * *"}}}


def probe(make_ctx: Callable, config: Settings) -> dict:
    return health.run(make_ctx(config), {"dry_run": False}).data["probes"][0]


def test_backup_age_fails_only_when_a_scheduled_backup_is_overdue(
        settings: Callable[..., Settings], make_ctx: Callable, clock) -> None:
    config = settings(PROBES)
    first = probe(make_ctx, config)
    assert first["status"] == "failed" and first["message"].startswith("local: no good backup")

    written = run_backup(config, make_ctx(config).state, "full", clock=clock)
    clock.advance(2 * 3600 + 14 * 60)  # 04:14: the 04:00 incremental may still be under way
    fine = probe(make_ctx, config)
    assert fine["status"] == "ok", fine
    assert fine["message"].startswith(f"the newest good backup {written.data['id']} is 2.2 h old")

    clock.advance(2 * 60)  # 04:16: the 04:00 backup is 16 minutes late
    late = probe(make_ctx, config)
    assert late["status"] == "failed"
    assert late["message"].startswith("local: backup-incremental was due at 2026-03-01 04:00 UTC (16 min ago, "
                                      "15 min late allowed) and no good backup was taken since")

    run_backup(config, make_ctx(config).state, "incremental", clock=clock)
    assert probe(make_ctx, config)["status"] == "ok"

    ctx = make_ctx(config)
    ctx.state.put("drill.last", {"time": "2026-03-01T01:00:00+00:00", "ok": False, "error": "key count 3 != 4"})
    result = health.run(ctx, {"dry_run": False})
    assert result.data["probes"][0]["status"] == "degraded"
    assert result.warnings[0].endswith("; last drill (2026-03-01T01:00:00+00:00) failed: key count 3 != 4")


def test_without_any_backup_schedule_the_probe_is_degraded_not_failed(
        settings: Callable[..., Settings], make_ctx: Callable, clock) -> None:
    config = settings({**PROBES, "jobs": {}})  # the test config clears every schedule
    run_backup(config, make_ctx(config).state, "full", clock=clock)
    clock.advance(30 * 86400)
    result = probe(make_ctx, config)
    assert result["status"] == "degraded"
    assert result["message"].startswith("local: no enabled backup schedule, nothing is due")
