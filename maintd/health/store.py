"""What the health job keeps in state.db (kv), under fixed keys other parts read:

- ``health.last``: {time, ok, status, probes: [{name, kind, ok, status, message, duration_s, unit}], actions: [...]}
  (``maintctl status`` shows it);
- ``health.probe.<name>``: per probe {checks, failures, consecutive_failures, last_status, last_message, last_ok,
  last_failure};
- ``health.remediation``: the remediation memory (consecutive failures, restart times per unit);
- ``health.remediations``: the last RECORD_KEEP remediation actions with their result.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from .remediation import Memory, memory_from_json, memory_to_json
from .result import ProbeResult

if TYPE_CHECKING:
    from ..state import State

LAST = "health.last"
REMEDIATION = "health.remediation"
REMEDIATIONS = "health.remediations"
PROBE_PREFIX = "health.probe."
RECORD_KEEP = 100


def load_memory(state: "State") -> Memory:
    return memory_from_json(state.get(REMEDIATION))


def save_memory(state: "State", memory: Memory) -> None:
    state.put(REMEDIATION, memory_to_json(memory))


def update_probe_counters(state: "State", results: Iterable[ProbeResult], now: datetime) -> None:
    for result in results:
        key = PROBE_PREFIX + result.name
        counters = state.get(key) or {}
        counters = {
            "checks": int(counters.get("checks", 0)) + 1,
            "failures": int(counters.get("failures", 0)) + (1 if result.failed else 0),
            "consecutive_failures": int(counters.get("consecutive_failures", 0)) + 1 if result.failed else 0,
            "last_status": result.status,
            "last_message": result.message,
            "last_ok": now.isoformat() if result.ok else counters.get("last_ok"),
            "last_failure": now.isoformat() if result.failed else counters.get("last_failure"),
        }
        state.put(key, counters)


def record_actions(state: "State", records: list[dict[str, Any]]) -> None:
    if not records:
        return
    kept = list(state.get(REMEDIATIONS) or [])
    kept.extend(records)
    state.put(REMEDIATIONS, kept[-RECORD_KEEP:])


def save_last(state: "State", document: dict[str, Any]) -> None:
    state.put(LAST, document)
