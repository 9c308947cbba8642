"""The whole path with the real backup job (real gpg, real trees): commit, tier copy read back, prune after."""

from __future__ import annotations

from pathlib import Path

from maintd.backup import tiers
from maintd.backup.catalog import Catalog
from maintd.jobs import backup, prune
from maintd.model import Outcome
from maintd.runtime.runner import Runner
from maintd.state import State


def test_a_real_backup_lands_on_the_tier_verified_and_prune_runs_after_it(tmp_path: Path, settings) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    (tmp_path / "data" / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "notes.txt").write_text("hello\n" * 1000)
    loaded = settings({"backup": {"tiers": [{"name": "nas", "path": str(nas)}],
                                  "retention": {"full_days": 0, "daily": 0, "weekly": 0, "monthly": 0,
                                                "yearly": 0}}})
    state = State.open(loaded.paths.state_dir)
    try:
        runner = Runner(loaded, state, {"backup": backup.JOB, "prune": prune.JOB})
        first = runner.run_sync("backup", args={"type": "full"})
        assert first.outcome is Outcome.SUCCEEDED, first.error
        second = runner.run_sync("backup", args={"type": "full"})
        assert second.outcome is Outcome.SUCCEEDED, second.error
        catalog = Catalog(loaded.paths.backup_root)
        newest = catalog.list()[-1]
        # prune after the second backup removed the first (no rule keeps it), locally and on the tier.
        assert [m.id for m in catalog.list()] == [newest.id]
        assert tiers.store_for(loaded, loaded.backup.tiers[0]).present() == {newest.id}
        assert state.get(f"tier.nas.{newest.id}")["ok"] is True
        for name in [*newest.objects, "manifest.json"]:
            assert (nas / newest.id / name).read_bytes() == catalog.object_path(newest.id, name).read_bytes()
        row = tiers.status(loaded, state, newest.created)[1]
        assert (row["newest"], row["stale"]) == (newest.id, False)
    finally:
        state.close()
