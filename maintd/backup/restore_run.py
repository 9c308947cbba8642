"""One restore from start to end, shared by the restore job, the offline ``maintd restore``, recovery and drills:
choose the backup, check the whole chain, read the indexes into plans (all before anything is written), then
either report what would change (dry run) or rebuild each tree (staging + swap, or into a target).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from ..edges.gpg import SYMMETRIC, Gpg, GpgKeyError
from ..errors import GpgError, IntegrityError, MaintdError, StorageError, UnavailableError, UsageError
from . import reader
from . import restore_space as space
from .previous_trees import prune_previous
from .catalog import Catalog, Manifest
from .restore_plan import REDIS, ComponentPlan, destinations, plan_component, want_from_index
from .restore_select import Candidate, select_backup, using_line
from .restore_check import ChainDamaged, chain_of, check_chain
from .restore_rdb import write_rdb
from .restorer import FreshTarget, Reporter, TreeResult, builds_beside, preview, restore_by_swap, restore_into

SYSTEM = "system"
"""The component holding backup.extra_paths (root /): restored in place, never swapped, only when named."""


@dataclass(frozen=True)
class RestoreRequest:
    backup: str | None = None
    """A backup id or "latest" (default)."""
    at: datetime | None = None
    components: tuple[str, ...] = ()
    """Empty: every file component of the backup except `system`."""
    target: Path | None = None
    delete: bool = False
    dry_run: bool = False
    aside: str = "pre-restore"
    """Suffix of the previous live tree kept by a swap (recovery of the configuration uses "broken")."""
    need_redis: bool = False


@dataclass
class RestoreEnv:
    catalog: Catalog
    gpg: Gpg
    reporter: Reporter
    stamp: str
    live: dict[str, Path] = field(default_factory=dict)
    """Component -> live path (configured). Missing ones fall back to the root recorded in the index."""
    verified: Callable[[str], bool | None] = lambda backup_id: None
    allow_symlinks_outside: bool = False
    excludes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Component -> configured exclude patterns (with those the backup recorded: entries a swap carries over)."""
    min_free_bytes: int = 0
    keep_previous: int = 0
    """After a successful swap restore keep this many ``NAME.pre-restore.*``/``NAME.broken.*`` trees of each kind
    per component (older ones are deleted); 0: leave them all (recover prunes after its verification)."""
    """The free-space preflight keeps this much free on every filesystem the restore writes to."""
    now: datetime | None = None
    """When this restore runs: the age of the backup used is reported against it (default: the wall clock)."""


@dataclass
class Chosen:
    """The backup a restore uses, its chain (every object the restore reads checked), and what to tell."""

    manifest: Manifest
    chain: list[Manifest]
    components: list[str]
    redis: bool
    notes: list[str]
    warnings: list[str]
    """Newer backups passed over (damaged, failed verify, partial): also sent to the reporter as warnings."""
    using: str
    """"using <id> (taken 5 min ago)": the first line of every report."""
    age_s: float
    damaged: dict[str, str] = field(default_factory=dict)
    """Backups the integrity check found missing or damaged on the way to this one: id -> what."""


@dataclass
class Prepared:
    manifest: Manifest
    chain: list[Manifest]
    plans: dict[str, ComponentPlan]
    roots: dict[str, Path]
    """Component -> the root recorded in its index (where it was backed up from)."""
    redis: bool
    notes: list[str]
    warnings: list[str] = field(default_factory=list)
    using: str = ""
    age_s: float | None = None


