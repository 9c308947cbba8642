"""verify: every object decrypted and hashed, every member checked against the index; damage named precisely."""

from __future__ import annotations

import os

from maintd.model import Outcome
from tests.integration.backup.conftest import BackupEnv, run_job


def _tree(env: BackupEnv, files: int = 300) -> None:
    for number in range(files):
        directory = env.data / f"d{number % 7}"
        directory.mkdir(exist_ok=True)
        # incompressible content so that the archive object is large and a flipped byte lands inside a member
        (directory / f"f{number:04d}.bin").write_bytes(os.urandom(2000 + number))


def test_verify_passes_a_good_chain_and_stores_the_result(backup_env) -> None:
    env: BackupEnv = backup_env()
    _tree(env)
    full = env.backup("full").data["id"]
    (env.data / "d0" / "new.txt").write_text("new")
    inc = env.backup("incremental").data["id"]
    events: list[dict] = []
    result = run_job(env, "verify", {"all": "true"}, events)
    assert result.outcome is None, result.data["report"]
    assert [b["id"] for b in result.data["backups"]] == [full, inc]
    assert all(b["ok"] for b in result.data["backups"])
    assert result.data["backups"][0]["hashed"] == 300
    stored = env.state.get(f"verify.{inc}")
    assert stored["ok"] is True and stored["level"] == "full" and stored["problems"] == []
    assert any(e["event"] == "progress" for e in events) or len(events) == 0


