"""A damaged chain is told, not hidden: the listing flags backups built on it, a new incremental is not built on it
(the chain's objects are checked against their manifests first), and status never calls it the newest good backup."""

from __future__ import annotations

from datetime import datetime, timezone

from maintd.backup import listing, tiers_status
from maintd.cli_render import backups_text
from maintd.health.backups import check_backups
from tests.integration.backup.conftest import BackupEnv, run_job


def _flip(env: BackupEnv, backup_id: str, name: str = "data.tar.zst.gpg") -> None:
    target = env.catalog.object_path(backup_id, name)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    target.write_bytes(bytes(raw))


def _chain(env: BackupEnv) -> tuple[str, str, str]:
    (env.data / "a.txt").write_text("a" * 5000)
    full = env.backup("full").data["id"]
    (env.data / "b.txt").write_text("b")
    inc = env.backup("incremental").data["id"]
    (env.data / "c.txt").write_text("c")
    newest = env.backup("incremental").data["id"]
    return full, inc, newest


def test_the_listing_flags_backups_whose_ancestor_failed_verify(backup_env) -> None:
    """The user trial: `maintctl backups` said VERIFIED ok for incrementals whose full had failed verify."""
    env: BackupEnv = backup_env()
    full, inc, newest = _chain(env)
    _flip(env, full)
    run_job(env, "verify", {"backup": newest})  # full fails, the incrementals pass themselves
    rows = {row["id"]: row for row in listing.describe_backups(env.settings, env.state)}
    assert rows[full]["verified"]["ok"] is False
    for backup_id in (inc, newest):
        verified = rows[backup_id]["verified"]
        assert verified["ok"] is False
        assert verified["self_ok"] is True
        assert verified["chain_damaged"] == f"{full} failed verify"
    text = backups_text(rows.values())
    assert text.count(f"chain damaged: {full} failed verify") == 2
    detail = listing.describe_backup(env.settings, env.state, newest)
    assert detail["verified"]["chain_damaged"] == f"{full} failed verify"


def test_the_listing_flags_a_missing_chain_member_even_when_never_verified(backup_env) -> None:
    env: BackupEnv = backup_env()
    full, inc, newest = _chain(env)
    env.catalog.delete(inc)
    rows = {row["id"]: row for row in listing.describe_backups(env.settings, env.state)}
    assert rows[full]["verified"] is None
    assert rows[newest]["verified"] == {"time": None, "ok": False, "level": None, "self_ok": None,
                                        "chain_damaged": f"{inc} missing"}


def test_an_incremental_is_not_built_on_a_chain_with_a_damaged_object(backup_env) -> None:
    """The user trial: after a full's archive was damaged (not yet verified), `backup incremental` built on it with
    outcome succeeded, and status called that incremental the newest good backup."""
    env: BackupEnv = backup_env()
    full, inc, _newest = _chain(env)
    _flip(env, full)
    (env.data / "d.txt").write_text("d")
    result = env.backup("incremental")
    assert result.data["type"] == "full" and result.data["parent"] is None
    assert any(full in w and "sha256" in w and "taking a full backup" in w for w in result.warnings)
    recorded = env.state.get(f"verify.{full}")
    assert recorded["ok"] is False and recorded["level"] == "checksum"
    assert "sha256 mismatch" in recorded["problems"][0]
    now = datetime.now(timezone.utc)
    local = tiers_status.status(env.settings, env.state, now)[0]
    assert local["newest"] == result.data["id"]
    _status, detail = check_backups(env.settings, env.state, now)
    assert f"the newest good backup {result.data['id']}" in detail


def test_newest_good_backup_skips_backups_on_a_chain_that_failed_verify(backup_env) -> None:
    env: BackupEnv = backup_env()
    full, inc, newest = _chain(env)
    _flip(env, full)
    run_job(env, "verify", {"backup": newest})
    now = datetime.now(timezone.utc)
    local = tiers_status.status(env.settings, env.state, now)[0]
    assert local["newest"] is None and local["stale"] is True
    _status, detail = check_backups(env.settings, env.state, now)
    assert newest not in detail and "no good backup" in detail


def test_an_intact_chain_still_gets_an_incremental(backup_env) -> None:
    env: BackupEnv = backup_env()
    full, inc, newest = _chain(env)
    (env.data / "e.txt").write_text("e")
    result = env.backup("incremental")
    assert result.data["type"] == "incremental" and result.data["parent"] == newest
    assert env.state.get(f"verify.{full}") is None
