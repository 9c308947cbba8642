"""The rsync tier for real, with a local destination path (rsync without SSH; no sshd is started)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from maintd.backup import tiers
from maintd.state import State
from tests.integration.tiers.store_builder import UTC, Store, make_ctx

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path, settings):
    remote = tmp_path / "remote"
    loaded = settings({"backup": {"tiers": [{"name": "offsite", "kind": "rsync", "path": str(remote),
                                             "rpo": "24h"}],
                                  "retention": {"incremental_days": 1, "differential_days": 0, "full_days": 0,
                                                "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}}})
    state = State.open(loaded.paths.state_dir)
    yield loaded, state, Store(loaded.paths.backup_root), remote
    state.close()


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_rsync_copy_is_hashed_on_the_destination_and_renamed_into_place(env) -> None:
    settings, state, store, remote = env
    full = store.add(NOW - timedelta(hours=2), "full")
    inc = store.add(NOW - timedelta(hours=1), "incremental")
    ctx = make_ctx(settings, state, NOW)
    assert tiers.replicate(ctx, inc) == [{"tier": "offsite", "ok": True, "copied": [full.id, inc.id],
                                          "error": None}]
    for manifest in (full, inc):
        assert files_of(remote / manifest.id) == files_of(settings.paths.backup_root / manifest.id)
        assert state.get(f"tier.offsite.{manifest.id}")["ok"] is True
    assert os.listdir(remote / ".incomplete") == []
    row = tiers.status(settings, state, NOW)[1]
    assert (row["name"], row["kind"], row["newest"], row["stale"]) == ("offsite", "rsync", inc.id, False)


def test_corrupted_rsync_copy_is_detected_by_the_remote_hash(env) -> None:
    settings, state, store, remote = env
    full = store.add(NOW - timedelta(hours=2), "full")
    tiers.replicate(make_ctx(settings, state, NOW), full)
    victim = remote / full.id / "data.index.zst.gpg"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    ctx = make_ctx(settings, state, NOW, job="verify")
    found = tiers.verify_copies(ctx)
    assert [d["id"] for d in found[0]["damaged"]] == [full.id]
    assert found[0]["damaged"][0]["problems"][0].startswith(f"{full.id}/data.index.zst.gpg sha256 ")
    assert state.get(f"tier.offsite.{full.id}")["ok"] is False
    assert tiers.status(settings, state, NOW)[1]["newest"] is None


def test_an_interrupted_transfer_is_continued_and_abandoned_ones_removed(env) -> None:
    settings, state, store, remote = env
    full = store.add(NOW - timedelta(hours=2), "full")
    staged = remote / ".incomplete" / full.id
    staged.mkdir(parents=True)
    (staged / "data.tar.zst.gpg").write_bytes((settings.paths.backup_root / full.id / "data.tar.zst.gpg")
                                              .read_bytes())
    (remote / ".incomplete" / "20200101T000000.000000Z-full").mkdir()  # an abandoned one: removed
    result = tiers.replicate(make_ctx(settings, state, NOW), full)
    assert result[0]["ok"] is True
    assert os.listdir(remote / ".incomplete") == []
    assert files_of(remote / full.id) == files_of(settings.paths.backup_root / full.id)


def test_prune_on_an_rsync_tier_plans_over_the_tier_manifests(env) -> None:
    settings, state, store, remote = env
    old = store.add(NOW - timedelta(days=3), "full")
    tiers.replicate(make_ctx(settings, state, NOW - timedelta(days=3)), old)
    new = store.add(NOW - timedelta(hours=2), "full")
    tiers.replicate(make_ctx(settings, state, NOW), new)
    ctx = make_ctx(settings, state, NOW, job="prune")
    dry = tiers.prune_tiers(ctx, dry_run=True)
    assert dry[0]["deleted"] == [old.id] and (remote / old.id).is_dir()
    assert f"tier offsite: would delete {old.id}: older than 0 days (full) and no period rule keeps it" in dry[0][
        "report"]
    done = tiers.prune_tiers(ctx, dry_run=False)
    assert done[0]["deleted"] == [old.id]
    assert sorted(p for p in os.listdir(remote) if not p.startswith(".")) == [new.id]
    assert state.get(f"tier.offsite.{old.id}") is None
    assert os.listdir(remote / ".deleting") == []
    assert os.listdir(settings.paths.state_dir / "tier-scratch") == []  # fetched manifests not left behind


def test_a_fresh_rsync_tier_prunes_and_verifies_nothing_without_errors(env) -> None:
    settings, state, store, remote = env
    ctx = make_ctx(settings, state, NOW, job="prune")
    assert tiers.prune_tiers(ctx, dry_run=False) == [{"tier": "offsite", "deleted": [], "report": [],
                                                      "error": None}]
    assert tiers.verify_copies(ctx) == [{"tier": "offsite", "checked": 0, "damaged": [], "error": None}]
    assert ctx.warnings == [] and not remote.exists()


def test_an_rsync_copy_without_its_manifest_is_reported_damaged(env) -> None:
    settings, state, store, remote = env
    full = store.add(NOW - timedelta(hours=2), "full")
    tiers.replicate(make_ctx(settings, state, NOW), full)
    (remote / full.id / "manifest.json").unlink()
    found = tiers.verify_copies(make_ctx(settings, state, NOW, job="verify"))
    assert found[0]["damaged"] == [{"id": full.id, "problems": [f"{full.id}/manifest.json missing or unreadable"]}]
    again = tiers.replicate(make_ctx(settings, state, NOW), full)  # damaged: copied afresh
    assert again[0]["copied"] == [full.id] and (remote / full.id / "manifest.json").is_file()