def test_one_flipped_byte_is_found_and_named(backup_env) -> None:
    env: BackupEnv = backup_env()
    _tree(env)
    backup_id = env.backup("full").data["id"]
    target = env.catalog.object_path(backup_id, "data.tar.zst.gpg")
    raw = bytearray(target.read_bytes())
    raw[len(raw) * 2 // 3] ^= 0x10
    target.write_bytes(bytes(raw))
    result = run_job(env, "verify", {"backup": backup_id})
    assert result.outcome == Outcome.FAILED
    problems = result.data["backups"][0]["problems"]
    text = "\n".join(problems)
    assert f"backup {backup_id} object data.tar.zst.gpg" in text
    assert "sha256 mismatch" in text
    assert "member" in text  # where decoding the damaged object broke, or the member whose content differs
    assert backup_id in result.summary
    stored = env.state.get(f"verify.{backup_id}")
    assert stored["ok"] is False and stored["problems"] == problems


def test_sample_verify_hashes_a_share_of_members_but_every_object(backup_env) -> None:
    env: BackupEnv = backup_env()
    _tree(env)
    backup_id = env.backup("full").data["id"]
    result = run_job(env, "verify", {"backup": "latest", "sample": "10"})
    report = result.data["backups"][0]
    assert report["id"] == backup_id and report["ok"] and report["level"] == "sample"
    assert 0 < report["hashed"] < 100
    index_object = env.catalog.object_path(backup_id, "config.index.zst.gpg")
    raw = bytearray(index_object.read_bytes())
    raw[-5] ^= 0x01
    index_object.write_bytes(bytes(raw))
    damaged = run_job(env, "verify", {"backup": backup_id, "sample": 1})
    assert damaged.outcome == Outcome.FAILED
    assert "config.index.zst.gpg" in "\n".join(damaged.data["backups"][0]["problems"])


def test_a_member_whose_content_differs_from_the_index_is_named(backup_env) -> None:
    """Same object bytes but an index that disagrees: rewrite the index as a forger would (re-encrypted, manifest
    updated), and verify still names the member."""
    from maintd.backup import index, reader
    from maintd.backup.catalog import MANIFEST
    from maintd.backup.streams import ObjectWriter
    import json

    env: BackupEnv = backup_env()
    _tree(env, files=20)
    backup_id = env.backup("full").data["id"]
    entries = env.index(backup_id)
    victim = next(e for e in entries if e.type == index.FILE)
    victim.hash = "0" * 64
    directory = env.catalog.root / backup_id
    name = "data.index.zst.gpg"
    (directory / name).unlink()
    writer = ObjectWriter(directory / name, env.gpg)
    writer.write("".join(index.serialise(("data", str(env.data), backup_id), entries)).encode())
    info = writer.close()
    os.rename(directory / f"{name}.tmp", directory / name)
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["objects"][name] = {"size": info.size, "sha256": info.sha256}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    assert reader.check_object(env.catalog, backup_id, name) is None
    result = run_job(env, "verify", {"backup": backup_id})
    assert result.outcome == Outcome.FAILED
    assert f"member {victim.name!r}: content sha256 differs from the index" in "\n".join(
        result.data["backups"][0]["problems"])


def test_verify_with_a_wrong_passphrase_fails_at_the_key_check_and_records_nothing(backup_env) -> None:
    """The user trial: a typo in the passphrase file made verify record every backup as failed, and the next
    prune deleted them all. A key the backups refuse is not damage."""
    import pytest

    from maintd.errors import GpgError

    env: BackupEnv = backup_env()
    _tree(env, files=20)
    env.backup("full")
    newest = env.backup("incremental").data["id"]
    assert env.settings.backup.passphrase_file is not None
    env.settings.backup.passphrase_file.write_text("correct horse battery stapel\n")
    with pytest.raises(GpgError, match=f"the configured key does not open the newest backup {newest}") as refused:
        run_job(env, "verify", {"all": "true"})
    assert "gpg:" not in str(refused.value) and refused.value.detail is None  # one clear message, no raw stderr
    with pytest.raises(GpgError, match="does not open the newest backup") as refused_backup:
        env.backup("incremental")
    assert "gpg:" not in str(refused_backup.value) and refused_backup.value.detail is None
    with pytest.raises(GpgError, match="Nothing was verified or recorded"):
        run_job(env, "verify", {"backup": "latest"})
    assert list(env.state.items("verify.")) == []


def test_a_backup_the_current_key_cannot_open_is_not_verified_rather_than_damaged(backup_env) -> None:
    env: BackupEnv = backup_env({"backup": {"allow_new_key": True}})
    _tree(env, files=20)
    old = env.backup("full").data["id"]
    assert env.settings.backup.passphrase_file is not None
    env.settings.backup.passphrase_file.write_text("a deliberately new passphrase\n")
    new = env.backup("full").data["id"]
    result = run_job(env, "verify", {"all": "true"})
    assert result.outcome is None  # a warning: nothing damaged, one backup this key cannot check
    assert [b["id"] for b in result.data["backups"]] == [new]
    assert result.data["not_verified"][0]["id"] == old
    assert "does not open" in result.data["not_verified"][0]["reason"]
    assert result.warnings and old in result.warnings[0]
    assert env.state.get(f"verify.{old}") is None
    assert env.state.get(f"verify.{new}")["ok"] is True


def test_verifying_the_newest_backup_verifies_its_whole_chain(backup_env) -> None:
    """The user trial: `maintctl verify` said "all ok" for the newest incremental while its full was damaged, and
    `restore latest` failed."""
    env: BackupEnv = backup_env()
    _tree(env, files=30)
    full = env.backup("full").data["id"]
    (env.data / "d0" / "new.txt").write_text("new")
    inc = env.backup("incremental").data["id"]
    (env.data / "d1" / "newer.txt").write_text("newer")
    newest = env.backup("incremental").data["id"]
    target = env.catalog.object_path(full, "data.tar.zst.gpg")
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    target.write_bytes(bytes(raw))
    result = run_job(env, "verify", {})
    assert result.outcome == Outcome.FAILED
    assert [b["id"] for b in result.data["backups"]] == [full, inc, newest]
    assert [b["ok"] for b in result.data["backups"]] == [False, True, True]
    assert result.data["requested"] == [newest]
    assert full in result.summary
    assert f"{newest}: its chain holds {full} (damaged or not verified): a restore of it would fail" in (
        result.data["report"])
    assert env.state.get(f"verify.{full}")["ok"] is False
    assert env.state.get(f"verify.{inc}")["ok"] is True and env.state.get(f"verify.{newest}")["ok"] is True
    every = run_job(env, "verify", {"all": "true"})
    assert (f"2 backup(s) intact themselves but built on a damaged or unverified one (a restore of them would "
            f"fail): {inc}, {newest}") in every.data["report"]
    target.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated now
    assert run_job(env, "verify", {"backup": inc}).data["backups"][0]["ok"] is False


def test_verify_all_also_rereads_the_tier_copies(backup_env, tmp_path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    env: BackupEnv = backup_env({"backup": {"tiers": [{"name": "nas", "path": str(nas)}]}})
    _tree(env, files=10)
    full = env.backup("full").data["id"]
    (env.data / "d0" / "new.txt").write_text("new")
    inc = env.backup("incremental").data["id"]
    clean = run_job(env, "verify", {"all": "true"})
    assert clean.outcome is None, clean.data["report"]
    assert clean.data["tiers"] == [{"tier": "nas", "checked": 2, "damaged": [], "error": None}]
    assert "tier nas: 2 copies checked, all ok" in clean.data["report"]
    copy = nas / full / "data.tar.zst.gpg"
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    copy.write_bytes(bytes(raw))
    result = run_job(env, "verify", {"all": "true"})
    assert result.outcome == Outcome.FAILED
    assert all(b["ok"] for b in result.data["backups"])  # the local store is fine
    assert [d["id"] for d in result.data["tiers"][0]["damaged"]] == [full]
    assert f"tier nas: copy of {full}" in result.summary
    assert env.state.get(f"tier.nas.{full}")["ok"] is False and env.state.get(f"tier.nas.{inc}")["ok"] is True
