"""The pure parts of the control side: who may do what, run views, status lines, maintctl's rendering."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from maintd import cli_render
from maintd.model import Outcome, RunRecord, Trigger
from maintd.runtime.peer import Access, _proc_groups, access_for
from maintd.runtime.views import last_run_of, record_view, status_line

T0 = datetime(2026, 12, 3, 17, 30, tzinfo=timezone.utc)


def _record(run_id: str, job: str, entry: str | None, **args: object) -> RunRecord:
    marker = {"_entry": entry} if entry else {}
    return RunRecord(run_id=run_id, job=job, trigger=Trigger.MANUAL, started=T0, finished=T0 + timedelta(seconds=2),
                     outcome=Outcome.SUCCEEDED, summary="done", args={**args, **marker})


def test_root_and_admin_members_may_do_anything_readers_only_read() -> None:
    assert access_for(0, frozenset(), 1000, None) is Access.ADMIN
    assert access_for(1001, frozenset({5, 1000}), 1000, 2000) is Access.ADMIN  # supplementary group
    assert access_for(1001, frozenset({2000}), 1000, 2000) is Access.READ
    assert access_for(1001, frozenset({7}), 1000, 2000) is Access.NONE
    assert access_for(1001, frozenset({2000}), 1000, None) is Access.NONE


def test_groups_come_from_proc_only_for_the_same_uid(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tmaintctl\nUid:\t1001\t1001\t1001\t1001\nGid:\t100\t100\t100\t100\n"
                      "Groups:\t4 27 995 \n")
    assert _proc_groups(status, 1001) == frozenset({4, 27, 995})
    assert _proc_groups(status, 1002) is None  # pid reused by someone else: do not trust it
    assert _proc_groups(tmp_path / "missing", 1001) is None
    assert _proc_groups(Path(f"/proc/{os.getpid()}/status"), os.geteuid()) is not None


def test_the_last_run_of_an_entry_includes_wrapper_runs_with_its_arguments() -> None:
    history = [_record("3", "backup", "backup", type="incremental"), _record("2", "backup", "backup", type="full"),
               _record("1", "backup", "backup-full", type="full")]
    assert last_run_of("backup-full", "backup", history, {"type": "full"}).run_id == "2"
    assert last_run_of("backup-differential", "backup", history, {"type": "differential"}) is None
    assert last_run_of("health", "health", [_record("9", "health", None)]).run_id == "9"


def test_record_view_separates_the_entry_from_the_args() -> None:
    view = record_view(_record("1", "backup", "backup-full", type="full"))
    assert view["entry"] == "backup-full" and view["args"] == {"type": "full"}
    assert view["duration_s"] == 2.0 and view["outcome"] == "succeeded"


def test_status_line_shows_the_running_job_and_its_progress_else_the_last_result() -> None:
    running = {"entry": "backup-full", "progress": {"phase": "archive:data", "done_bytes": 50, "total_bytes": 200}}
    assert status_line([running], None) == "running backup-full (archive:data, 25% of bytes)"
    assert status_line([], _record("1", "health", "health")).startswith("idle; last health succeeded at 2026-12-03")
    assert status_line([], None) == "idle, no run yet"


def test_tables_align_and_show_missing_values_as_dashes() -> None:
    text = cli_render.table([["a", None, True], ["longer", 3, False]], ["name", "n", "flag"])
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "N", "FLAG"]
    assert lines[1].split() == ["a", "-", "yes"] and lines[2].split() == ["longer", "3", "no"]
    assert lines[1].index("-") == lines[0].index(" N ") + 1


def test_durations_sizes_and_relative_times() -> None:
    assert cli_render.duration(2.25) == "2.2s" and cli_render.duration(125) == "2m05s"
    assert cli_render.duration(3 * 86400 + 7200) == "3d02h"
    assert cli_render.size(1536) == "1.5 KiB"
    assert cli_render.when("2026-12-03T19:00:00+00:00", "Europe/Berlin", now=T0) == "2026-12-03 20:00 (in 1h30m)"


def test_result_text_has_summary_report_warnings_and_error() -> None:
    view = {"entry": "verify", "outcome": "failed", "duration_s": 3.0, "summary": "1 backup damaged",
            "data": {"report": ["x.tar: sha256 mismatch"]}, "warnings": ["slow disk"], "error": "damage found",
            "run_id": "r1"}
    text = cli_render.result_text(view)
    assert text.splitlines()[0] == "verify failed in 3.0s: 1 backup damaged"
    assert "  x.tar: sha256 mismatch" in text and "warning: slow disk" in text and "error: damage found" in text


def test_progress_display_prints_steps_and_warnings_with_or_without_a_bar() -> None:
    for live in (False, True):
        stream = io.StringIO()
        with cli_render.ProgressDisplay(stream, live=live) as display:
            display.event({"event": "started", "run_id": "r1", "entry": "recover"})
            display.event({"event": "progress", "phase": "restore", "done_bytes": 5, "total_bytes": 10})
            display.event({"event": "step", "step": "stop services", "units": "demo-mcp"})
            display.event({"event": "warning", "message": "unit slow to stop"})
        out = stream.getvalue()
        assert "started recover" in out and "stop services" in out and "warning: unit slow to stop" in out


def test_status_shows_why_each_backup_place_is_or_is_not_stale() -> None:
    rows = [{"name": "local", "ok": True, "newest": "x-incremental", "age_s": 10800.0, "rpo_s": 900.0,
             "detail": "the last backup due (backup-incremental at 08:00) was taken"},
            {"name": "nas", "ok": False, "newest": "w-full", "age_s": 30000.0, "rpo_s": 3600.0, "error": "timeout",
             "detail": "lacks x-incremental (3 h old, RPO 1 h)"}]
    lines = cli_render.tiers_text(rows).splitlines()
    assert lines[0].split() == ["PLACE", "STATE", "NEWEST", "AGE", "RPO", "WHY"]
    assert lines[1].split()[:2] == ["local", "ok"] and lines[1].endswith("(backup-incremental at 08:00) was taken")
    assert "STALE (error)" in lines[2] and lines[2].endswith("lacks x-incremental (3 h old, RPO 1 h)")
