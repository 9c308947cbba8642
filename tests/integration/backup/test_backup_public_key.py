"""Public-key mode: a host that can write backups it cannot read keeps plaintext index copies for change
detection; without a copy it takes a full backup and says so. The secret key's holder can verify."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from maintd.backup import index
from maintd.edges.gpg import Gpg
from tests.integration.backup.conftest import BackupEnv, run_job


@pytest.fixture
def keypair(tmp_path: Path):
    home = tmp_path / "keyholder"
    home.mkdir(mode=0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*base, "--quick-gen-key", "backup@example.org", "future-default", "default", "never"],
                   check=True, capture_output=True, timeout=60)
    listing = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys"],
                             check=True, capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--armor", "--export", fingerprint],
                            check=True, capture_output=True).stdout
    secret = subprocess.run([*base, "--armor", "--export-secret-keys", fingerprint], check=True,
                            capture_output=True).stdout
    yield fingerprint, public, secret
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)


def test_public_key_mode_uses_the_index_cache_and_falls_back_to_full(backup_env, keypair) -> None:
    fingerprint, public, secret = keypair
    env: BackupEnv = backup_env({"backup": {"recipients": [fingerprint], "passphrase_file": ""}})
    Gpg.from_settings(env.settings).import_keys(public)
    (env.data / "a.txt").write_text("a")
    (env.data / "b.txt").write_text("b")
    full = env.backup("full").data
    cache = env.settings.paths.state_dir / "index-cache"
    assert (cache / full["id"] / "data.index.zst").is_file()
    assert env.catalog.get(full["id"]).raw["encryption"] == "public-key"

    (env.data / "b.txt").write_text("changed")
    inc = env.backup("incremental").data
    assert inc["type"] == "incremental" and inc["stored_files"] == 1

    shutil.rmtree(cache / inc["id"])
    fallback = env.backup("incremental")
    assert fallback.data["type"] == "full"
    assert any("no local cache copy" in w and "cannot decrypt" in w for w in fallback.warnings)

    with pytest.raises(Exception, match="no secret key"):
        run_job(env, "verify", {"all": True})
    Gpg.from_settings(env.settings).import_keys(secret)
    verified = run_job(env, "verify", {"all": True})
    assert verified.outcome is None, verified.data["report"]
    entries = {e.path: e for e in env.index(inc["id"])}
    assert entries[b"a.txt"].in_ == full["id"] and entries[b"b.txt"].in_ == inc["id"]
    assert entries[b"a.txt"].type == index.FILE

    env.catalog.delete(full["id"])
    assert not (cache / full["id"]).exists()


def test_a_missing_recipient_key_fails_at_the_self_test(backup_env) -> None:
    from maintd.errors import GpgError

    env: BackupEnv = backup_env({"backup": {"recipients": ["0123456789ABCDEF0123456789ABCDEF01234567"],
                                            "passphrase_file": ""}})
    with pytest.raises(GpgError, match="could not encrypt"):
        env.backup("full")
    assert env.catalog.list() == []
