"""Dir tiers for real: copies on another directory, read back, corruption found, failures as warnings, status."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from maintd.backup import tiers
from maintd.errors import Cancelled
from maintd.state import State
from tests.integration.tiers.store_builder import UTC, Clock, Store, make_ctx

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def nas(tmp_path: Path) -> Path:
    path = tmp_path / "nas"
    path.mkdir()
    return path


@pytest.fixture
def env(tmp_path: Path, settings, nas: Path):
    loaded = settings({"backup": {"tiers": [{"name": "nas", "path": str(nas), "rpo": "1h"}]}})
    state = State.open(loaded.paths.state_dir)
    yield loaded, state, Store(loaded.paths.backup_root)
    state.close()


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_backup_and_its_chain_are_copied_read_back_and_recorded(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=5), "full")
    inc = store.add(NOW - timedelta(hours=1), "incremental")
    ctx = make_ctx(settings, state, NOW)
    results = tiers.replicate(ctx, inc)
    assert results == [{"tier": "nas", "ok": True, "copied": [full.id, inc.id], "error": None}]
    for manifest in (full, inc):
        assert files_of(nas / manifest.id) == files_of(settings.paths.backup_root / manifest.id)
        assert state.get(f"tier.nas.{manifest.id}") == {"time": NOW.isoformat(), "ok": True, "error": None}
    assert sorted(os.listdir(nas)) == [".incomplete", full.id, inc.id]
    assert os.listdir(nas / ".incomplete") == []
    assert ctx.warnings == []
    progress = [fields for name, fields in ctx.events if name == "progress"]
    copied = sum(p.stat().st_size for m in (full, inc) for p in (nas / m.id).iterdir())
    assert progress[-1]["done_bytes"] == progress[-1]["total_bytes"] == copied
    again = tiers.replicate(ctx, store.add(NOW, "incremental"))
    assert again[0]["copied"] == [store.made[-1].id]  # only what the tier lacks


def test_damaged_copy_is_found_reported_and_replaced_by_the_next_copy(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=3), "full")
    clock = Clock(NOW - timedelta(hours=3))
    tiers.replicate(make_ctx(settings, state, clock), full)
    victim = nas / full.id / "data.tar.zst.gpg"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x01
    victim.write_bytes(bytes(data))

    clock.now = NOW
    ctx = make_ctx(settings, state, clock, job="verify")
    found = tiers.verify_copies(ctx)
    assert found[0]["checked"] == 1
    assert found[0]["damaged"] == [{"id": full.id, "problems": [
        f"{full.id}/data.tar.zst.gpg sha256 {_sha(bytes(data))[:12]} != {full.objects['data.tar.zst.gpg']['sha256'][:12]}"]}]
    assert state.get(f"tier.nas.{full.id}")["ok"] is False
    assert any("damaged" in w for w in ctx.warnings)
    row = tiers.status(settings, state, NOW)[1]
    assert (row["name"], row["newest"], row["stale"]) == ("nas", None, True)

    inc = store.add(NOW - timedelta(minutes=5), "incremental")
    result = tiers.replicate(make_ctx(settings, state, clock), inc)
    assert result[0]["copied"] == [full.id, inc.id]  # the damaged full came again with the new chain
    assert files_of(nas / full.id) == files_of(settings.paths.backup_root / full.id)
    assert tiers.verify_copies(make_ctx(settings, state, clock))[0]["damaged"] == []
    assert os.listdir(nas / ".deleting") == []


def test_local_object_that_no_longer_matches_its_manifest_is_not_copied(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=1), "full")
    (settings.paths.backup_root / full.id / "data.index.zst.gpg").write_bytes(b"rot")
    ctx = make_ctx(settings, state, NOW)
    result = tiers.replicate(ctx, full)
    assert result[0]["ok"] is False
    assert "does not match its manifest" in result[0]["error"]
    assert ctx.warnings == [f"tier nas: {full.id} not copied: {result[0]['error']}"]
    assert not (nas / full.id).exists() and os.listdir(nas / ".incomplete") == []
    assert state.get(f"tier.nas.{full.id}")["ok"] is False


def test_unreachable_tier_is_a_warning_and_goes_stale_with_its_error_once_its_rpo_passes(env, nas: Path) -> None:
    settings, state, store = env
    nas.rmdir()  # not mounted
    full = store.add(NOW - timedelta(minutes=2), "full")
    ctx = make_ctx(settings, state, NOW)
    result = tiers.replicate(ctx, full)
    assert result[0]["ok"] is False and "not a directory" in result[0]["error"]
    assert len(ctx.warnings) == 1
    local, tier = tiers.status(settings, state, NOW)
    assert (local["newest"], local["stale"], local["age_s"]) == (full.id, False, 120.0)
    # The copy has the tier's RPO (1 h) to arrive: not stale yet, but the error shows.
    assert (tier["newest"], tier["stale"], tier["ok"]) == (None, False, True)
    assert "not a directory" in tier["error"]
    assert tiers.stale_tiers(settings, state, NOW) == []
    later = NOW + timedelta(hours=1)
    assert tiers.stale_tiers(settings, state, later) == [
        f"nas: lacks {full.id} (1 h old, RPO 1 h); no verified copy; last error: {tier['error']}"]


def test_leftovers_of_an_interrupted_copy_are_invisible_and_cleaned(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=1), "full")
    (nas / ".incomplete" / full.id).mkdir(parents=True)
    (nas / ".incomplete" / full.id / "data.tar.zst.gpg").write_bytes(b"half")
    (nas / ".deleting" / "old").mkdir(parents=True)
    store_view = tiers.store_for(settings, settings.backup.tiers[0])
    assert store_view.present() == set()
    tiers.replicate(make_ctx(settings, state, NOW), full)
    assert store_view.present() == {full.id}
    assert os.listdir(nas / ".incomplete") == [] and os.listdir(nas / ".deleting") == []


def test_a_cancelled_run_stops_copying_and_commits_nothing(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=1), "full", size=3 << 20)
    ctx = make_ctx(settings, state, NOW)
    ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        tiers.replicate(ctx, full)
    assert not (nas / full.id).exists()


def test_status_judges_each_place_against_its_objective(settings, nas: Path) -> None:
    """Local: stale when a scheduled backup is overdue by more than local_rpo (not when the newest is merely older
    than it). A tier: stale when a good local backup older than its rpo is newer than its newest verified copy."""
    loaded = settings({"backup": {"tiers": [{"name": "nas", "path": str(nas), "rpo": "1h"}]},
                       "jobs": {"backup-incremental": {"schedule": "0 */4 * * *"}}})
    state = State.open(loaded.paths.state_dir)
    store = Store(loaded.paths.backup_root)
    old = store.add(NOW - timedelta(hours=4), "full")  # the 08:00 backup, copied to the tier
    tiers.replicate(make_ctx(loaded, state, NOW), old)
    new = store.add(NOW - timedelta(minutes=10), "incremental")  # 11:50, not copied yet
    state.put(f"verify.{new.id}", {"time": NOW.isoformat(), "ok": True})
    local, nas_row = tiers.status(loaded, state, NOW)
    assert local == {"name": "local", "kind": "local", "where": str(loaded.paths.backup_root), "newest": new.id,
                     "created": new.created.isoformat(), "age_s": 600.0, "rpo_s": 900.0, "stale": False,
                     "ok": True, "verified": True, "error": None, "due": (NOW - timedelta(hours=4)).isoformat(),
                     "due_entry": "backup-incremental", "scheduled": True,
                     "detail": f"the newest good backup {new.id} is 10 min old; the last backup due "
                               "(backup-incremental at 2026-12-03 08:00 UTC) was taken"}
    assert (nas_row["newest"], nas_row["age_s"], nas_row["rpo_s"], nas_row["stale"]) == (old.id, 14400.0, 3600.0,
                                                                                         False)
    assert nas_row["detail"] == f"newest verified copy {old.id} (4 h old)"
    assert tiers.stale_tiers(loaded, state, NOW) == []
    # 13:00: the 12:00 backup never came (local is overdue) and the tier lacks the 11:50 one for over an hour.
    assert tiers.stale_tiers(loaded, state, NOW + timedelta(hours=1)) == [
        f"local: backup-incremental was due at 2026-12-03 12:00 UTC (1 h ago, 15 min late allowed) and no good "
        f"backup was taken since; the newest good backup {new.id} is 1.2 h old",
        f"nas: lacks {new.id} (1.2 h old, RPO 1 h); newest verified copy {old.id} (5 h old)"]
    state.close()


def test_a_partial_or_damaged_local_backup_is_not_the_newest_good_one(env) -> None:
    settings, state, store = env
    good = store.add(NOW - timedelta(hours=2), "full")
    store.add(NOW - timedelta(hours=1), "full", outcome="partial")
    damaged = store.add(NOW - timedelta(minutes=30), "full")
    state.put(f"verify.{damaged.id}", {"time": NOW.isoformat(), "ok": False})
    assert tiers.status(settings, state, NOW)[0]["newest"] == good.id


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_a_copy_without_a_record_is_read_back_before_it_is_trusted(env, nas: Path) -> None:
    settings, state, store = env
    full = store.add(NOW - timedelta(hours=2), "full")
    tiers.replicate(make_ctx(settings, state, NOW), full)
    state.delete(f"tier.nas.{full.id}")  # killed between the rename and the record, or a new state.db
    inc = store.add(NOW - timedelta(hours=1), "incremental")
    result = tiers.replicate(make_ctx(settings, state, NOW), inc)
    assert result[0]["copied"] == [inc.id]  # the full was checked, found intact, not copied again
    assert state.get(f"tier.nas.{full.id}")["ok"] is True
    state.delete(f"tier.nas.{full.id}")
    (nas / full.id / "data.index.zst.gpg").write_bytes(b"x")
    result = tiers.replicate(make_ctx(settings, state, NOW), store.add(NOW, "incremental"))
    assert result[0]["copied"][0] == full.id  # found damaged: copied again
