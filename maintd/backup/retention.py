"""Retention planning: which backups to keep and which to delete, and why. Pure: no I/O, no clock.

``plan(backups, policy, now, tz)`` takes simple records (built from manifests and verify results by the caller)
and returns a Plan with one Decision per backup. The rules, in the order their reasons are listed:

- safety: the newest good backup and the newest verified good backup are always kept;
- age: a good backup younger than its type's limit (`incremental_days`, `differential_days`, `full_days`);
- periods (grandfather-father-son, as restic's ``forget --keep-daily`` etc.): for each of the last N days, ISO
  weeks, months and years *that have a good backup* (in `tz`), one backup of that period is kept. Which one:
  with ``period_pick = "shortest_chain"`` (default) the newest among the period's backups that need the fewest
  others to restore (a full beats a differential beats an incremental), so long-term keeps are fulls and do not
  drag chains of incrementals along; with ``"newest"`` simply the newest (restic's choice). Rules are independent:
  one backup may satisfy several, and each rule keeps at most its count;
- chain: every member of a kept backup's chain is kept ("parent of <id>");
- bad backups (partial, failed verify, or a chain with a missing or damaged member) never count as good: they
  satisfy no period rule, are never the safety keep and protect nothing. But being bad is no reason to delete
  one: it is kept while its type's age limit would keep a good one ("partial, kept: within 7 days
  (incremental)") and while no newer good backup exists ("..., kept: no newer good backup"), and deleted only
  after both ("partial: older than 7 days (incremental), superseded by <id>") and when no kept backup needs it.

The plan is deterministic (input order does not matter) and idempotent: deleting what it deletes and planning
again deletes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Callable, Iterable, Literal, Protocol

GOOD_OUTCOMES = frozenset({"succeeded", "warning"})
PERIODS = ("daily", "weekly", "monthly", "yearly")


class Policy(Protocol):
    """What the planner reads; ``maintd.config.Retention`` satisfies it."""

    incremental_days: int
    differential_days: int
    full_days: int
    daily: int
    weekly: int
    monthly: int
    yearly: int
    period_pick: Literal["shortest_chain", "newest"]


@dataclass(frozen=True)
class BackupRecord:
    id: str
    type: str
    """full, incremental or differential."""
    created: datetime
    """Timezone-aware."""
    parent: str | None = None
    chain: tuple[str, ...] = ()
    """Oldest first, ending with this id; every backup a restore needs. Empty means just this one."""
    outcome: str = "succeeded"
    """succeeded, warning or partial (anything but succeeded/warning is bad)."""
    verified_ok: bool | None = None
    """Result of the last verify: True, False (damaged) or None (never verified)."""
    verified_time: datetime | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return self.chain if self.chain else (self.id,)


@dataclass(frozen=True)
class Decision:
    id: str
    keep: bool
    reasons: tuple[str, ...]
    """Why it is kept (every rule that keeps it), or why it goes (one line)."""


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    """One per backup, oldest first."""
    good: frozenset[str] = field(default_factory=frozenset)
    """Ids the planner counted as good (restorable, not partial, not damaged)."""

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.keep)

    @property
    def deleted(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.keep)

    @property
    def keep_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.kept)

    @property
    def delete_ids(self) -> tuple[str, ...]:
        """Ids to delete, newest first: a backup goes before the ones its chain names."""
        return tuple(d.id for d in reversed(self.decisions) if not d.keep)

    def decision(self, backup_id: str) -> Decision:
        for item in self.decisions:
            if item.id == backup_id:
                return item
        raise KeyError(backup_id)


# -- period keys ---------------------------------------------------------------------------------------------------
def period_key(kind: str, moment: datetime, tz: tzinfo) -> str:
    """The period a moment falls in, in tz: daily 2026-12-01, weekly 2026-W48 (ISO), monthly 2026-12, yearly 2026."""
    local = moment.astimezone(tz)
    if kind == "daily":
        return local.date().isoformat()
    if kind == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "monthly":
        return f"{local.year}-{local.month:02d}"
    if kind == "yearly":
        return f"{local.year}"
    raise ValueError(f"unknown period {kind!r}")


# -- the planner ---------------------------------------------------------------------------------------------------
def _order(record: BackupRecord) -> tuple[datetime, str]:
    return (record.created, record.id)


def badness(record: BackupRecord, by_id: dict[str, BackupRecord]) -> str | None:
    """Why a backup is not good, or None when it is."""
    if record.outcome not in GOOD_OUTCOMES:
        return record.outcome
    if record.verified_ok is False:
        return "verify failed"
    for member in record.members:
        if member == record.id:
            continue
        other = by_id.get(member)
        if other is None:
            return f"chain incomplete: {member} missing"
        if other.verified_ok is False:
            return f"chain member {member} failed verify"
    return None


def age_limit_days(policy: Policy, backup_type: str) -> int:
    return {"incremental": policy.incremental_days, "differential": policy.differential_days,
            "full": policy.full_days}.get(backup_type, policy.full_days)


def _period_picks(good: list[BackupRecord], kind: str, count: int, tz: tzinfo,
                  pick: str) -> dict[str, str]:
    """{backup id: period key} for the `count` newest periods holding a good backup."""
    if count <= 0:
        return {}
    rank: Callable[[BackupRecord], tuple]
    if pick == "newest":
        rank = _order
    else:
        rank = lambda r: (-len(r.members), r.created, r.id)  # noqa: E731 - fewest dependencies, then newest
    best: dict[str, BackupRecord] = {}
    for record in good:
        key = period_key(kind, record.created, tz)
        if key not in best or rank(record) > rank(best[key]):
            best[key] = record
    # Periods ordered by their newest backup (not by key text: keys of a kind sort the same way, but be exact).
    newest_in: dict[str, tuple[datetime, str]] = {}
    for record in good:
        key = period_key(kind, record.created, tz)
        newest_in[key] = max(newest_in.get(key, _order(record)), _order(record))
    chosen = sorted(best, key=lambda k: newest_in[k], reverse=True)[:count]
    return {best[key].id: key for key in chosen}


def plan(backups: Iterable[BackupRecord], policy: Policy, now: datetime, tz: tzinfo) -> Plan:
    records = sorted(backups, key=_order)
    by_id = {r.id: r for r in records}
    if len(by_id) != len(records):
        raise ValueError("duplicate backup ids")
    bad = {r.id: why for r in records if (why := badness(r, by_id)) is not None}
    good = [r for r in records if r.id not in bad]
    reasons: dict[str, list[str]] = {r.id: [] for r in records}

    # Safety first: the newest good backup, and the newest one a verify has passed.
    if good:
        reasons[good[-1].id].append("newest good backup")
        verified = [r for r in good if r.verified_ok is True]
        if verified:
            reasons[verified[-1].id].append("newest verified good backup")

    for record in good:
        days = age_limit_days(policy, record.type)
        if days > 0 and record.created > now - timedelta(days=days):
            reasons[record.id].append(f"within {days} days ({record.type})")

    pick = getattr(policy, "period_pick", "shortest_chain")
    for kind in PERIODS:
        for backup_id, key in _period_picks(good, kind, getattr(policy, kind), tz, pick).items():
            reasons[backup_id].append(f"{kind} {key}")

    # A bad backup never counts as good, but being bad (or superseded) is no reason to delete it: it may hold the
    # only copy of some state, and a verify run with a wrong key once marked every backup failed. It stays while
    # its type's age limit keeps it and while nothing good is newer; then it goes like any other old backup.
    superseded: dict[str, str] = {}
    for record in records:
        if record.id not in bad:
            continue
        days = age_limit_days(policy, record.type)
        newer = next((g.id for g in good if _order(g) > _order(record)), None)
        why = []
        if days > 0 and record.created > now - timedelta(days=days):
            why.append(f"within {days} days ({record.type})")
        if newer is None:
            why.append("no newer good backup")
        else:
            superseded[record.id] = newer
        if why:
            reasons[record.id].append(f"{bad[record.id]}, kept: {', '.join(why)}")

    # Chains: whatever a kept backup needs is kept. Walk newest first so dependents are settled first.
    primary = {r.id for r in records if reasons[r.id]}
    needed_by: dict[str, list[str]] = {r.id: [] for r in records}
    kept = set(primary)
    for record in reversed(records):
        if record.id not in kept:
            continue
        for member in record.members:
            if member != record.id and member in by_id:
                kept.add(member)
                needed_by[member].append(record.id)
    for record in records:
        dependents = sorted(needed_by[record.id])
        children = [d for d in dependents if by_id[d].parent == record.id]
        for child in children:
            reasons[record.id].append(f"parent of {child}")
        if dependents and not children:
            reasons[record.id].append(f"in the chain of {dependents[-1]}")

    decisions = []
    for record in records:
        if record.id in kept:
            decisions.append(Decision(record.id, True, tuple(reasons[record.id])))
        elif record.id in bad:
            days = age_limit_days(policy, record.type)
            decisions.append(Decision(record.id, False, (
                f"{bad[record.id]}: older than {days} days ({record.type}), superseded by {superseded[record.id]}",)))
        else:
            days = age_limit_days(policy, record.type)
            decisions.append(Decision(record.id, False, (
                f"older than {days} days ({record.type}) and no period rule keeps it",)))
    return Plan(tuple(decisions), frozenset(r.id for r in good))


def report_lines(result: Plan, *, dry_run: bool = False, max_dependents: int = 3) -> list[str]:
    """Operator-facing lines: each kept backup with its rules, each deleted one with why."""
    lines = []
    verb = "would delete" if dry_run else "delete"
    for item in result.decisions:
        if item.keep:
            lines.append(f"keep    {item.id}: {'; '.join(_shorten(item.reasons, max_dependents))}")
        else:
            lines.append(f"{verb:<7} {item.id}: {'; '.join(item.reasons)}")
    return lines


def _shorten(reasons: tuple[str, ...], limit: int) -> list[str]:
    parents = [r for r in reasons if r.startswith("parent of ")]
    others = [r for r in reasons if not r.startswith("parent of ")]
    if len(parents) <= limit:
        return list(reasons)
    shown = [p.removeprefix("parent of ") for p in parents[-limit:]]
    return others + [f"parent of {', '.join(shown)} and {len(parents) - limit} more"]
