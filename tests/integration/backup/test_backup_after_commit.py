"""What the backup job does after its commit: prune (whose deletions the operator must see in the result)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.integration.backup.conftest import BackupEnv

T0 = datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)
KEEP_FULLS_ONLY = {"incremental_days": 0, "differential_days": 0, "full_days": 365, "daily": 0, "weekly": 0,
                   "monthly": 0, "yearly": 0}


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_backup_result_lists_what_prune_after_backup_deleted(backup_env) -> None:
    env: BackupEnv = backup_env({"backup": {"retention": KEEP_FULLS_ONLY}})
    (env.data / "a.txt").write_text("a")
    clock = Clock(T0)
    first = env.backup("full", clock=clock).data
    assert first["pruned"] == [] and not any(line.startswith("pruned") for line in first["report"])
    incs = []
    for hours in (1, 2):
        clock.moment = T0 + timedelta(hours=hours)
        (env.data / "a.txt").write_text(f"a{hours}")
        incs.append(env.backup("incremental", clock=clock).data["id"])
    clock.moment = T0 + timedelta(hours=3)
    result = env.backup("full", clock=clock)
    assert result.data["pruned"] == incs
    assert [line for line in result.data["report"] if line.startswith("pruned")] == [
        f"pruned {i}: older than 0 days (incremental) and no period rule keeps it" for i in incs]
    assert [m.id for m in env.catalog.list()] == [first["id"], result.data["id"]]
