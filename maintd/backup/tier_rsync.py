"""An `rsync` tier: ``user@host:/path`` over SSH (or a local path), same layout as backup_root.

A copy is pushed with ``rsync -a --partial-dir`` into ``<path>/.incomplete/<id>/`` (an interrupted transfer
resumes there next time), then every object and the manifest are hashed *on the remote host* with ``sha256sum``
and compared with the manifest's sha256 (the remote reads its copy, possibly from its page cache), then flushed
with ``sync`` and renamed to ``<path>/<id>`` with ``mv -T``; a copy under its real name is complete and matched.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from ..config import Tier
from ..edges.rsync import Runner, build_pull_manifests_argv, build_push_argv, parse_destination
from ..errors import IntegrityError
from .catalog import DELETING, INCOMPLETE, MANIFEST, Catalog, Manifest
from .ids import parse_id
from .tier_files import Check, Progress, sha256_file
from .tier_objects import expected_sums



class RsyncTier:
    kind = "rsync"

    def __init__(self, tier: Tier, *, scratch: Path, cancel: threading.Event | None = None) -> None:
        self.name = tier.name
        self.where = tier.path
        self.dest = parse_destination(tier.path, tier.ssh_key_file)
        self.run = Runner(self.dest, timeout=tier.timeout, cancel=cancel)
        self.scratch = scratch
        """A local directory for fetched manifests (under the state dir)."""

    def present(self) -> set[str]:
        # A name that parses as an id exists only after its copy was verified and renamed into place.
        return {name for name in self.run.list_dir() if parse_id(name)}

    def cleanup(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove interrupted deletions, and interrupted copies except those in `keep` (resumed next)."""
        removed = []
        for name in self.run.list_dir(DELETING):
            self.run.remote("rm", "-rf", "--", self.dest.join(DELETING, name))
            removed.append(f"{DELETING}/{name}")
        for name in self.run.list_dir(INCOMPLETE):
            if name not in keep:
                self.run.remote("rm", "-rf", "--", self.dest.join(INCOMPLETE, name))
                removed.append(f"{INCOMPLETE}/{name}")
        return removed

    def put(self, source_dir: Path, manifest: Manifest, *, check: Check, progress: Progress) -> int:
        expected = expected_sums(manifest, source_dir)
        staging = (INCOMPLETE, manifest.id)
        check()
        self.run.remote("mkdir", "-p", "--", self.dest.join(INCOMPLETE))
        self.run.rsync(build_push_argv(source_dir, self.dest, *staging))
        copied = manifest.size + (source_dir / MANIFEST).stat().st_size
        progress(copied)
        check()
        paths = {self.dest.join(*staging, name): name for name in expected}
        sums = self.run.sha256(list(paths))
        problems = []
        for path, name in paths.items():
            if path not in sums:
                problems.append(f"{name} missing")
            elif sums[path] != expected[name]:
                local = sha256_file(source_dir / name)
                where = "the local object is damaged too" if local != expected[name] else "the local one is intact"
                problems.append(f"{name} sha256 {sums[path][:12]} != {expected[name][:12]} ({where})")
        if problems:
            raise IntegrityError(f"tier {self.name}: copy of {manifest.id} does not match its manifest: "
                                 f"{'; '.join(problems)}")
        self.run.remote("sync", "--", *paths, self.dest.join(*staging))
        if manifest.id in self.present():  # a damaged earlier copy being replaced
            self.remove(manifest.id)
        self.run.remote("mv", "-T", "--", self.dest.join(*staging), self.dest.join(manifest.id))
        self.run.remote("sync", "--", self.dest.join())
        return copied

    def inventory(self) -> tuple[list[Manifest], list[str]]:
        """(committed copies' manifests, fetched with rsync; ids of copies whose manifest is missing or
        unreadable)."""
        names = self.present()
        if not names:
            return [], []
        self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(dir=self.scratch, prefix=f"{self.name}-") as into:
            self.run.rsync(build_pull_manifests_argv(self.dest, Path(into)))
            catalog = Catalog(Path(into))  # fetched manifests of a tier: no index cache (local store only)
            manifests = catalog.list()
        listed = {m.id for m in manifests}
        return manifests, sorted(names - listed)

    def check(self, manifest: Manifest, *, check: Check) -> list[str]:
        """Hash a committed copy on the remote host against its own manifest."""
        expected = expected_sums(manifest, None)
        check()
        paths = {self.dest.join(manifest.id, name): name for name in expected}
        sums = self.run.sha256(list(paths))
        return [f"{manifest.id}/{name} " + ("missing" if path not in sums else
                                            f"sha256 {sums[path][:12]} != {expected[name][:12]}")
                for path, name in paths.items() if sums.get(path) != expected[name]]

    def remove(self, backup_id: str) -> None:
        self.run.remote("mkdir", "-p", "--", self.dest.join(DELETING))
        self.run.remote("mv", "-T", "--", self.dest.join(backup_id), self.dest.join(DELETING, backup_id))
        self.run.remote("rm", "-rf", "--", self.dest.join(DELETING, backup_id))
