"""What the backup job does after its commit: prune (whose deletions the operator must see in the result)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from maintd.errors import BusyError
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


def test_tier_copies_and_prune_run_while_the_backup_still_holds_the_writer_lock(backup_env, tmp_path) -> None:
    """An offline restore (another process) takes the store's writer lock: it must not slip in between the commit
    and the tier copies or the prune."""
    nas = tmp_path / "nas"
    nas.mkdir()
    env: BackupEnv = backup_env({"backup": {"tiers": [{"name": "nas", "path": str(nas)}]}})
    (env.data / "a.txt").write_text("a")
    seen: list[str] = []

    def during(fields: dict) -> None:
        if str(fields.get("phase", "")).startswith("tier "):
            try:
                with env.catalog.writer_lock():  # a new open file description: as another process would
                    seen.append("free")
            except BusyError:
                seen.append("held")

    result = env.backup("full", progress=during)
    assert (nas / result.data["id"]).is_dir()
    assert seen and set(seen) == {"held"}
