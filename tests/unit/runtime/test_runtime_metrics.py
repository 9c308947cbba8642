"""The Prometheus textfile: written atomically after each run, parsed back here."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from structlog.testing import capture_logs

from maintd.model import Outcome, RunRecord, Trigger
from maintd.runtime import metrics

SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """{(metric, frozenset(labels)): value}; also checks every sample has HELP and TYPE lines before it."""
    out: dict[tuple[str, frozenset], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        assert match["name"] in typed, f"{match['name']} has no TYPE line"
        labels = frozenset(tuple(pair.split("=", 1)) for pair in match["labels"].split(","))
        out[(match["name"], labels)] = float(match["value"])
    return out


def labels(**kw: str) -> frozenset:
    return frozenset((k, f'"{v}"') for k, v in kw.items())


def test_metrics_file_after_runs(make_runner, tmp_path):
    target = tmp_path / "textfile" / "maintd.prom"
    target.parent.mkdir()
    runner = make_runner({"paths": {"metrics_file": str(target)}})
    good = runner.run_sync("ok")
    runner.run_sync("fail")
    last = runner.run_sync("ok")
    runner.run_sync("fail")
    samples = parse(target.read_text())
    assert samples[("maintd_job_runs_total", labels(job="ok", outcome="succeeded"))] == 2
    assert samples[("maintd_job_runs_total", labels(job="fail", outcome="failed"))] == 2
    assert samples[("maintd_job_runs_total", labels(job="fail", outcome="succeeded"))] == 0
    assert samples[("maintd_job_last_success_timestamp_seconds", labels(job="ok"))] == \
        round(last.finished.timestamp(), 6) != good.finished.timestamp()
    assert ("maintd_job_last_success_timestamp_seconds", labels(job="fail")) not in samples
    assert samples[("maintd_job_last_outcome", labels(job="fail", outcome="failed"))] == 1
    assert samples[("maintd_job_last_outcome", labels(job="fail", outcome="succeeded"))] == 0
    assert samples[("maintd_job_last_run_timestamp_seconds", labels(job="fail"))] >= last.finished.timestamp()
    assert samples[("maintd_job_last_duration_seconds", labels(job="ok"))] >= 0
    assert list(target.parent.iterdir()) == [target]  # no .tmp left behind
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_counters_survive_restarts_and_history_trimming(make_runner, tmp_path):
    target = tmp_path / "maintd.prom"
    runner = make_runner({"paths": {"metrics_file": str(target)}, "daemon": {"history_keep": 10}})
    for _ in range(12):
        runner.run_sync("ok")
    metrics.write(runner.state, target)  # as the daemon does at start
    assert parse(target.read_text())[("maintd_job_runs_total", labels(job="ok", outcome="succeeded"))] == 12


def test_unwritable_metrics_file_is_a_warning_not_a_failed_run(make_runner, tmp_path):
    runner = make_runner({"paths": {"metrics_file": str(tmp_path / "missing-dir" / "maintd.prom")}})
    with capture_logs() as logs:
        assert runner.run_sync("ok").outcome is Outcome.SUCCEEDED
    [warning] = [e for e in logs if e["event"] == "metrics.failed"]
    assert "cannot write metrics file" in warning["error"]


def test_label_values_are_escaped():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record = RunRecord(run_id="r", job='we"ird\\job', trigger=Trigger.MANUAL, started=start,
                       finished=start + timedelta(seconds=2.5), outcome=Outcome.WARNING)
    text = metrics.render(metrics.update({}, record))
    assert 'maintd_job_last_duration_seconds{job="we\\"ird\\\\job"} 2.5' in text
    assert 'maintd_job_last_success_timestamp_seconds{job="we\\"ird\\\\job"} 1767225602.5' in text
