"""Sections about backups: format, key, retention, further tiers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .types import Duration, NoneIfEmpty, Section


class Retention(Section):
    """Per-type ages combined with grandfather-father-son counts, in `timezone`. A backup is kept when any rule
    keeps it; a kept backup keeps its whole chain."""

    incremental_days: int = Field(default=7, ge=0)
    differential_days: int = Field(default=30, ge=0)
    full_days: int = Field(default=365, ge=0)
    daily: int = Field(default=30, ge=0)
    weekly: int = Field(default=12, ge=0)
    monthly: int = Field(default=12, ge=0)
    yearly: int = Field(default=7, ge=0)
    period_pick: Literal["shortest_chain", "newest"] = "shortest_chain"
    """Which backup of a day/week/month/year the period counts keep: `shortest_chain` = the newest of those
    needing the fewest others to restore (a full, else a differential, else an incremental), so long-term keeps
    do not drag chains of incrementals along; `newest` = the newest of any type, as restic does."""


RSYNC_DESTINATION = re.compile(
    r"^(?:(?P<host>(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?"  # optional user, never starting with "-"
    r"(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])):)?"  # host name or [IPv6]
    r"(?P<path>/(?!/).*)$")  # absolute path ("//" would be rsync://-like)
"""An rsync tier's path: ``user@host:/absolute/path`` (over SSH) or ``/absolute/path`` (local, no SSH)."""


class Tier(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    kind: Literal["dir", "rsync"] = "dir"
    path: str
    """kind=dir: an absolute directory (another mount); kind=rsync: user@host:/path reached over SSH (or an
    absolute local path: rsync without SSH)."""
    rpo: Duration = 3600.0
    """How far this tier may lag the local store (recovery point objective): it is stale when a good local backup
    older than this is newer than its newest verified copy. Suggested: 1h for a tier on the local network, 24h for
    an off-site/cloud one (the local store has backup.local_rpo)."""
    ssh_key_file: Annotated[Path | None, NoneIfEmpty] = None
    """kind=rsync: the private key for ssh (-i); known_hosts must already hold the host."""
    timeout: Duration = 6 * 3600.0
    """Longest one copy (or one read-back) to this tier may take."""

    @model_validator(mode="after")
    def _path_shape(self) -> "Tier":
        if self.kind == "dir" and not self.path.startswith("/"):
            raise ValueError(f"tier {self.name}: a dir tier's path must be absolute, not {self.path!r}")
        if self.kind == "rsync" and not RSYNC_DESTINATION.match(self.path):
            raise ValueError(f"tier {self.name}: an rsync tier's path must be user@host:/absolute/path or"
                             f" /absolute/path, not {self.path!r}")
        return self


class Backup(Section):
    compression: Literal["zstd", "gzip"] = "zstd"
    compression_level: Annotated[int | None, NoneIfEmpty] = None
    """zstd 1-19 (default 3) or gzip 1-9 (default 6)."""
    threads: int = Field(default=0, ge=0)
    """zstd worker threads; 0 = one per CPU."""
    passphrase_file: Annotated[Path | None, NoneIfEmpty] = Path("/etc/maintd/backup.passphrase")
    """Symmetric AES256 passphrase (first line of the file, mode 0600). Used when `recipients` is empty, and to
    decrypt for verify/restore."""
    s2k_count: int = Field(default=8_388_608, ge=65_536, le=65_011_712)
    """Symmetric mode: how many times gpg hashes the passphrase into each object's key (--s2k-count). Every object
    pays this once (~80 ms at the default); gpg's own default (~0.5 s) would cost seconds per backup. It slows a
    brute-force guess of a weak passphrase: use a long random passphrase (e.g. `openssl rand -base64 32`)."""
    recipients: tuple[str, ...] = ()
    """Public-key fingerprints: encrypt to these instead (a host can write backups it cannot read). Keys must be in
    the private GNUPGHOME (state_dir/gnupg)."""
    extra_paths: tuple[Path, ...] = ()
    """Further system paths (unit files, nginx site, TLS certificates): stored as the `system` component (root /)
    in every backup type, with change detection like the other components."""
    allow_new_key: bool = False
    """Accept a passphrase/key that cannot open the newest existing backup (a deliberate key change). Normally the
    key self-test refuses it: a wrong passphrase must fail in a second, not produce backups nobody can read."""
    redis: bool = True
    """Include the Redis dataset."""
    min_free_bytes: int = Field(default=1 << 30, ge=0)
    """Refuse to start a backup that would leave less than this free under backup_root."""
    local_rpo: Duration = 900.0
    """How late a scheduled backup may be: the local store is stale when an enabled backup calendar entry was due
    more than this long ago and no good backup was taken since (health and status report it). Keep it above your
    longest backup's duration."""
    prune_after_backup: bool = True
    tiers: tuple[Tier, ...] = ()
    retention: Retention = Field(default_factory=Retention)

    @model_validator(mode="after")
    def _key_configured(self) -> "Backup":
        if not self.recipients and self.passphrase_file is None:
            raise ValueError("set backup.passphrase_file or backup.recipients: backups are always encrypted")
        if self.compression_level is not None:
            top = 19 if self.compression == "zstd" else 9
            if not 1 <= self.compression_level <= top:
                raise ValueError(f"backup.compression_level for {self.compression} must be 1..{top}")
        names = [t.name for t in self.tiers]
        if len(names) != len(set(names)):
            raise ValueError("backup.tiers names must be unique")
        return self
