"""The operator's escape hatch: gpg, zstd and tar alone restore a full backup byte for byte."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.integration.backup.conftest import BackupEnv


def _describe(root: Path) -> dict[bytes, tuple]:
    found = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, base)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    found[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns // 10**9, handle.read())
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = ("other", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return found


def test_gpg_zstd_and_tar_restore_a_full_backup_byte_for_byte(backup_env, tmp_path: Path) -> None:
    env: BackupEnv = backup_env()
    data = env.data
    (data / "dir" / ("long" * 40)).mkdir(parents=True)
    (data / "dir" / ("long" * 40) / ("name" * 30)).write_bytes(os.urandom(3000))
    (data / "big.bin").write_bytes(os.urandom(3 << 20))
    (data / "empty").write_bytes(b"")
    (data / "secret").write_text("0600")
    os.chmod(data / "secret", 0o600)
    (data / os.fsdecode(b"bad\xffname")).write_bytes(b"raw")
    (data / os.fsdecode(b"d" * 120 + b"\xfe")).write_bytes(b"long raw")
    os.symlink("big.bin", data / "link")
    os.mkfifo(data / "fifo")
    backup_id = env.backup("full").data["id"]

    target = tmp_path / "restored"
    target.mkdir()
    archive = env.catalog.object_path(backup_id, "data.tar.zst.gpg")
    passphrase = env.settings.backup.passphrase_file
    (tmp_path / "operator-gnupg").mkdir(mode=0o700)  # a fresh keyring: the passphrase is all it takes
    gpg = subprocess.Popen(["gpg", "--homedir", str(tmp_path / "operator-gnupg"), "--batch", "--pinentry-mode",
                            "loopback", "--passphrase-file", str(passphrase), "-d", str(archive)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    zstd = subprocess.Popen(["zstd", "-d", "-q"], stdin=gpg.stdout, stdout=subprocess.PIPE)
    assert gpg.stdout is not None and zstd.stdout is not None
    gpg.stdout.close()
    tar = subprocess.run(["tar", "-xpf", "-", "-C", str(target)], stdin=zstd.stdout, capture_output=True,
                         timeout=60)
    zstd.stdout.close()
    assert zstd.wait(60) == 0 and gpg.wait(60) == 0
    assert tar.returncode == 0, tar.stderr.decode()
    assert _describe(target) == _describe(data)
    subprocess.run(["gpgconf", "--homedir", str(tmp_path / "operator-gnupg"), "--kill", "gpg-agent"],
                   check=False, capture_output=True)


def test_gzip_backups_verify_and_restore_with_gpg_gzip_and_tar(backup_env, tmp_path: Path) -> None:
    from tests.integration.backup.conftest import run_job

    env: BackupEnv = backup_env({"backup": {"compression": "gzip", "compression_level": 1}})
    (env.data / "text.txt").write_text("compressible " * 5000)
    (env.data / "bin").write_bytes(os.urandom(300_000))
    first = env.backup("full").data["id"]
    (env.data / "text.txt").write_text("changed")
    second = env.backup("incremental").data
    assert set(env.catalog.get(second["id"]).objects) >= {"data.tar.gz.gpg", "data.index.gz.gpg"}
    assert second["stored_files"] == 1
    assert run_job(env, "verify", {"all": True}).outcome is None

    target = tmp_path / "restored"
    target.mkdir()
    home = tmp_path / "operator-gnupg"
    home.mkdir(mode=0o700)
    gpg = subprocess.Popen(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                            "--passphrase-file", str(env.settings.backup.passphrase_file), "-d",
                            str(env.catalog.object_path(first, "data.tar.gz.gpg"))],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    gunzip = subprocess.Popen(["gzip", "-d"], stdin=gpg.stdout, stdout=subprocess.PIPE)
    assert gpg.stdout is not None and gunzip.stdout is not None
    gpg.stdout.close()
    tar = subprocess.run(["tar", "-xpf", "-", "-C", str(target)], stdin=gunzip.stdout, capture_output=True,
                         timeout=60)
    gunzip.stdout.close()
    assert gunzip.wait(60) == 0 and gpg.wait(60) == 0 and tar.returncode == 0, tar.stderr
    assert (target / "text.txt").read_text() == "compressible " * 5000
    assert (target / "bin").read_bytes() == (env.data / "bin").read_bytes()
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)
