"""Failures that must be clear and harmless: wrong key, Redis down, a full disk, no room to start."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from maintd.errors import GpgError, StorageError, UnavailableError
from tests.integration.backup.conftest import BackupEnv, run_job
from tests.support.gpg_home import PASSPHRASE
from tests.support.tmpfs import tmpfs


def test_a_wrong_passphrase_fails_at_the_self_test_within_seconds(backup_env, tmp_path: Path) -> None:
    env: BackupEnv = backup_env()
    (env.data / "f").write_text("x")
    env.backup("full")
    wrong = tmp_path / "wrong.passphrase"
    wrong.write_text("not the passphrase\n")
    env2: BackupEnv = backup_env({"backup": {"passphrase_file": str(wrong)}})
    started = time.monotonic()
    with pytest.raises(GpgError, match="does not open the newest backup"):
        env2.backup("incremental")
    assert time.monotonic() - started < 5
    assert len(env.catalog.list()) == 1
    assert not any((env.catalog.root / ".incomplete").glob("*"))


def test_a_missing_passphrase_file_fails_before_reading_anything(backup_env, tmp_path: Path) -> None:
    env: BackupEnv = backup_env({"backup": {"passphrase_file": str(tmp_path / "absent")}})
    with pytest.raises(GpgError, match="cannot read the backup passphrase"):
        env.backup("full")
    assert env.catalog.list() == []


def test_the_passphrase_never_reaches_logs_or_argv(backup_env, caplog) -> None:
    env: BackupEnv = backup_env()
    (env.data / "f").write_text("x")
    caplog.set_level(logging.DEBUG)  # python-gnupg logs every gpg command line at debug level
    # ... on its own logger, which maintd.logs.configure quiets (an earlier test in the session may have run it)
    caplog.set_level(logging.DEBUG, logger="gnupg")
    with capture_logs() as events:
        env.backup("full")
        env.backup("incremental")
        run_job(env, "verify", {"all": True})
    command_lines = [r.getMessage() for r in caplog.records if "--batch" in r.getMessage()]
    assert any("--passphrase-fd" in line for line in command_lines)
    assert all(PASSPHRASE not in line for line in command_lines)
    assert all(PASSPHRASE not in r.getMessage() for r in caplog.records)
    assert PASSPHRASE not in repr(events)


def test_redis_down_fails_the_backup_with_the_reason(backup_env) -> None:
    env: BackupEnv = backup_env({"backup": {"redis": True}, "redis": {"url": "redis://127.0.0.1:1/0"}})
    with pytest.raises(UnavailableError, match="Redis is unavailable"):
        env.backup("full")
    assert env.catalog.list() == []


def test_redis_down_with_required_false_gives_a_partial_backup(backup_env) -> None:
    env: BackupEnv = backup_env({"backup": {"redis": True},
                                 "redis": {"url": "redis://127.0.0.1:1/0", "required": False}})
    (env.data / "f").write_text("x")
    result = env.backup("full")
    assert result.data["outcome"] == "partial"
    assert any("redis: not backed up" in w for w in result.warnings)
    manifest = env.catalog.get(result.data["id"])
    assert manifest.outcome == "partial" and manifest.redis is None and not manifest.good


def test_redis_dataset_is_snapshotted_with_its_key_counts(backup_env, redis_server) -> None:
    client = redis_server.client()
    for number in range(50):
        client.set(f"key:{number}", "v" * number)
    env: BackupEnv = backup_env({"backup": {"redis": True}, "redis": {"url": redis_server.url}})
    result = env.backup("full")
    manifest = env.catalog.get(result.data["id"])
    assert manifest.redis is not None and manifest.redis["keys"] == {"db0": 50}
    assert manifest.redis["rdb_size"] > 0 and "redis.rdb.zst.gpg" in manifest.objects
    line = next(line for line in result.data["report"] if line.startswith("  redis: "))
    assert line.startswith("  redis: db0=50 keys, RDB ") and line.endswith(("B", "KiB")) and "{" not in line
    verified = run_job(env, "verify", {"backup": result.data["id"]})
    assert verified.outcome is None, verified.data["report"]


def test_preflight_refuses_a_backup_that_cannot_fit(backup_env) -> None:
    env: BackupEnv = backup_env({"backup": {"min_free_bytes": 1 << 62}})
    (env.data / "f").write_text("x")
    with pytest.raises(StorageError, match="not enough space under"):
        env.backup("full")
    assert env.catalog.list() == []


@pytest.fixture
def small_disk(tmp_path: Path):
    with tmpfs(tmp_path / "small", "3m") as mounted:
        yield mounted


def test_a_full_disk_fails_clearly_and_keeps_older_backups(backup_env, small_disk: Path) -> None:
    import os
    env: BackupEnv = backup_env({"paths": {"backup_root": str(small_disk / "backups")}})
    (env.data / "small.txt").write_text("fits")
    first = env.backup("full").data["id"]
    (env.data / "big.bin").write_bytes(os.urandom(4 << 20))
    with pytest.raises(StorageError, match="no space left on .* while writing data.tar.zst.gpg"):
        env.backup("full")
    assert [m.id for m in env.catalog.list()] == [first]
    assert not any((small_disk / "backups" / ".incomplete").glob("*"))
    (env.data / "big.bin").unlink()
    assert env.backup("incremental").data["parent"] == first
    assert run_job(env, "verify", {"all": True}).outcome is None


def test_a_cancelled_backup_leaves_nothing_behind(backup_env) -> None:
    from maintd.errors import Cancelled
    from maintd.jobs.backup import perform
    from maintd.model import BackupType
    from tests.integration.backup.conftest import job_context

    env: BackupEnv = backup_env()
    for number in range(600):
        (env.data / f"f{number}").write_text("x" * number)
    ctx = job_context(env, "backup")

    def emit(name: str, fields: dict) -> None:
        if str(fields.get("phase", "")).startswith("archive:data"):
            ctx.cancel_event.set()  # what the runner does on a timeout or a stop

    ctx.emit = emit
    with pytest.raises(Cancelled):
        perform(ctx, BackupType.FULL)
    assert env.catalog.list() == []
    assert not any((env.catalog.root / ".incomplete").iterdir())
