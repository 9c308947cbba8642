"""maintctl's human output: aligned tables, times and durations, run results, and a progress display.

Tables and texts are pure functions returning strings (tested as values); the progress display draws a rich
progress bar on a terminal (stderr) and prints steps and warnings as lines elsewhere.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces; None shows as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def size(count: float | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def when(text: str | None, tz: str = "UTC", now: datetime | None = None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM' in `tz`, with a relative hint ('in 3h', '2d ago')."""
    if not text:
        return "-"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    delta = (moment - now).total_seconds()
    hint = f"in {duration(delta)}" if delta >= 0 else f"{duration(-delta)} ago"
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} ({hint})"


def status_text(status: Mapping[str, Any], now: datetime | None = None) -> str:
    tz = status.get("timezone", "UTC")
    paused = status.get("paused") or []
    lines = [f"maintd {status.get('version')}  pid {status.get('pid')}  up {duration(status.get('uptime_s'))}"
             f"  timezone {tz}",
             f"config {status.get('config')}",
             f"paused: {'everything' if '*' in paused else ', '.join(paused) or 'nothing'}", ""]
    rows = []
    for entry in status.get("schedules", []):
        last = entry.get("last") or {}
        state = "paused" if entry.get("paused") else ("on" if entry.get("enabled") else "off")
        if not entry.get("available", True):
            state = "n/a"
        rows.append([entry["entry"], entry.get("schedule") or "on demand", state,
                     when(entry.get("next_run"), tz, now) if entry.get("next_run") else "-",
                     when(last.get("started"), tz, now) if last else "-", last.get("outcome"),
                     duration(last.get("duration_s")) if last else "-"])
    lines.append(table(rows, ["job", "schedule", "state", "next run", "last run", "outcome", "took"]))
    active = status.get("active") or []
    lines.append("")
    if active:
        lines.append("running:")
        for run in active:
            waiting = " waiting for its locks" if run.get("state") == "waiting" else ""
            lines.append(f"  {run.get('entry')} {run.get('run_id')}{waiting} since {when(run.get('started'), tz, now)}"
                         f"{progress_text(run.get('progress'))}")
    else:
        lines.append("running: nothing")
    health = status.get("health")
    if health:
        verdict = "ok" if health.get("ok") else "PROBLEMS"
        lines.append(f"health: {verdict} at {when(health.get('time'), tz, now)}")
        for probe in health.get("probes", []):
            mark = "ok " if probe.get("ok") else "BAD"
            lines.append(f"  {mark} {probe.get('name')}: {probe.get('message', '')}".rstrip())
    tiers = status.get("tiers")
    if tiers:
        lines.append("backups against their recovery point objective:")
        lines.append(tiers_text(tiers))
    return "\n".join(lines)


def tiers_text(tiers: Any) -> str:
    """Rows of maintd.backup.tiers.status: place, verdict, newest copy, its age, the RPO, and why (the local store
    is judged by its schedule: stale when a backup is overdue by more than its RPO; a tier by how far it lags)."""
    if isinstance(tiers, Mapping) and "error" in tiers:
        return f"  unavailable: {tiers['error']}"
    if not isinstance(tiers, list):
        return f"  {tiers}"
    rows = []
    for tier in tiers:
        if not isinstance(tier, Mapping):
            continue
        verdict = "ok" if tier.get("ok") else "STALE"
        if tier.get("error"):
            verdict += " (error)"
        rows.append([f"  {tier.get('name')}", verdict, tier.get("newest"),
                     duration(tier.get("age_s")) if tier.get("age_s") is not None else None,
                     duration(tier.get("rpo_s")) if tier.get("rpo_s") is not None else None, tier.get("detail")])
    return table(rows, ["  place", "state", "newest", "age", "rpo", "why"])


def progress_text(progress: Mapping[str, Any] | None) -> str:
    if not progress:
        return ""
    bits = [str(progress["phase"])] if progress.get("phase") else []
    if progress.get("total_bytes"):
        bits.append(f"{size(progress.get('done_bytes', 0))} of {size(progress['total_bytes'])}")
    if progress.get("total_files"):
        bits.append(f"{progress.get('done_files', 0)} of {progress['total_files']} files")
    if progress.get("message"):
        bits.append(str(progress["message"]))
    return f"  [{', '.join(bits)}]" if bits else ""


