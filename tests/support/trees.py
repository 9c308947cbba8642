"""Snapshots of directory trees for byte-for-byte, mode-for-mode comparisons (restore tests)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any


def snapshot(root: Path, *, mtimes: bool = True, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """rel path -> (type, mode, uid, gid, content sha256 | link target | None, mtime_ns | None); links are not
    followed (their own mtime counts); names in ``skip`` (top level) are left out."""
    out: dict[str, tuple[Any, ...]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base).decode("utf-8", "backslashreplace")
            if rel.split("/")[0] in skip:
                continue
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    content: Any = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = None
            mtime = st.st_mtime_ns if mtimes else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, content, mtime)
    return out


def differences(expected: dict[str, tuple[Any, ...]], actual: dict[str, tuple[Any, ...]]) -> list[str]:
    """Readable differences (empty when equal)."""
    out = [f"missing {p}" for p in sorted(set(expected) - set(actual))]
    out += [f"unexpected {p}" for p in sorted(set(actual) - set(expected))]
    out += [f"differs {p}: {expected[p]} != {actual[p]}" for p in sorted(set(expected) & set(actual))
            if expected[p] != actual[p]]
    return out
