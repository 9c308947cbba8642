"""`maintd restore` with no daemon: from a copied backup dir, with flags only or with a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maintd.runtime import locks
from tests.support.gpg_home import make_passphrase_file
from tests.support.restore_rig import Rig
from tests.support.trees import differences, snapshot

REPO = Path(__file__).resolve().parents[3]


def _maintd(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAINTD_")}
    env.update({"MAINTD_CONFIG": "/nonexistent/maintd.toml", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "maintd", "restore", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def bare_host(rig: Rig, tmp_path: Path) -> tuple[Path, Path, dict, str]:
    """A backup taken on the rig, its backup dir copied elsewhere with the key: a host with nothing else."""
    (rig.data / "sub").mkdir()
    (rig.data / "sub" / "file.txt").write_text("precious\n")
    (rig.data / "link").symlink_to("sub/file.txt")
    (rig.data / "private").write_text("0600\n")
    (rig.data / "private").chmod(0o600)
    expected = snapshot(rig.data, skip=("cache",))
    backup_id = rig.backup("full")
    usb = tmp_path / "usb"
    subprocess.run(["cp", "-a", str(rig.root / "backups"), str(usb)], check=True)
    key = make_passphrase_file(tmp_path / "keys")
    return usb, key, expected, backup_id


def test_restore_from_a_copied_backup_dir_with_flags_only(bare_host, tmp_path: Path) -> None:
    usb, key, expected, backup_id = bare_host
    place = tmp_path / "new-host" / "var" / "lib" / "app"
    done = _maintd("latest", "--backup-root", str(usb), "--passphrase-file", str(key), "--state-dir",
                   str(tmp_path / "state2"), "--component", f"data={place}")
    assert done.returncode == 0, done.stderr
    assert differences(expected, snapshot(place)) == []
    assert f"using {backup_id} (taken " in done.stdout and "data: " in done.stdout
    assert done.stderr == ""  # not a terminal: no progress lines (no "check chain 0%")


def test_a_component_without_a_path_goes_back_where_it_was_backed_up(rig: Rig, bare_host, tmp_path: Path) -> None:
    usb, key, expected, _ = bare_host
    (rig.data / "sub" / "file.txt").write_text("damaged\n")
    done = _maintd("--backup-root", str(usb), "--passphrase-file", str(key), "--state-dir", str(tmp_path / "s"),
                   "--component", "data", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["components"][0]["path"] == str(rig.data)
    assert differences(expected, snapshot(rig.data)) == []
    assert Path(result["components"][0]["kept"]).name.startswith("data.pre-restore.")


def test_with_the_config_and_a_dry_run(rig: Rig, bare_host) -> None:
    _, _, _, backup_id = bare_host
    (rig.data / "extra.txt").write_text("new since the backup\n")
    done = _maintd(backup_id, "--config", str(rig.root / "maintd.toml"), "--component", "data", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "data: would swap into" in done.stdout and "R extra.txt" in done.stdout
    assert (rig.data / "extra.txt").exists()


def test_busy_while_a_daemon_holds_the_target_lock(rig: Rig, bare_host, tmp_path: Path) -> None:
    lock = locks.try_acquire(rig.settings.paths.state_dir / "locks", "target", {"job": "backup", "run_id": "r1"})
    assert lock is not None
    try:
        done = _maintd("--config", str(rig.root / "maintd.toml"), "--target", str(tmp_path / "t"))
    finally:
        lock.release()
    assert done.returncode == 75
    assert "target lock" in done.stderr and "job backup" in done.stderr
    assert not (tmp_path / "t").exists()


def test_wrong_passphrase_is_a_clear_failure_before_anything_is_written(bare_host, tmp_path: Path) -> None:
    usb, _, _, _ = bare_host
    wrong = make_passphrase_file(tmp_path / "wrong", "not the passphrase")
    done = _maintd("--backup-root", str(usb), "--passphrase-file", str(wrong), "--state-dir", str(tmp_path / "s"),
                   "--target", str(tmp_path / "t"))
    assert done.returncode == 1
    # one clear line: no python-gnupg log lines ("potential problem: ... BAD_PASSPHRASE"), no gpg output
    assert done.stderr.splitlines() == [f"maintd restore: wrong passphrase: the one in {wrong} does not open "
                                        f"backup {bare_host[3]}"], done.stderr
    assert not (tmp_path / "t").exists()


def test_a_backup_root_that_does_not_exist_is_named_and_not_created(bare_host, tmp_path: Path) -> None:
    _, key, _, _ = bare_host
    missing = tmp_path / "no-such-disk" / "maintd"
    for extra in ([], ["--list"]):
        done = _maintd("--backup-root", str(missing), "--passphrase-file", str(key), "--state-dir",
                       str(tmp_path / "s"), "--target", str(tmp_path / "t"), *extra)
        assert done.returncode == 69
        assert done.stderr == f"maintd restore: the backup directory {missing} (--backup-root) does not exist\n"
        assert not missing.exists() and not (tmp_path / "t").exists()


def test_list_and_usage_errors(bare_host, tmp_path: Path) -> None:
    usb, key, _, backup_id = bare_host
    listed = _maintd("--backup-root", str(usb), "--list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == backup_id
    assert _maintd("--passphrase-file", str(key)).returncode == 64  # no config, no --backup-root
    missing = _maintd("20000101T000000.000000Z-full", "--backup-root", str(usb), "--passphrase-file", str(key),
                      "--state-dir", str(tmp_path / "s"), "--target", str(tmp_path / "t"))
    assert missing.returncode == 64 and "no committed backup" in missing.stderr


@pytest.mark.parametrize("phase", ["restore-tree-written", "restore-between-renames"])
def test_a_restore_killed_before_it_went_live_is_completed_by_the_next_one(rig: Rig, bare_host, phase: str) -> None:
    _, _, expected, _ = bare_host
    (rig.data / "sub" / "file.txt").write_text("damaged\n")
    args = ("--config", str(rig.root / "maintd.toml"), "--component", "data")
    killed = _maintd(*args, env_extra={"MAINTD_TEST_CRASH_AT": phase})
    assert killed.returncode == -9
    staging = list(rig.root.glob(".data.restoring.*"))
    assert len(staging) == 1  # hidden, never live
    if phase == "restore-tree-written":
        assert (rig.data / "sub" / "file.txt").read_text() == "damaged\n"  # the live tree untouched
    else:
        assert not rig.data.exists() and len(list(rig.root.glob("data.pre-restore.*"))) == 1
    again = _maintd(*args)
    assert again.returncode == 0, again.stderr
    assert differences(expected, snapshot(rig.data)) == []
    assert not list(rig.root.glob(".data.restoring.*"))
