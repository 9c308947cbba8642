"""The house's layering (docs/INTERFACES.md, ../shared/ARCHITECTURE.md): imports point down only, and edges never
import each other. Checked on the source, so a shortcut shows up in review as a failing test."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "maintd"

LAYERS = [
    ("pure", {"errors", "model", "protocol", "job_contract", "units", "__version__", "__init__"}),
    ("config", {"config", "cron"}),
    ("edges", {"edges", "state", "logs"}),
    ("domain", {"backup", "health", "cleanup", "recovery"}),
    ("jobs", {"jobs"}),
    ("runtime", {"runtime"}),
    ("entry", {"daemon", "ctl", "cli_render", "__main__", "checkconfig", "offline", "demo"}),
]


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"module maintd.{module} is in no layer: add it to LAYERS")


def imports_of(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = list(relative.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = []
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # annotations only: no import at run time
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, node.module] if node.module else base)
                if node.module is None:  # from . import x
                    found += [".".join([*base, alias.name]) for alias in node.names]
                    continue
                found.append(target)
            elif node.module and node.module.startswith("maintd."):
                found.append(node.module[len("maintd."):])
        elif isinstance(node, ast.Import):
            found += [a.name[len("maintd."):] for a in node.names if a.name.startswith("maintd.")]
    return [f for f in found if f]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def test_imports_point_down_and_edges_do_not_import_each_other() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if module == "__init__":
            continue
        own = layer_of(module)
        for target in imports_of(path):
            if layer_of(target) > own:
                violations.append(f"{module} (layer {LAYERS[own][0]}) imports {target} "
                                  f"(layer {LAYERS[layer_of(target)][0]})")
            if (module.startswith("edges.") and target.startswith("edges.")
                    and target.split(".")[1] != module.split(".")[1] and target != "edges"):
                if target not in ("edges.process",):  # every edge runs commands through the process edge
                    violations.append(f"edge {module} imports edge {target}")
    assert not violations, "\n".join(violations)