def jobs_text(jobs: Iterable[Mapping[str, Any]]) -> str:
    rows = [[j["name"], ", ".join(j.get("entries", [])), ", ".join(j.get("locks", [])), j.get("description")]
            for j in jobs]
    return table(rows, ["job", "calendar entries", "locks", "description"])


def history_text(runs: Iterable[Mapping[str, Any]], tz: str = "UTC") -> str:
    rows = [[r.get("run_id"), r.get("entry"), r.get("trigger"), when(r.get("started"), tz), r.get("outcome"),
             duration(r.get("duration_s")), _short(r.get("summary") or r.get("error") or "")] for r in runs]
    return table(rows, ["run id", "job", "trigger", "started", "outcome", "took", "summary"])


def _short(text: str, limit: int = 70) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def backups_text(backups: Iterable[Mapping[str, Any]]) -> str:
    rows = []
    for b in backups:
        verified = b.get("verified")
        if isinstance(verified, Mapping):
            damaged = verified.get("chain_damaged")
            verified = f"chain damaged: {damaged}" if damaged else ("ok" if verified.get("ok") else "FAILED")
        rows.append([b.get("id"), b.get("type"), b.get("parent"), b.get("created"),
                     size(b.get("size")) if b.get("size") is not None else None, b.get("files"), b.get("outcome"),
                     verified])
    return table(rows, ["id", "type", "parent", "created", "size", "files", "outcome", "verified"])


def mapping_text(value: Any, indent: int = 0) -> str:
    """Nested data as indented 'key: value' lines (for backup-show and the like)."""
    pad = "  " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(mapping_text(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_cell(item) if not isinstance(item, (Mapping, list)) else '-'}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, (Mapping, list)):
                lines.append(f"{pad}-")
                lines.append(mapping_text(item, indent + 1))
            else:
                lines.append(f"{pad}- {item}")
        return "\n".join(lines)
    return f"{pad}{value}"


def result_text(view: Mapping[str, Any]) -> str:
    """A finished run: the summary line, the report lines, warnings, and the error of a failed run."""
    outcome = view.get("outcome", "?")
    lines = [f"{view.get('entry') or view.get('job')} {outcome} in {duration(view.get('duration_s'))}: "
             f"{view.get('summary') or ''}".rstrip(": ").rstrip()]
    data = view.get("data") or {}
    for line in data.get("report", []) if isinstance(data.get("report"), list) else []:
        lines.append(f"  {line}")
    for warning in view.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    if view.get("error") and outcome not in ("succeeded", "warning"):
        lines.append(f"  error: {view['error']}")
    lines.append(f"  run id {view.get('run_id')}")
    return "\n".join(lines)


class ProgressDisplay:
    """Shows a run's events while it goes: a rich progress bar on a terminal; step and warning lines always."""

    def __init__(self, stream: TextIO = sys.stderr, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "ProgressDisplay":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
            console = Console(file=self.stream)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                                      transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        if name == "started":
            self._line(f"started {event.get('entry') or event.get('job')} (run {event.get('run_id')})")
            if self._progress is not None:
                self._progress.update(self._task, description=str(event.get("entry") or event.get("job")))
        elif name == "progress":
            self._update(event)
        elif name == "step":
            extra = ", ".join(f"{k}={v}" for k, v in event.items()
                              if k not in ("type", "v", "event", "step", "run_id", "job"))
            self._line(f"• {event.get('step')}" + (f" ({extra})" if extra else ""))
        elif name == "warning":
            self._line(f"warning: {event.get('message')}")

    def _update(self, event: Mapping[str, Any]) -> None:
        if self._progress is None:
            return
        done, total = event.get("done_bytes"), event.get("total_bytes")
        if not total:
            done, total = event.get("done_files"), event.get("total_files")
        detail = progress_text(event).strip().strip("[]")
        self._progress.update(self._task, completed=done or 0, total=total or None, detail=detail)

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)
