"""The backup_age probe against a real backup written by the backup job, and the last drill's result."""

from __future__ import annotations

import re
from typing import Callable

from maintd.config import Settings
from maintd.jobs import health
from maintd.jobs.backup import run_backup

PROBES = {"health": {"probes": [{"kind": "backup_age", "name": "backups"}]}, "backup": {"local_rpo": "15m"}}


def test_backup_age_follows_the_newest_good_backup_and_the_drill(
        settings: Callable[..., Settings], make_ctx: Callable, clock) -> None:
    config = settings(PROBES)
    ctx = make_ctx(config)
    result = health.run(ctx, {"dry_run": False})
    assert result.outcome is not None and result.outcome.value == "failed"
    assert "no good" in result.data["probes"][0]["message"]

    written = run_backup(config, ctx.state, "full", clock=clock)
    assert written.outcome is None or written.outcome.value in ("succeeded", "warning")

    clock.advance(300)
    result = health.run(make_ctx(config), {"dry_run": False})
    probe = result.data["probes"][0]
    assert probe["status"] == "ok", probe
    assert probe["message"].startswith("newest good backup 5m old (objective 15m)")

    ctx = make_ctx(config)
    ctx.state.put("drill.last", {"time": "2026-03-01T01:00:00+00:00", "ok": False, "error": "key count 3 != 4"})
    result = health.run(ctx, {"dry_run": False})
    assert result.data["probes"][0]["status"] == "degraded"
    assert result.outcome is None and result.warnings == [
        "backups: newest good backup 5m old (objective 15m); "
        "last drill (2026-03-01T01:00:00+00:00) failed: key count 3 != 4"]

    ctx.state.put("drill.last", {"time": "2026-03-01T01:30:00+00:00", "ok": True})
    clock.advance(3600)
    result = health.run(make_ctx(config), {"dry_run": False})
    assert result.data["probes"][0]["status"] == "failed"
    # Worded by the catalog alone, or by maintd.backup.tiers.stale_tiers (local store + tiers) when present.
    assert re.search(r"(65m|1\.1 ?h) old", result.data["probes"][0]["message"])
