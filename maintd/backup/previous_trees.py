"""The previous trees swap restores keep beside a live path (``NAME.pre-restore.<time>``, ``NAME.broken.<time>``,
and Redis's ``dump.rdb.pre-restore.<time>``...): after a successful restore or recovery only the newest
``recovery.keep_previous_trees`` of each kind are kept, the older ones are deleted."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("pre-restore", "broken")
_STAMP = r"\d{8}T\d{6}Z"  # restore_plan.stamp()


@dataclass
class Pruned:
    removed: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def previous_trees(live: Path) -> dict[str, list[Path]]:
    """kind -> the previous copies of ``live`` beside it, newest first (by their time stamp)."""
    pattern = re.compile(re.escape(live.name) + r"\.(" + "|".join(map(re.escape, KINDS)) + r")\.(" + _STAMP + r")$")
    found: dict[str, list[tuple[str, Path]]] = {}
    try:
        names = os.listdir(live.parent)
    except OSError:
        return {}
    for name in names:
        match = pattern.match(name)
        if match:
            found.setdefault(match.group(1), []).append((match.group(2), live.parent / name))
    return {kind: [path for _, path in sorted(items, reverse=True)] for kind, items in found.items()}


def prune_previous(live: Path, keep: int) -> Pruned:
    """Delete all but the newest ``keep`` (at least 1) previous copies of ``live`` of each kind."""
    result = Pruned()
    for paths in previous_trees(live).values():
        for path in paths[max(1, keep):]:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                result.removed.append(path)
            except OSError as err:
                result.problems.append(f"cannot remove {path}: {err.strerror}")
    return result
