"""What a probe found, and the small formatting helpers its messages use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK = "ok"
DEGRADED = "degraded"
"""Not healthy, not broken: reported, makes the run a warning, never triggers a restart (e.g. a failed drill)."""
FAILED = "failed"
STATUSES = (OK, DEGRADED, FAILED)


@dataclass(frozen=True)
class ProbeResult:
    name: str
    kind: str
    status: str
    message: str
    duration_s: float
    unit: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "ok": self.ok, "status": self.status,
                "message": self.message, "duration_s": round(self.duration_s, 4), "unit": self.unit}


def worst(statuses: list[str]) -> str:
    """FAILED over DEGRADED over OK; OK for none."""
    for status in (FAILED, DEGRADED):
        if status in statuses:
            return status
    return OK


def human_age(seconds: float) -> str:
    """3s, 12m, 4.5h, 2.0d - enough precision to compare with an objective."""
    if seconds < 0:
        return f"-{human_age(-seconds)}"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def human_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
