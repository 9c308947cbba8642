"""Which backup a restore, a recovery and a drill use: one rule, one pure function (``select_backup``), and the
words the reports use for it ("using X (taken 5 min ago)"). Values in, values out: the caller checks the chosen
chain and asks again with what it found damaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from ..errors import IntegrityError, NotFoundError, UsageError

GOOD_OUTCOMES = ("succeeded", "warning")


@dataclass(frozen=True)
class Candidate:
    """A committed backup as the selection sees it."""

    id: str
    created: datetime
    outcome: str
    has_redis: bool = False
    verified: bool | None = None
    """True: the last verify passed; False: it failed; None: never verified."""
    chain: tuple[str, ...] = ()
    """Every backup a restore of this one needs, oldest first, itself last (the manifest's chain)."""

    @property
    def members(self) -> tuple[str, ...]:
        return self.chain or (self.id,)


@dataclass(frozen=True)
class Selection:
    """The backup a restore uses, with what the operator must be told: ``notes`` (informative) and ``warnings``
    (a newer backup was passed over: damaged, failed its verify, partial)."""

    candidate: Candidate
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


# -- which backup -------------------------------------------------------------------------------------------------
def select_backup(candidates: Sequence[Candidate], *, backup: str | None = None, at: datetime | None = None,
                  need_redis: bool = False, damaged: Mapping[str, str] | None = None) -> Selection:
    """The backup a restore, a recovery and a drill use: one rule for all three.

    ``backup`` names one (an id; "latest" or None: choose); ``at`` limits the choice to backups created at or
    before that moment (point in time). Otherwise the newest backup that is

    - good: outcome succeeded or warning (a partial one, Redis missing, only when nothing else is left);
    - not failed: neither it nor any member of its chain failed its last verify (never verified is fine: the
      chain's objects are checked before anything is written);
    - not damaged: no member of its chain is in ``damaged`` (backup id -> reason, what the pre-restore integrity
      check found: the caller checks the chosen chain, adds what failed and asks again);
    - with a Redis snapshot when ``need_redis``.

    Newer backups passed over because they are damaged, failed their verify or are partial are named in the
    warnings (a restore from an older backup loses what happened since: it must never be silent)."""
    damaged = dict(damaged or {})
    if backup and backup != "latest":
        if at is not None:
            raise UsageError("give a backup id or --at, not both")
        chosen = next((c for c in candidates if c.id == backup), None)
        if chosen is None:
            raise NotFoundError(f"no committed backup {backup!r}")
        if need_redis and not chosen.has_redis:
            raise IntegrityError(f"backup {backup} holds no Redis snapshot (outcome {chosen.outcome})")
        return Selection(chosen)
    pool = sorted(candidates, key=lambda c: (c.created, c.id))
    if at is not None:
        if at.tzinfo is None:
            raise UsageError("--at needs a time zone (e.g. 2026-12-03T17:30:00+00:00 or ...Z)")
        pool = [c for c in pool if c.created <= at]
        if not pool:
            raise NotFoundError(f"no backup was taken at or before {at.isoformat()}")
    by_id = {c.id: c for c in candidates}
    problems = {c.id: _problem(c, by_id, need_redis, damaged) for c in pool}
    usable = [c for c in pool if problems[c.id] is None]
    good = [c for c in usable if c.outcome in GOOD_OUTCOMES]
    notes: list[str] = []
    if good:
        chosen = good[-1]
    elif usable:
        chosen = usable[-1]
        notes.append(f"no complete backup is usable: using the partial backup {chosen.id} (outcome "
                     f"{chosen.outcome})")
    else:
        if not pool:
            raise NotFoundError("no usable backup: none was committed")
        # Backups exist but none can be restored (damaged, failed verify, no Redis snapshot): a data error (65).
        bad = {m: r for m, r in damaged.items() if any(m in c.members for c in pool)}
        if bad:
            raise IntegrityError("no restorable backup: " + "; ".join(f"{m}: {r}" for m, r in bad.items()))
        failed = [c.id for c in pool if c.verified is False]
        raise IntegrityError("no restorable backup" + (" with a Redis snapshot" if need_redis else "")
                             + (f" (last verify failed: {', '.join(failed)})" if failed else ""))
    newer = [c for c in pool if (c.created, c.id) > (chosen.created, chosen.id)]
    warnings = _passed_over(newer, problems, chosen, damaged, notes)
    return Selection(chosen, tuple(notes), tuple(warnings))


def _problem(c: Candidate, by_id: Mapping[str, Candidate], need_redis: bool,
             damaged: Mapping[str, str]) -> tuple[str, str] | None:
    """Why a candidate cannot be chosen: (kind, the backup at fault), None when it can."""
    if need_redis and not c.has_redis:
        return "redis", c.id
    for member in c.members:
        if member in damaged:
            return "damaged", member
    for member in c.members:
        if member in by_id and by_id[member].verified is False:
            return "verify", member
    return None


def _passed_over(newer: Sequence[Candidate], problems: Mapping[str, tuple[str, str] | None], chosen: Candidate,
                 damaged: Mapping[str, str], notes: list[str]) -> list[str]:
    """Warnings (and notes, appended to ``notes``) naming the newer backups the selection passed over."""
    by_cause: dict[tuple[str, str], list[str]] = {}
    partial: list[str] = []
    for c in newer:
        problem = problems[c.id]
        if problem is None:
            partial.append(c.id)  # usable but not good: only a partial backup is passed over that way
        else:
            by_cause.setdefault(problem, []).append(c.id)
    warnings = []
    for (kind, culprit), ids in by_cause.items():
        also = [i for i in ids if i != culprit]
        needing = f"; skipped {len(also)} newer backup(s) that need it ({', '.join(also)})" if also else ""
        if kind == "redis":
            notes.append(f"skipped {len(ids)} newer backup(s) without a Redis snapshot ({', '.join(ids)})")
        elif kind == "damaged":
            reason = damaged[culprit].removeprefix(f"backup {culprit} ")
            warnings.append(f"backup {culprit} is DAMAGED and was not used ({reason}){needing}: "
                            f"falling back to the older {chosen.id}")
        else:
            warnings.append(f"backup {culprit} failed its last verify and was not used{needing}: falling back to "
                            f"the older {chosen.id}")
    if partial:
        warnings.append(f"skipped {len(partial)} newer partial backup(s) ({', '.join(partial)}: Redis was missing "
                        f"when taken): using {chosen.id}; name one with --backup to restore its files")
    return warnings


def age_text(created: datetime, now: datetime) -> str:
    """How long ago a backup was taken, for humans: "45 s ago", "5 min ago", "3.5 h ago", "2.0 days ago"."""
    seconds = (now - created).total_seconds()
    if seconds < 0:
        return f"{-seconds:.0f} s in the future (check the clock)"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def using_line(backup_id: str, created: datetime, now: datetime) -> str:
    """The line every restore, recovery and drill report starts with."""
    return f"using {backup_id} (taken {age_text(created, now)})"


