"""Job modules. Each exposes ``JOB`` (a JobSpec) or ``JOBS`` (several); ``registry()`` collects them."""

from __future__ import annotations

import importlib
import pkgutil

from .base import JobContext, JobResult, JobSpec

__all__ = ["JobContext", "JobResult", "JobSpec", "registry"]


def registry() -> dict[str, JobSpec]:
    found: dict[str, JobSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        specs = getattr(module, "JOBS", None) or ((module.JOB,) if hasattr(module, "JOB") else ())
        for spec in specs:
            if spec.name in found:
                raise RuntimeError(f"job {spec.name!r} defined twice")
            found[spec.name] = spec
    return found
