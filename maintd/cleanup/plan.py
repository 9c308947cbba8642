"""Pure cleanup planning: what a scan found (relative path, type, ages, sizes) + a rule + now -> deletions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..config import CleanupRule
from .patterns import matches

FILE, DIR, SYMLINK, OTHER, DEVICE = "file", "dir", "symlink", "other", "device"


@dataclass(frozen=True)
class Entry:
    path: str
    """Relative to the rule's root, "/"-separated; never empty (the root is not an entry)."""
    kind: str
    """file, dir, symlink (the link itself, never its target), other (fifo, socket) or device."""
    mtime: float
    newest: float
    """Dirs: the newest mtime in the subtree, the dir included (inf when part of it could not be read);
    otherwise the entry's own mtime."""
    size: int = 0
    """Bytes: a file's size, a dir's total of the files below it."""
    files: int = 0
    """Non-directories inside a dir (1 for a non-directory)."""
    dirs: int = 0
    """Directories inside a dir, itself included (0 for a non-directory)."""


@dataclass(frozen=True)
class Deletion:
    entry: Entry
    age_s: float


def wanted_kind(rule: CleanupRule, kind: str) -> bool:
    if kind == DEVICE:
        return False  # device nodes are never cleanup's business
    if kind == DIR:
        return rule.kind in ("dirs", "both")
    return rule.kind in ("files", "both")


def plan(rule: CleanupRule, entries: Iterable[Entry], now: float) -> list[Deletion]:
    """Entries the rule removes: matching a pattern, of a wanted kind, and at least min_age old - a directory by
    its newest content, so a dir with anything recent inside is kept. Entries below a removed directory are not
    listed again. Parents come before children."""
    chosen: list[Deletion] = []
    removed_dirs: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.path.split("/")):
        parts = entry.path.split("/")
        if any("/".join(parts[:i]) in removed_dirs for i in range(1, len(parts))):
            continue
        if not wanted_kind(rule, entry.kind) or not matches(rule.patterns, entry.path):
            continue
        age = now - (entry.newest if entry.kind == DIR else entry.mtime)
        if age < rule.min_age:
            continue
        chosen.append(Deletion(entry, age))
        if entry.kind == DIR:
            removed_dirs.add(entry.path)
    return chosen


def needs_subtree(rule: CleanupRule, relpath: str) -> bool:
    """Must the scan walk into this directory? Always for a recursive rule; otherwise only to judge a directory
    the rule may remove (its newest content and size)."""
    return rule.recursive or (rule.kind in ("dirs", "both") and matches(rule.patterns, relpath))
