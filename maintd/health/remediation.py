"""Monit-style remediation, planned as a pure function: observations + remembered counters + now -> actions.

Rules: a probe's consecutive-failure counter grows with each failed check and is reset by any check that did not
fail. When a probe tied to a unit has failed ``failures_before_restart`` times in a row, its unit is restarted -
at most ``max_restarts`` times within any ``window`` (attempts count, successful or not). A restart resets the
counters of every probe tied to that unit, so the next restart again needs N failures in a row. With the budget
spent the plan says so (``budget_exhausted``) and restarts nothing; counters keep counting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Literal, Mapping

from ..config import Remediation

RESTART = "restart"
BUDGET_EXHAUSTED = "budget_exhausted"


@dataclass(frozen=True)
class Observation:
    probe: str
    unit: str | None
    failed: bool


@dataclass(frozen=True)
class Memory:
    """What remediation remembers between runs (stored in kv ``health.remediation``)."""

    failures: Mapping[str, int] = field(default_factory=dict)
    """Consecutive failures per probe name."""
    restarts: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    """Restart attempts per unit still inside the window, oldest first."""


@dataclass(frozen=True)
class Action:
    kind: Literal["restart", "budget_exhausted"]
    unit: str
    probes: tuple[str, ...]
    """The probes tied to the unit that reached the threshold."""
    failures: int
    """The highest consecutive-failure count among them."""
    restarts_in_window: int
    """Restarts of this unit inside the window before this action."""


@dataclass(frozen=True)
class Plan:
    memory: Memory
    actions: tuple[Action, ...]


def plan(observations: Iterable[Observation], memory: Memory, now: datetime, policy: Remediation) -> Plan:
    observations = list(observations)
    failures = {o.probe: (memory.failures.get(o.probe, 0) + 1 if o.failed else 0) for o in observations}
    horizon = now - timedelta(seconds=policy.window)
    restarts = {unit: tuple(t for t in times if t > horizon) for unit, times in memory.restarts.items()}
    restarts = {unit: times for unit, times in restarts.items() if times}

    due: dict[str, list[str]] = {}
    for o in observations:
        if o.unit and o.failed and failures[o.probe] >= policy.failures_before_restart:
            due.setdefault(o.unit, []).append(o.probe)

    actions: list[Action] = []
    if policy.enabled:
        for unit in sorted(due):
            probes = tuple(due[unit])
            count = max(failures[p] for p in probes)
            done = restarts.get(unit, ())
            if len(done) >= policy.max_restarts:
                actions.append(Action(BUDGET_EXHAUSTED, unit, probes, count, len(done)))
                continue
            actions.append(Action(RESTART, unit, probes, count, len(done)))
            restarts[unit] = done + (now,)
            for o in observations:
                if o.unit == unit:
                    failures[o.probe] = 0
    return Plan(Memory(failures=failures, restarts=restarts), tuple(actions))


def memory_to_json(memory: Memory) -> dict:
    return {"failures": dict(memory.failures),
            "restarts": {unit: [t.isoformat() for t in times] for unit, times in memory.restarts.items()}}


def memory_from_json(value: object) -> Memory:
    """Tolerant of a missing or damaged document: remediation then starts afresh."""
    if not isinstance(value, dict):
        return Memory()
    failures: dict[str, int] = {}
    for name, count in (value.get("failures") or {}).items():
        if isinstance(count, int) and count >= 0:
            failures[str(name)] = count
    restarts: dict[str, tuple[datetime, ...]] = {}
    for unit, times in (value.get("restarts") or {}).items():
        try:
            parsed = tuple(sorted(datetime.fromisoformat(t) for t in times))
        except (TypeError, ValueError):
            continue
        if parsed and all(t.tzinfo is not None for t in parsed):
            restarts[str(unit)] = parsed
    return Memory(failures=failures, restarts=restarts)