@dataclass
class RestoreReport:
    backup_id: str
    chain: list[str]
    dry_run: bool
    trees: list[TreeResult] = field(default_factory=list)
    previews: list[dict[str, Any]] = field(default_factory=list)
    redis_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    using: str = ""
    warnings: list[str] = field(default_factory=list)
    age_s: float | None = None
    removed_previous: list[str] = field(default_factory=list)
    """Older previous trees deleted after the restore (recovery.keep_previous_trees)."""

    @property
    def files(self) -> int:
        return sum(t.files for t in self.trees)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.trees)

    def as_data(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "using": self.using, "backup_age_s": self.age_s, "chain": self.chain,
                "dry_run": self.dry_run, "selection_warnings": self.warnings,
                "components": [t.as_dict() for t in self.trees] or self.previews,
                "redis": str(self.redis_path) if self.redis_path else None, "files": self.files,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "notes": self.notes,
                "removed_previous": self.removed_previous}

    def lines(self) -> list[str]:
        out = [f"{self.using or 'backup ' + self.backup_id}; chain of {len(self.chain)} checked",
               *(f"WARNING: {w}" for w in self.warnings), *self.notes]
        for item in self.previews:
            verb = "swap into" if item["swap"] else "write into"
            out.append(f"{item['component']}: would {verb} {item['path']}: {item['added']} added, "
                       f"{item['changed']} changed, {item['removed']} removed")
            for kind in ("added", "changed", "removed"):
                out.extend(f"  {kind[0].upper()} {path}" for path in item["paths"][kind])
        for tree in self.trees:
            line = f"{tree.component}: {tree.files} files, {tree.bytes} bytes into {tree.path}"
            if tree.kept:
                line += f" (previous tree kept as {tree.kept.name})"
            if tree.removed:
                line += f", {tree.removed} removed"
            out.append(line)
            if tree.carried:
                out.append(f"  carried over from the live tree (excluded from backups): {_some(tree.carried)}")
            if tree.left:
                out.append(f"  left in the kept tree: {_some(tree.left)}")
        if self.redis_path:
            out.append(f"redis: snapshot written to {self.redis_path}")
        if self.removed_previous:
            out.append(f"removed older previous trees: {_some(self.removed_previous)}")
        return out


