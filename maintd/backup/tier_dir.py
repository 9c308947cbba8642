"""A `dir` tier: a directory on another mount with the same layout as backup_root.

A copy is written to ``<path>/.incomplete/<id>/`` (objects, then manifest.json, each fsynced while its source is
hashed), read back past the page cache and compared with the manifest's sha256 of every object, and only then
renamed to ``<path>/<id>`` (fsync of the directory after): a copy under its real name is complete and was read
back once. The tier is itself a valid backup_root: ``maintd restore`` can use it after a disaster.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config import Tier
from ..errors import IntegrityError, StorageError
from .catalog import DELETING, INCOMPLETE, MANIFEST, Catalog, Manifest
from .ids import parse_id
from .tier_files import Check, Progress, copy_hashed, fsync_dir, read_back_sha256, remove_tree
from .tier_objects import expected_sums



class DirTier:
    kind = "dir"

    def __init__(self, tier: Tier) -> None:
        self.name = tier.name
        self.root = Path(tier.path)

    @property
    def where(self) -> str:
        return str(self.root)

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"tier {self.name}: {self.root} is not a directory (not mounted?)")

    def present(self) -> set[str]:
        """Ids of committed copies."""
        self._ensure_root()
        return {entry.name for entry in os.scandir(self.root)
                if parse_id(entry.name) and entry.is_dir(follow_symlinks=False)
                and os.path.exists(os.path.join(entry.path, MANIFEST))}

    def cleanup(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove leftovers of interrupted copies and deletions. Returns what was removed."""
        removed = []
        for sub in (INCOMPLETE, DELETING):
            base = self.root / sub
            if base.is_dir():
                for entry in sorted(base.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed.append(f"{sub}/{entry.name}")
        return removed

    def put(self, source_dir: Path, manifest: Manifest, *, check: Check, progress: Progress) -> int:
        """Copy one committed backup, read it back, compare, commit. Returns the bytes copied."""
        self._ensure_root()
        expected = expected_sums(manifest, source_dir)
        staging = self.root / INCOMPLETE / manifest.id
        if staging.exists():
            shutil.rmtree(staging)
        try:
            staging.mkdir(parents=True, mode=0o700)
        except OSError as err:
            raise StorageError(f"tier {self.name}: cannot create {staging}: {err.strerror}") from err
        copied = 0
        for name in [n for n in expected if n != MANIFEST] + [MANIFEST]:  # the manifest last
            got = copy_hashed(source_dir / name, staging / name, check=check, progress=progress)
            if got != expected[name]:
                shutil.rmtree(staging, ignore_errors=True)
                raise IntegrityError(f"local {manifest.id}/{name} does not match its manifest (sha256 {got[:12]}"
                                     f" != {expected[name][:12]}): not copied; run `maintctl verify {manifest.id}`")
            copied += (staging / name).stat().st_size
        fsync_dir(staging)
        problems = self._compare(staging, expected, check)
        if problems:
            shutil.rmtree(staging, ignore_errors=True)
            raise IntegrityError(f"tier {self.name}: copy of {manifest.id} read back wrong: {'; '.join(problems)}")
        final = self.root / manifest.id
        if final.exists():  # a damaged earlier copy being replaced
            remove_tree(final, self.root / DELETING)
        try:
            os.rename(staging, final)
            fsync_dir(self.root)
        except OSError as err:
            raise StorageError(f"tier {self.name}: cannot commit {final}: {err.strerror}") from err
        return copied

    def _compare(self, directory: Path, expected: dict[str, str], check: Check) -> list[str]:
        problems = []
        for name, digest in expected.items():
            path = directory / name
            if not path.is_file():
                problems.append(f"{name} missing")
            elif (got := read_back_sha256(path, check=check)) != digest:
                problems.append(f"{name} sha256 {got[:12]} != {digest[:12]}")
        return problems

    def inventory(self) -> tuple[list[Manifest], list[str]]:
        """(committed copies' manifests, ids of copies whose manifest is missing or unreadable)."""
        self._ensure_root()
        catalog = Catalog(self.root)  # the tier's own store: no index cache (that belongs to the local store)
        return catalog.list(), [backup_id for backup_id, _ in catalog.unreadable()]

    def check(self, manifest: Manifest, *, check: Check) -> list[str]:
        """Re-read a committed copy against its own manifest; the problems found (empty: intact)."""
        expected = expected_sums(manifest, None)
        return [f"{manifest.id}/{p}" for p in self._compare(self.root / manifest.id, expected, check)]

    def remove(self, backup_id: str) -> None:
        remove_tree(self.root / backup_id, self.root / DELETING)
