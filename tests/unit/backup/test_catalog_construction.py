"""The local backup store is opened with ``Catalog.from_settings``: only that catalog knows the public-key index
cache (state_dir/index-cache), so only it removes a backup's cache copy when it deletes the backup. Checked on the
source, like the layering."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "maintd"

# Modules that may build a Catalog from a bare root, and why.
BARE_ROOT_ALLOWED = {
    "backup/catalog.py": "from_settings itself",
    "backup/tier_dir.py": "a tier's own store: its deletions must never touch the local index cache",
    "backup/tier_rsync.py": "manifests fetched from a tier into a scratch directory",
}


def bare_catalogs(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "Catalog" or (name == "cls" and path.name == "catalog.py"):
            lines.append(node.lineno)
    return lines


def test_the_local_store_is_always_opened_with_from_settings() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in BARE_ROOT_ALLOWED:
            continue
        found += [f"maintd/{relative}:{line}" for line in bare_catalogs(path)]
    assert not found, "use Catalog.from_settings(settings) (it removes index-cache copies on delete): " + ", ".join(
        found)