def _some(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def open_key(settings: Any) -> Gpg:
    """The configured key, read into memory now (a canary round trip), before anything is touched: a restore
    may replace the very directory the passphrase file lives in."""
    gpg = Gpg.from_settings(settings)
    if not gpg.self_test():
        raise GpgError("this host holds no secret key for backup.recipients: it cannot decrypt backups "
                       "(import the secret key into state_dir/gnupg)")
    return gpg


# -- choosing -----------------------------------------------------------------------------------------------------
def candidates(catalog: Catalog, verified: Callable[[str], bool | None]) -> list[Candidate]:
    return [Candidate(m.id, m.created, m.outcome, has_redis=bool(m.redis) and m.redis_name() in m.objects,
                      verified=verified(m.id), chain=tuple(m.chain)) for m in catalog.list()]


ComponentsFor = Callable[[Manifest], tuple[list[str], bool]]
"""manifest -> (file components, redis?) the restore reads from that backup."""


def choose(env: RestoreEnv, request: RestoreRequest, components: ComponentsFor | None = None) -> Chosen:
    """The backup a restore uses (``select_backup``: the same rule for restore, recover and drill) with its whole
    chain checked: every manifest present and parsing, the size and sha256 of every object the restore reads.
    A chosen backup whose chain fails that check is passed over for the next one (the reporter gets a warning
    naming the damaged backup); a backup named by id is never replaced (its damage fails the restore)."""
    components = components or (lambda manifest: components_of(manifest, request.components))
    if not env.catalog.root.is_dir():
        raise UnavailableError(f"the backup directory {env.catalog.root} does not exist")
    pool = candidates(env.catalog, env.verified)
    named = bool(request.backup) and request.backup != "latest"
    damaged: dict[str, str] = {}
    checked: set[tuple[str, str]] = set()
    while True:
        selection = select_backup(pool, backup=request.backup, at=request.at, need_redis=request.need_redis,
                                  damaged=damaged)
        manifest = env.catalog.get(selection.candidate.id)
        names, redis = components(manifest)
        try:
            chain = chain_of(env.catalog, manifest)
            check_chain(env.catalog, env.reporter, manifest, chain, names, redis, checked)
        except ChainDamaged as err:
            if named or err.backup_id in damaged:
                raise
            damaged[err.backup_id] = err.message
            continue
        for warning in selection.warnings:
            env.reporter.warn(warning)
        now = env.now or datetime.now(timezone.utc)
        return Chosen(manifest, chain, names, redis, list(selection.notes), list(selection.warnings),
                      using_line(manifest.id, manifest.created, now),
                      round((now - manifest.created).total_seconds(), 1), damaged)


def components_of(manifest: Manifest, wanted: tuple[str, ...]) -> tuple[list[str], bool]:
    """(file components, redis?) a request names; UsageError for a name the backup does not have."""
    available = list(manifest.components)
    if not wanted:
        return [c for c in available if c != SYSTEM], False
    unknown = [c for c in wanted if c not in available and c != REDIS]
    if unknown:
        have = ", ".join(available + ([REDIS] if manifest.redis else []))
        raise UsageError(f"backup {manifest.id} has no component {', '.join(unknown)} (it has: {have})")
    if REDIS in wanted and not (manifest.redis and manifest.redis_name() in manifest.objects):
        raise IntegrityError(f"backup {manifest.id} holds no Redis snapshot (outcome {manifest.outcome})")
    return [c for c in dict.fromkeys(wanted) if c != REDIS], REDIS in wanted


# -- checking and planning (nothing written yet) --------------------------------------------------------------------
def prepare(env: RestoreEnv, chosen: Chosen) -> Prepared:
    """Read the indexes of a chosen (and checked) backup into plans; refuses unsafe entries before writing."""
    manifest, chain = chosen.manifest, chosen.chain
    plans: dict[str, ComponentPlan] = {}
    roots: dict[str, Path] = {}
    ids = [m.id for m in chain]
    for component in chosen.components:
        env.reporter.check_cancelled()
        env.reporter.progress(phase=f"index {component}")
        try:
            with reader.open_index(env.catalog, env.gpg, manifest.id, component, manifest) as (header, entries):
                roots[component] = Path(str(header.get("root") or "/"))
                plans[component] = plan_component(component, _wants(entries), ids,
                                                  allow_symlinks_outside=env.allow_symlinks_outside)
        except GpgKeyError as err:
            raise key_refused(env.gpg, manifest.id) from err
        for source in plans[component].sources:
            holder = next(m for m in chain if m.id == source)
            if holder.archive_name(component) not in holder.objects:
                raise IntegrityError(f"{component}: backup {source} holds files of this restore but has no "
                                     f"archive {holder.archive_name(component)}")
        for line in plans[component].skipped:
            env.reporter.warn(line)
    return Prepared(manifest, chain, plans, roots, chosen.redis, chosen.notes, chosen.warnings, chosen.using,
                    chosen.age_s)


def key_refused(gpg: Gpg, backup_id: str) -> GpgKeyError:
    """One clear line for a key the backup refuses (gpg's own lines are left out)."""
    if gpg.mode == SYMMETRIC:
        return GpgKeyError(f"wrong passphrase: the one in {gpg.passphrase_file} does not open backup {backup_id}")
    return GpgKeyError(f"this host's secret key does not open backup {backup_id}: wrong key, or a wrong passphrase "
                       f"for it in {gpg.passphrase_file}")


def _wants(entries: Iterator[Any]) -> Iterator[Any]:
    for e in entries:
        yield want_from_index(e.path, e.type, mode=e.mode, uid=e.uid, gid=e.gid, mtime_ns=e.mtime_ns, size=e.size,
                              sha256=e.hash, link=e.link, source=e.in_, unsure=e.warn)


# -- acting ---------------------------------------------------------------------------------------------------------
def execute(env: RestoreEnv, prepared: Prepared, request: RestoreRequest) -> RestoreReport:
    started = time.monotonic()
    manifest, chain = prepared.manifest, prepared.chain
    report = RestoreReport(manifest.id, [m.id for m in chain], request.dry_run, notes=list(prepared.notes),
                           using=prepared.using, warnings=list(prepared.warnings), age_s=prepared.age_s)
    names = list(prepared.plans) + ([REDIS] if prepared.redis else [])
    live = {**prepared.roots, **env.live}
    if request.target is None and prepared.redis:
        raise UsageError("restoring Redis in place needs the service stopped: use `recover data`, or give "
                         "--target DIR to write the snapshot file there")
    where = destinations(names, live, request.target)
    in_place = {c: not swaps(request, c, where[c]) and not builds_beside(where[c]) for c in prepared.plans}
    rdb = (where[REDIS], int((manifest.redis or {}).get("rdb_size") or 0)) if prepared.redis else None
    spaces, by_dest = space.needed(prepared.plans, where, in_place, rdb)
    refused = space.refusals(spaces, env.min_free_bytes)
    if request.dry_run:
        report.notes += [f"space on {s.mount}: {s.text(env.min_free_bytes)}" for s in spaces.values()] + refused
        report.previews = [preview(plan, where[c], swap=swaps(request, c, where[c]),
                                   excludes=carried_patterns(env, manifest, c)) for c, plan in prepared.plans.items()]
        report.seconds = time.monotonic() - started
        return report
    if refused:
        raise StorageError("; ".join(refused) + " (nothing was written)")
    undo = FreshTarget(request.target)
    try:
        _write_all(env, prepared, request, where, by_dest, report)
    except BaseException as err:
        undo.remove(_top_names(prepared, request, where))
        if isinstance(err, MaintdError) and report.trees and request.target is None:
            done = ", ".join(f"{t.component} (previous tree kept as {t.kept})" if t.kept else t.component
                             for t in report.trees)
            err.message = f"{err.message}; already restored before the failure: {done}"
            err.args = (err.message,)
        raise
    report.seconds = time.monotonic() - started
    return report


def swaps(request: RestoreRequest, component: str, dest: Path) -> bool:
    """Whether ``component`` is restored by building it beside its live path and swapping it in: without
    --target, except `system` and a live path that is a mount point (it cannot be renamed: written in place)."""
    return request.target is None and component != SYSTEM and not os.path.ismount(dest)


def _top_names(prepared: Prepared, request: RestoreRequest, where: dict[str, Path]) -> set[bytes]:
    """The top-level names of --target this restore writes (what a failure removes from a target that was empty)."""
    names: set[bytes] = set()
    target = request.target
    if target is None:
        return names
    dests = {c: where[c] for c in prepared.plans}
    if prepared.redis:
        dests[REDIS] = where[REDIS]
    for component, dest in dests.items():
        if dest != target:
            names.add(os.fsencode(dest.relative_to(target).parts[0]))
        elif component == REDIS:
            names.add(b"dump.rdb")
        else:
            names.update(path.split(b"/", 1)[0] for path in prepared.plans[component].wanted())
    return names


def _write_all(env: RestoreEnv, prepared: Prepared, request: RestoreRequest, where: dict[str, Path],
               by_dest: dict[Path, space.Space], report: RestoreReport) -> None:
    ids = [m.id for m in prepared.chain]
    for component, plan in prepared.plans.items():
        dest = where[component]
        env.reporter.check_cancelled()
        opener = _archive_opener(env, prepared.chain, component)
        try:
            patterns = carried_patterns(env, prepared.manifest, component)
            if swaps(request, component, dest):
                tree = restore_by_swap(plan, ids, opener, dest, stamp=env.stamp, reporter=env.reporter,
                                       aside=request.aside, allow_symlinks_outside=env.allow_symlinks_outside,
                                       excludes=patterns)
            else:
                live_mount = request.target is None and component != SYSTEM  # a live mount point: like a swap
                delete = (request.delete or live_mount) and component != SYSTEM
                tree = restore_into(plan, ids, opener, dest, delete=delete,
                                    reporter=env.reporter, stamp=env.stamp,
                                    allow_symlinks_outside=env.allow_symlinks_outside,
                                    keep=patterns if live_mount else ())
        except OSError as err:
            error = space.write_error(err, dest, by_dest.get(dest))
            if swaps(request, component, dest):
                error.message += f"; the live tree {dest} is untouched"
            elif os.path.lexists(dest) and not builds_beside(dest):
                error.message += f"; {dest} was written in place: the files restored so far stay, the rest is as it was"
            raise error from err
        report.trees.append(tree)
    if prepared.redis:
        rdb_dir = where[REDIS]
        try:
            rdb_dir.mkdir(parents=True, exist_ok=True)
            report.redis_path = rdb_dir / "dump.rdb"
            write_rdb(env, prepared.manifest, report.redis_path)
        except OSError as err:
            raise space.write_error(err, rdb_dir / "dump.rdb", by_dest.get(rdb_dir)) from err


def carried_patterns(env: RestoreEnv, manifest: Manifest, component: str) -> tuple[str, ...]:
    """The exclude patterns whose live entries a swap carries over: recorded by the backup, plus configured."""
    recorded = manifest.components.get(component, {}).get("excluded") or ()
    return tuple(dict.fromkeys([*recorded, *env.excludes.get(component, ())]))


def _archive_opener(env: RestoreEnv, chain: list[Manifest], component: str) -> Callable[[str], Any]:
    by_id = {m.id: m for m in chain}

    def open_archive(backup_id: str) -> Any:
        holder = by_id[backup_id]
        return reader.open_object(env.catalog, env.gpg, backup_id, holder.archive_name(component), holder)

    return open_archive


def restore(env: RestoreEnv, request: RestoreRequest) -> RestoreReport:
    """Choose, check, plan, then act (or preview); after a swap restore, prune older previous trees."""
    report = execute(env, prepare(env, choose(env, request)), request)
    if not request.dry_run and request.target is None and env.keep_previous:
        swapped = [t.path for t in report.trees if t.component != SYSTEM]
        report.removed_previous = prune_previous_trees(swapped, env.keep_previous, env.reporter)
    return report


def prune_previous_trees(paths: list[Path], keep: int, reporter: Reporter) -> list[str]:
    """Keep the newest ``keep`` previous trees of each kind beside each path; returns what was removed."""
    removed = []
    for path in paths:
        pruned = prune_previous(path, keep)
        removed += [str(p) for p in pruned.removed]
        for problem in pruned.problems:
            reporter.warn(problem)
    return removed
