"""The baselines maintd is measured against: today's scripts (`tar -czf`, then `gpg --symmetric`, then
`sha256sum`), the streamed shell pipeline (`tar | zstd -3 -T0 | gpg --compress-algo none`, hashed on the way),
and restic. Argument builders are pure; every command is an argv list; secrets only through files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from measure import CommandFailed, Finished, pipeline, run


@dataclass(frozen=True)
class Keys:
    """A private GNUPGHOME and a passphrase file in a temp dir (0700), removed by cleanup()."""

    home: Path
    passphrase_file: Path

    @classmethod
    def create(cls, passphrase: str = "bench passphrase, not a secret") -> "Keys":
        home = Path(tempfile.mkdtemp(prefix="maintd-bench-keys-"))
        os.chmod(home, 0o700)
        gnupg = home / "gnupg"
        gnupg.mkdir(mode=0o700)
        secret = home / "passphrase"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(passphrase + "\n")
        return cls(gnupg, secret)

    def cleanup(self) -> None:
        shutil.rmtree(self.home.parent, ignore_errors=True)


def gpg_argv(keys: Keys, *action: str) -> list[str]:
    return ["gpg", "--homedir", str(keys.home), "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback",
            "--passphrase-file", str(keys.passphrase_file), *action]


# ---------------------------------------------------------------- today's scripts


def existing_backup_argv(src: Path, out_dir: Path, keys: Keys) -> list[list[str]]:
    """Three steps, one after the other, as the scripts run them today."""
    tarball = out_dir / "backup.tar.gz"
    return [["tar", "-czf", str(tarball), "-C", str(src), "."],
            gpg_argv(keys, "--symmetric", "--cipher-algo", "AES256", "-o", f"{tarball}.gpg", str(tarball)),
            ["sha256sum", f"{tarball}.gpg"]]


def existing_backup(src: Path, out_dir: Path, keys: Keys) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for argv in existing_backup_argv(src, out_dir, keys):
        run(argv)
    (out_dir / "backup.tar.gz").unlink()  # the scripts keep only the encrypted file
    return out_dir / "backup.tar.gz.gpg"


def existing_restore(archive: Path, dest: Path, keys: Keys) -> None:
    """gpg -d to a file, then tar -xzf (the way the scripts' restore notes read)."""
    dest.mkdir(parents=True)
    plain = dest.parent / f"{dest.name}.tar.gz"
    run(gpg_argv(keys, "-o", str(plain), "-d", str(archive)))
    run(["tar", "-xzf", str(plain), "-C", str(dest)])
    plain.unlink()


# ---------------------------------------------------------------- the streamed shell pipeline


def shell_backup_argv(src: Path, keys: Keys, level: int = 3) -> list[list[str]]:
    return [["tar", "-cf", "-", "-C", str(src), "."],
            ["zstd", f"-{level}", "-T0", "-q", "-c"],
            gpg_argv(keys, "--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none", "-o", "-")]


def shell_backup(src: Path, out: Path, keys: Keys) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    return pipeline(shell_backup_argv(src, keys), out_path=out, hash_output=True)


def shell_restore_argv(dest: Path, keys: Keys) -> list[list[str]]:
    return [gpg_argv(keys, "-d"), ["zstd", "-d", "-q", "-c"], ["tar", "-xf", "-", "-C", str(dest)]]


def shell_restore(archive: Path, dest: Path, keys: Keys) -> None:
    dest.mkdir(parents=True)
    pipeline(shell_restore_argv(dest, keys), stdin_path=archive)


def read_only(src: Path) -> dict:
    """`tar -cf -` read back here and discarded: the floor every backup pays to read the tree."""
    return pipeline([["tar", "-cf", "-", "-C", str(src), "."]])


# ---------------------------------------------------------------- restic


class Restic:
    """A restic repository in a work dir; the password through RESTIC_PASSWORD_FILE, the cache kept private."""

    def __init__(self, repo: Path, keys: Keys) -> None:
        self.repo = repo
        self.env = {"RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(keys.passphrase_file),
                    "RESTIC_CACHE_DIR": str(repo.parent / f"{repo.name}.cache"), "RESTIC_PROGRESS_FPS": "0.1"}

    def init(self) -> Finished:
        return run(["restic", "init", "-q"], env=self.env)

    def backup(self, src: Path) -> Finished:
        return run(["restic", "backup", "-q", "--host", "bench", str(src)], env=self.env)

    def latest_snapshot(self) -> str:
        listing = json.loads(run(["restic", "snapshots", "--json", "--host", "bench"], env=self.env).stdout)
        return max(listing, key=lambda s: s["time"])["id"]

    def restore(self, snapshot: str, dest: Path) -> Finished:
        """Restores a snapshot under dest (restic recreates the source's absolute path inside it)."""
        dest.mkdir(parents=True)
        return run(["restic", "restore", "-q", snapshot, "--target", str(dest)], env=self.env)

    def stats(self) -> int:
        """Bytes the repository takes on disk."""
        return tree_bytes(self.repo)


def tree_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def tree_counts(root: Path) -> tuple[int, int]:
    """(regular files, their bytes) under root."""
    files = size = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def check_restored(src_counts: tuple[int, int], dest: Path, label: str) -> None:
    got = tree_counts(dest)
    if got != src_counts:
        raise CommandFailed(f"{label}: restored {got[0]} files / {got[1]} bytes, expected "
                            f"{src_counts[0]} / {src_counts[1]}")


def tool_version(argv: list[str]) -> str:
    try:
        out = run(argv, timeout=60).stdout.decode("utf-8", "replace")
    except (CommandFailed, FileNotFoundError):
        return "missing"
    return out.strip().splitlines()[0] if out.strip() else "?"
