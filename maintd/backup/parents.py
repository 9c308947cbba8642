"""The parent of an incremental or differential backup: is it usable, and its index entries per component.

A parent is unusable when its chain is incomplete, its last verify failed, an object of its chain does not match
its manifest (size and sha256: ``chain_damage``, run before every incremental and differential), or (public-key
mode) there is neither a local index copy nor a secret key. The job then takes a full.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ..edges.gpg import Gpg
from ..errors import IntegrityError, MaintdError
from . import reader
from .catalog import Catalog, Manifest
from .writer import ComponentSpec, ParentUnusable


def problem(state: Any, catalog: Catalog, gpg: Gpg, parent: Manifest, specs: list[ComponentSpec],
            missing: dict[str, str]) -> str | None:
    """Why ``parent`` cannot be used (None when it can)."""
    try:
        catalog.chain(parent.id)
    except MaintdError as err:
        return err.message
    verified = state.get(f"verify.{parent.id}")
    if isinstance(verified, dict) and verified.get("ok") is False:
        return f"it failed verification at {verified.get('time')}"
    for spec in specs:
        if spec.name in missing or component_of(parent, spec) is None:
            continue
        cached = reader.cache_path(catalog, parent.id, spec.name)
        if not (cached is not None and cached.is_file()):
            if not gpg.has_secret_key():
                return (f"its {spec.name} index has no local cache copy and this host cannot decrypt it "
                        "(public-key mode)")
            try:
                reader.check_object(catalog, parent.id, parent.index_name(spec.name), parent)
            except (IntegrityError, MaintdError) as err:
                return err.message
    return None


def chain_damage(catalog: Catalog, parent: Manifest) -> tuple[str, str] | None:
    """(backup id, problem) for the first object in ``parent``'s chain (oldest first) whose size or sha256 differs
    from its manifest (or that is missing or unreadable); None when every object matches. No decryption: it reads
    every object of the chain once (the cost of a sha256 over the chain's stored bytes). An incomplete chain is
    ``problem``'s to report: None here."""
    try:
        chain = catalog.chain(parent.id)
    except MaintdError:
        return None
    for member in chain:
        for name in sorted(member.objects):
            try:
                reader.check_object(catalog, member.id, name, member)
            except MaintdError as err:
                return member.id, err.message
    return None


def component_of(parent: Manifest | None, spec: ComponentSpec) -> dict[str, Any] | None:
    """The parent's manifest entry for this component, None when it lacks it (then all its files are new)."""
    if parent is None:
        return None
    entry = parent.components.get(spec.name)
    if not entry or entry.get("missing") or entry.get("root") != spec.root:
        return None
    return entry


@contextlib.contextmanager
def entries(catalog: Catalog, gpg: Gpg, parent: Manifest | None,
            spec: ComponentSpec) -> Iterator[Iterator[Any] | None]:
    """The parent's index entries of this component (the local cache copy when there is one), or None when the
    parent does not have the component (all its files are then new)."""
    if parent is None or component_of(parent, spec) is None:
        yield None
        return
    cached = reader.cache_path(catalog, parent.id, spec.name)
    with contextlib.ExitStack() as stack:
        try:
            if cached is not None and cached.is_file():
                _header, found = stack.enter_context(reader.open_cached_index(cached))
            else:
                _header, found = stack.enter_context(reader.open_index(catalog, gpg, parent.id, spec.name, parent))
        except MaintdError as err:
            raise ParentUnusable(f"the parent's {spec.name} index is unusable: {err.message}") from err
        except OSError as err:
            raise ParentUnusable(f"the parent's {spec.name} index is unreadable: {err.strerror}") from err
        yield found
        try:
            for _rest in found:  # read to the end: the object's checks run there, and gpg ends cleanly
                pass
        except MaintdError as err:
            raise ParentUnusable(f"the parent's {spec.name} index is unusable: {err.message}") from err
