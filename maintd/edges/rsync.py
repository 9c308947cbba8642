"""rsync and ssh for the rsync backup tier: pure argv builders, and thin runners through edges/process.

A destination is ``user@host:/path`` (reached over SSH with a key, ``BatchMode=yes`` so a missing key or an
unknown host fails at once instead of prompting) or a local ``/path`` (no SSH: the commands run here; used for
tests and for mounts rsync should handle). The remote side needs a POSIX shell with coreutils (mkdir, mv, rm,
sha256sum, sync, find): a key restricted to rrsync cannot be used.

Remote commands go through ssh, which hands one command line to the remote shell: each argument is quoted with
``shlex.quote`` so paths reach the remote programs unchanged.
"""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..config.backup import RSYNC_DESTINATION
from ..errors import CommandError, IntegrityError, UsageError
from . import process

PARTIAL_DIR = ".rsync-partial"
SHORT_TIMEOUT = 600.0
"""Seconds allowed to a quick remote command (mkdir, mv, find); object transfers and hashing get the tier's."""


@dataclass(frozen=True)
class Destination:
    host: str | None
    """user@host, or None for a local path."""
    path: PurePosixPath
    """Absolute base directory on that host."""
    ssh_key_file: Path | None = None

    def spec(self, *parts: str) -> str:
        """The rsync operand for a path under the base: ``host:/base/a/b`` or ``/base/a/b``."""
        target = str(self.path.joinpath(*parts))
        return f"{self.host}:{target}" if self.host else target

    def join(self, *parts: str) -> str:
        return str(self.path.joinpath(*parts))


def parse_destination(text: str, ssh_key_file: Path | None = None) -> Destination:
    """``user@host:/abs/path`` or ``/abs/path``. UsageError on anything else (relative paths, rsync:// URLs)."""
    match = RSYNC_DESTINATION.match(text)
    if not match:
        raise UsageError(f"rsync tier path must be user@host:/absolute/path or /absolute/path, not {text!r}")
    return Destination(match.group("host"), PurePosixPath(match.group("path")), ssh_key_file)


def ssh_argv(dest: Destination) -> tuple[str, ...]:
    """ssh options shared by rsync's transport and remote commands."""
    argv: tuple[str, ...] = ("ssh", "-o", "BatchMode=yes")
    if dest.ssh_key_file is not None:
        argv += ("-i", str(dest.ssh_key_file), "-o", "IdentitiesOnly=yes")
    return argv


def build_push_argv(source_dir: Path, dest: Destination, *target: str) -> tuple[str, ...]:
    """Copy the contents of source_dir into ``<base>/<target...>/``, resuming interrupted transfers
    (``--partial-dir``), never following or creating anything outside the target."""
    argv: tuple[str, ...] = ("rsync", "-a", f"--partial-dir={PARTIAL_DIR}", "--protect-args")
    if dest.host:
        argv += ("-e", shlex.join(ssh_argv(dest)))
    return argv + (f"{source_dir}/", dest.spec(*target) + "/")


def build_pull_manifests_argv(dest: Destination, local_dir: Path) -> tuple[str, ...]:
    """Fetch only ``<base>/<id>/manifest.json`` of committed copies (dot directories skipped)."""
    argv: tuple[str, ...] = ("rsync", "-r", "--protect-args", "--exclude=/.*", "--include=/*/",
                             "--include=/*/manifest.json", "--exclude=*")
    if dest.host:
        argv += ("-e", shlex.join(ssh_argv(dest)))
    return argv + (dest.spec() + "/", f"{local_dir}/")


def build_remote_argv(dest: Destination, argv: Sequence[str]) -> tuple[str, ...]:
    """argv to run on the destination host (as is for a local destination)."""
    argv = tuple(str(a) for a in argv)
    if not dest.host:
        return argv
    host = dest.host
    if "[" in host:  # rsync wants [v6]:path, ssh the bare address
        user, _, address = host.rpartition("@")
        host = (f"{user}@" if user else "") + address.strip("[]")
    return ssh_argv(dest) + ("--", host, shlex.join(argv))


def parse_sha256sum(output: str) -> dict[str, str]:
    """``sha256sum`` lines (``<hex>  <path>``, ``<hex> *<path>``) -> {path: hex}. Escaped names (a leading
    backslash: newline or backslash in the name) are refused: our object names never need escaping."""
    sums: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        if line.startswith("\\") or len(line) < 67 or line[64] != " ":
            raise IntegrityError(f"unexpected sha256sum output: {line[:120]!r}")
        name = line[66:] if line[65] in " *" else line[65:]
        sums[name] = line[:64].lower()
    return sums


class Runner:
    """Runs rsync and remote commands for one destination with a timeout and a cancel event."""

    def __init__(self, dest: Destination, *, timeout: float, cancel: threading.Event | None = None) -> None:
        self.dest = dest
        self.timeout = timeout
        self.cancel = cancel

    def rsync(self, argv: Sequence[str]) -> process.Completed:
        return process.run(argv, timeout=self.timeout, cancel=self.cancel)

    def remote(self, *argv: str, check: bool = True, long: bool = False) -> process.Completed:
        """Run a command on the destination host; `long` ones (reading whole objects) get the full timeout."""
        timeout = self.timeout if long else min(self.timeout, SHORT_TIMEOUT)
        return process.run(build_remote_argv(self.dest, argv), timeout=timeout, cancel=self.cancel, check=check)

    def sha256(self, paths: Sequence[str]) -> dict[str, str]:
        """sha256 of each remote path, read on the remote host; {path: hex}. A missing path is simply absent
        from the result (sha256sum exits 1 for it); any other failure (ssh: 255) raises CommandError."""
        done = self.remote("sha256sum", "--", *paths, long=True, check=False)
        if done.returncode not in (0, 1) or (done.returncode == 1 and not done.stderr):
            raise CommandError(f"sha256sum on {self.dest.spec()} failed (exit {done.returncode})", argv=done.argv,
                               returncode=done.returncode, detail=process.stderr_tail(done.stderr))
        return parse_sha256sum(done.text)

    def list_dir(self, *sub: str) -> list[str]:
        """Names directly under the base directory or a directory below it (empty when it does not exist)."""
        done = self.remote("find", self.dest.join(*sub), "-mindepth", "1", "-maxdepth", "1", "-printf", "%f\\n",
                           check=False)
        if done.returncode != 0:
            if b"No such file" in done.stderr:
                return []
            raise CommandError(f"listing {self.dest.spec()} failed (exit {done.returncode})", argv=done.argv,
                               returncode=done.returncode, detail=process.stderr_tail(done.stderr))
        return sorted(line for line in done.text.splitlines() if line)
