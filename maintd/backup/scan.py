"""Walking a component: entries in path-bytes order, excludes applied, errors turned into warnings.

Order: the index (and so the walk) is sorted by the raw bytes of the relative path. A depth-first walk is not that
order ("a", "a.txt", "a/b" sorts "a.txt" between a directory and its content), so each directory's listing is
sorted with a directory's subtree keyed as ``name + b"/"``: no sibling name can fall inside a subtree's key range,
so subtrees stay contiguous and memory stays bounded by the listings along the current path.

Exclude patterns (``Component.exclude``), relative to the component root:
- without ``/`` (``tmp``, ``*.log``): matched against the name at any depth;
- with ``/`` (``cache/**``, ``logs/*.gz``): matched against the whole relative path (``*`` also crosses ``/``);
- ``dir/**`` also matches ``dir`` itself. A matching directory is skipped whole.
"""

from __future__ import annotations

import fnmatch
import heapq
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .index import SYMLINK, Entry, type_of

Warn = Callable[[str], None]


class Excludes:
    """Compiled exclude patterns; ``match(rel_path, name)`` on bytes."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        names: list[bytes] = []
        paths: list[bytes] = []
        for raw in self.patterns:
            pattern = raw.strip().lstrip("/")
            if not pattern:
                continue
            if pattern.endswith("/**"):
                pattern = pattern[:-3]
                (paths if "/" in pattern else names).append(_translate(pattern))
                paths.append(_translate(pattern + "/*"))
            elif "/" in pattern.rstrip("/"):
                paths.append(_translate(pattern.rstrip("/")))
            else:
                names.append(_translate(pattern.rstrip("/")))
        self._names = re.compile(b"|".join(names)) if names else None
        self._paths = re.compile(b"|".join(paths)) if paths else None

    def __bool__(self) -> bool:
        return self._names is not None or self._paths is not None

    def match(self, rel: bytes, name: bytes) -> bool:
        return bool((self._names is not None and self._names.match(name))
                    or (self._paths is not None and self._paths.match(rel)))


def _translate(pattern: str) -> bytes:
    return b"(?:" + fnmatch.translate(pattern).encode("utf-8") + b")"


@dataclass
class ScanStats:
    excluded: int = 0
    errors: int = 0


def walk(root: bytes, excludes: Excludes | None = None, *, warn: Warn = lambda message: None,
         stats: ScanStats | None = None, start: bytes = b"") -> Iterator[Entry]:
    """Every entry under ``root`` (not root itself), sorted by relative path bytes. With ``start`` (a relative
    path), only that entry and its subtree, named relative to ``root``. Symlinks are not followed. Entries that
    vanish while walking are left out silently; unreadable directories and links are warnings."""
    stats = stats if stats is not None else ScanStats()
    excludes = excludes if excludes else None
    base = root.rstrip(b"/") + b"/"
    if start:
        try:
            st = os.lstat(base + start)
        except FileNotFoundError:
            return
        except OSError as err:
            stats.errors += 1
            warn(f"cannot read {_show(start)}: {err.strerror}")
            return
        first = _entry(base, start, st, warn, stats)
        if first is None:
            return
        yield first
        if first.type != "d":
            return
    stack = [iter(_listing(base, start, excludes, warn, stats))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        rel, entry = item[1], item[2]
        if entry is None:  # the subtree marker of a directory
            stack.append(iter(_listing(base, rel, excludes, warn, stats)))
            continue
        yield entry


def walk_paths(paths: Iterable[str], *, warn: Warn = lambda message: None,
               stats: ScanStats | None = None) -> Iterator[Entry]:
    """The ``system`` component: several absolute paths (files or trees) named relative to ``/``, merged into one
    sorted stream. A path inside another listed path is walked once; a missing path is a warning."""
    stats = stats if stats is not None else ScanStats()
    rels = sorted({os.path.normpath(p).lstrip("/").encode() for p in paths if os.path.normpath(p) != "/"})
    kept: list[bytes] = []
    for rel in rels:
        if not any(rel.startswith(k + b"/") for k in kept):
            kept.append(rel)
    streams = []
    for rel in kept:
        if not os.path.lexists(b"/" + rel):
            warn(f"extra path /{_show(rel)} does not exist")
            continue
        streams.append(walk(b"/", None, warn=warn, stats=stats, start=rel))
    return heapq.merge(*streams, key=lambda e: e.path)


def _listing(base: bytes, rel_dir: bytes, excludes: Excludes | None, warn: Warn,
             stats: ScanStats) -> list[tuple[bytes, bytes, Entry | None]]:
    """One directory's items sorted by key: (key, rel, entry) for each child and (rel + b"/", rel, None) as the
    marker of each child directory's subtree."""
    prefix = rel_dir + b"/" if rel_dir else b""
    items: list[tuple[bytes, bytes, Entry | None]] = []
    try:
        with os.scandir(base + rel_dir if rel_dir else base) as listing:
            for child in listing:
                name = child.name
                rel = prefix + name
                if excludes is not None and excludes.match(rel, name):
                    stats.excluded += 1
                    continue
                try:
                    st = child.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    stats.errors += 1
                    warn(f"cannot stat {_show(rel)}: {err.strerror}")
                    continue
                entry = _entry(base, rel, st, warn, stats)
                if entry is None:
                    continue
                items.append((rel, rel, entry))
                if entry.type == "d":
                    items.append((rel + b"/", rel, None))
    except FileNotFoundError:
        return []
    except OSError as err:
        stats.errors += 1
        warn(f"cannot list {_show(rel_dir) or '.'}: {err.strerror}")
        return []
    items.sort(key=_first)
    return items


def _first(item: tuple[bytes, bytes, Entry | None]) -> bytes:
    return item[0]


def _entry(base: bytes, rel: bytes, st: os.stat_result, warn: Warn, stats: ScanStats) -> Entry | None:
    if type_of(st.st_mode) is None:  # whiteouts, doors: nothing tar or restore could make
        return None
    entry = Entry.from_stat(rel, st)
    if entry.type == SYMLINK:
        try:
            entry.link = os.readlink(base + rel)
        except FileNotFoundError:
            return None
        except OSError as err:
            stats.errors += 1
            warn(f"cannot read link {_show(rel)}: {err.strerror}")
            return None
    return entry


def _show(rel: bytes) -> str:
    return rel.decode("utf-8", "backslashreplace")
