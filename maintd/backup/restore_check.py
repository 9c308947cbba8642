"""The pre-restore integrity check of a chain: every manifest present and parsing, the size and sha256 of every
object the restore will read. Nothing is decrypted (no key needed) and nothing is written."""

from __future__ import annotations

from ..errors import IntegrityError, NotFoundError
from . import reader
from .catalog import Catalog, Manifest
from .restorer import Reporter


class ChainDamaged(IntegrityError):
    """The pre-restore check found a chain member missing or damaged; ``backup_id`` names that member."""

    def __init__(self, backup_id: str, message: str) -> None:
        super().__init__(message)
        self.backup_id = backup_id


def chain_of(catalog: Catalog, manifest: Manifest) -> list[Manifest]:
    """The manifests of ``manifest``'s chain, oldest first; ChainDamaged naming a missing or unreadable one."""
    chain = []
    for member in manifest.chain:
        if member == manifest.id:
            chain.append(manifest)
            continue
        try:
            chain.append(catalog.get(member))
        except NotFoundError as err:
            raise ChainDamaged(member, f"backup {manifest.id}: chain member {member} is missing") from err
        except IntegrityError as err:
            raise ChainDamaged(member, err.message) from err
    if not chain or chain[-1].id != manifest.id:
        raise ChainDamaged(manifest.id, f"backup {manifest.id}: its chain does not end with itself")
    return chain


def check_chain(catalog: Catalog, reporter: Reporter, manifest: Manifest, chain: list[Manifest],
                components: list[str], redis: bool, checked: set[tuple[str, str]] | None = None) -> None:
    """Size and sha256 of every object the restore may read, in every backup of the chain: a missing or damaged
    one stops the restore here, before anything is written, naming backup and object (ChainDamaged). Pairs in
    ``checked`` are skipped; the ones that pass are added."""
    checked = set() if checked is None else checked
    names: list[tuple[Manifest, str]] = []
    for member in chain:
        for component in components:
            if member.archive_name(component) in member.objects:
                names.append((member, member.archive_name(component)))
    for component in components:
        names.append((manifest, manifest.index_name(component)))
    if redis:
        names.append((manifest, manifest.redis_name()))
    names = [(m, n) for m, n in names if (m.id, n) not in checked]
    total = sum(m.objects.get(n, {}).get("size", 0) for m, n in names)
    done = 0
    for member, name in names:
        reporter.check_cancelled()
        reporter.progress(phase="check chain", done_bytes=done, total_bytes=total, message=f"{member.id} {name}")
        try:
            reader.check_object(catalog, member.id, name, member)
        except (IntegrityError, NotFoundError) as err:
            raise ChainDamaged(member.id, err.message) from err
        checked.add((member.id, name))
        done += member.objects[name]["size"]
