"""A real small file system (tmpfs, as root) for full-disk and mount-point tests."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def tmpfs(point: Path, size: str) -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True, timeout=30)
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True, timeout=30)
