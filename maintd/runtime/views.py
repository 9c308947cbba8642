"""JSON views of the daemon's state for the control socket: run records, schedule entries, the status document
and the one-line ``STATUS=`` text for systemd. Pure functions of the values they are given."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..model import RunRecord

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def record_view(record: RunRecord) -> dict[str, Any]:
    """A run as maintctl shows it; the runner's `_entry` marker becomes `entry`."""
    args = dict(record.args)
    entry = args.pop("_entry", None)
    data = record.data if isinstance(record.data, dict) else {}
    duration = record.duration_s
    return {
        "run_id": record.run_id, "job": record.job, "entry": entry or record.job, "trigger": record.trigger.value,
        "started": iso(record.started), "finished": iso(record.finished), "outcome": record.outcome.value,
        "summary": record.summary, "error": record.error, "data": data, "args": args,
        "duration_s": round(duration, 3) if duration is not None else None,
        "warnings": list(data.get("warnings", [])) if isinstance(data.get("warnings"), list) else [],
    }


def last_run_of(entry: str, job: str, history: Iterable[RunRecord],
                entry_args: Mapping[str, Any] | None = None) -> RunRecord | None:
    """The newest run of this calendar entry (history is newest first): started from the entry itself, or from
    the bare job name with the entry's arguments (`maintctl backup full` counts for `backup-full`)."""
    wanted = dict(entry_args or {})
    for record in history:
        marker = record.args.get("_entry")
        if marker == entry or (marker in (None, job) and entry == job):
            return record
        if marker == job and wanted and all(record.args.get(k) == v for k, v in wanted.items()):
            return record
    return None


def schedule_views(settings: "Settings", state: "State", next_runs: Mapping[str, datetime | None],
                   available: Iterable[str]) -> list[dict[str, Any]]:
    """One row per calendar entry: job, schedule, enabled, paused, next run, last run."""
    paused = state.paused()
    known = set(available)
    rows = []
    for entry, schedule in sorted(settings.jobs.items()):
        job = schedule.job_name(entry)
        last = last_run_of(entry, job, state.history(job, 50), schedule.args)
        rows.append({
            "entry": entry, "job": job, "schedule": schedule.schedule, "enabled": schedule.enabled,
            "available": job in known, "paused": entry in paused or "*" in paused,
            "next_run": iso(next_runs.get(entry)), "timeout_s": schedule.timeout,
            "last": None if last is None else {
                "run_id": last.run_id, "started": iso(last.started), "outcome": last.outcome.value,
                "duration_s": None if last.duration_s is None else round(last.duration_s, 3),
                "summary": last.summary},
        })
    return rows


def status_line(active: list[Mapping[str, Any]], last: RunRecord | None) -> str:
    """What `systemctl status maintd` shows: the running job and its progress, else the last result."""
    if active:
        parts = [_progress_text(snapshot) for snapshot in active]
        return "running " + "; ".join(parts)
    if last is None:
        return "idle, no run yet"
    summary = f": {last.summary}" if last.summary else ""
    return f"idle; last {last.job} {last.outcome.value} at {last.started:%Y-%m-%d %H:%M}Z{summary}"[:200]


def _progress_text(snapshot: Mapping[str, Any]) -> str:
    job = snapshot.get("entry") or snapshot.get("job", "?")
    progress = snapshot.get("progress") or {}
    bits = []
    if progress.get("phase"):
        bits.append(str(progress["phase"]))
    for done_key, total_key, unit in (("done_bytes", "total_bytes", "bytes"), ("done_files", "total_files", "files")):
        done, total = progress.get(done_key), progress.get(total_key)
        if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total:
            bits.append(f"{100 * done / total:.0f}% of {unit}")
            break
    return f"{job} ({', '.join(bits)})" if bits else str(job)
