"""Prometheus textfile-collector output: per-job last run, last success, duration, outcome and run counters.

Counters live in state (kv `metrics.jobs`), so they survive restarts and history trimming (a `_total` must
never go down). The file is written as `<metrics_file>.tmp` in the same directory, then renamed over: the
collector never reads half a file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..model import Outcome, RunRecord

if TYPE_CHECKING:
    from ..state import State

KV_KEY = "metrics.jobs"
FINAL_OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.RUNNING)
_lock = threading.Lock()  # read-modify-write of the kv document by concurrent runs


def update(doc: dict[str, Any], record: RunRecord) -> dict[str, Any]:
    """The metrics document after `record` (pure: returns a new dict)."""
    out = {job: dict(values) for job, values in doc.items()}
    entry = out.setdefault(record.job, {})
    runs = dict(entry.get("runs", {}))
    runs[record.outcome.value] = runs.get(record.outcome.value, 0) + 1
    entry["runs"] = runs
    finished = (record.finished or record.started).timestamp()
    entry["last_run"] = finished
    entry["last_duration"] = record.duration_s or 0.0
    entry["last_outcome"] = record.outcome.value
    if record.outcome is Outcome.SUCCEEDED or record.outcome is Outcome.WARNING:
        entry["last_success"] = finished
    return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


_HELP = {
    "maintd_job_last_run_timestamp_seconds": ("gauge", "Unix time the last run of the job ended."),
    "maintd_job_last_success_timestamp_seconds": ("gauge", "Unix time the last successful run ended."),
    "maintd_job_last_duration_seconds": ("gauge", "Duration of the job's last run."),
    "maintd_job_last_outcome": ("gauge", "1 for the outcome of the job's last run, 0 for the others."),
    "maintd_job_runs_total": ("counter", "Runs of the job by outcome."),
}


def render(doc: dict[str, Any]) -> str:
    """The textfile for a metrics document (pure)."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for job in sorted(doc):
        entry = doc[job]
        job_label = f'job="{_label(job)}"'
        if "last_run" in entry:
            samples["maintd_job_last_run_timestamp_seconds"].append(f"{{{job_label}}} {_number(entry['last_run'])}")
            samples["maintd_job_last_duration_seconds"].append(
                f"{{{job_label}}} {_number(round(entry.get('last_duration', 0.0), 3))}")
        if entry.get("last_success") is not None:
            samples["maintd_job_last_success_timestamp_seconds"].append(
                f"{{{job_label}}} {_number(entry['last_success'])}")
        for outcome in FINAL_OUTCOMES:
            labels = f'{{{job_label},outcome="{outcome}"}}'
            if "last_outcome" in entry:
                samples["maintd_job_last_outcome"].append(f"{labels} {int(entry['last_outcome'] == outcome)}")
            samples["maintd_job_runs_total"].append(f"{labels} {int(entry.get('runs', {}).get(outcome, 0))}")
    lines: list[str] = []
    for name, (kind, text) in _HELP.items():
        if not samples[name]:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n" if lines else ""


def write_file(path: Path, text: str) -> None:
    """Atomically replace `path` (temp file in the same directory, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        raise StorageError(f"cannot write metrics file {path}: {err.strerror}") from err


def record_run(state: "State", record: RunRecord, metrics_file: Path | None) -> None:
    """Count the finished run in state and rewrite the textfile when one is configured."""
    with _lock:
        doc = update(state.get(KV_KEY, {}), record)
        state.put(KV_KEY, doc)
    if metrics_file is not None:
        write_file(metrics_file, render(doc))


def write(state: "State", metrics_file: Path | None) -> None:
    """Write the textfile from state now (the daemon calls this at start)."""
    if metrics_file is not None:
        write_file(metrics_file, render(state.get(KV_KEY, {})))
