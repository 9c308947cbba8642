"""Tests of the benchmark's own parts (run: /tmp/venv/bin/python -m pytest -q bench/tests). Real files, real
processes, tiny datasets (scale 0.0005: ~100 files)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import change  # noqa: E402
import make_datasets as md  # noqa: E402
import report  # noqa: E402
import suites  # noqa: E402
from measure import CommandFailed, PeakRss, Series, measure, pipeline, run, runs_for  # noqa: E402
from pipelines import Keys, shell_backup, shell_restore, tree_counts  # noqa: E402

SCALE = 0.0005


def test_plans_are_reproducible_and_sized_as_promised() -> None:
    assert md.plan("small", scale=0.01) == md.plan("small", scale=0.01)
    mixed = md.dataset_info(md.plan("mixed"))
    small = md.dataset_info(md.plan("small"))
    assert 19_000 < mixed["files"] < 21_000 and 0.9 * 2**30 < mixed["bytes"] < 1.1 * 2**30
    assert small["files"] == 200_000 and 0.45 * 2**30 < small["bytes"] < 0.55 * 2**30
    assert all(1024 <= s.size <= 4096 for s in md.plan("small", scale=0.01))


def test_generated_bytes_depend_only_on_the_plan(tmp_path: Path) -> None:
    a = md.ensure(tmp_path / "a", "mixed", scale=SCALE)
    b = md.ensure(tmp_path / "b", "mixed", scale=SCALE)
    assert change.tree_digest(a) == change.tree_digest(b)
    assert len(change.list_files(a)) == sum(1 for s in md.plan("mixed", scale=SCALE) if s.kind != "link")


def test_ensure_skips_a_complete_dataset_and_regenerates_a_stale_one(tmp_path: Path) -> None:
    root = md.ensure(tmp_path, "small", scale=SCALE)
    sentinel = root / "sentinel"
    sentinel.write_text("kept")
    md.ensure(tmp_path, "small", scale=SCALE)
    assert sentinel.exists(), "a complete dataset is not rewritten"
    marker = md.marker_path(tmp_path, "small")
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "plan": "other"}))
    md.ensure(tmp_path, "small", scale=SCALE)
    assert not sentinel.exists(), "a marker of another plan means regenerate"


def test_change_edits_one_percent_and_revert_restores_the_tree(tmp_path: Path) -> None:
    root = md.ensure(tmp_path, "small", scale=0.005)  # 1000 files
    before = change.tree_digest(root)
    counts = change.apply_change(root, generation=1)
    assert counts["changed"] == 10 and counts["delete"] == 1 and counts["add"] == 1
    assert change.tree_digest(root) != before
    with pytest.raises(RuntimeError, match="revert the previous change"):
        change.apply_change(root, generation=2)
    change.revert_change(root)
    assert change.tree_digest(root) == before
    assert not change.change_dir(root).exists()


def test_a_leftover_change_is_reverted_by_ensure(tmp_path: Path) -> None:
    root = md.ensure(tmp_path, "mixed", scale=SCALE)
    before = change.tree_digest(root)
    change.apply_change(root, generation=3)
    md.ensure(tmp_path, "mixed", scale=SCALE)
    assert change.tree_digest(root) == before


def test_the_same_generation_makes_the_same_change() -> None:
    files = [f"d/f{i}" for i in range(500)]
    sizes = {f: 20_000 for f in files}
    assert change.plan_change(files, sizes, 7) == change.plan_change(list(reversed(files)), sizes, 7)
    assert change.plan_change(files, sizes, 7) != change.plan_change(files, sizes, 8)


def test_run_count_policy() -> None:
    assert runs_for(45.0, 3) == 1
    assert runs_for(5.0, 3) == 3
    assert runs_for(0.4, 3) == 5
    assert suites.per_rep(0.5, 3) == 2 and suites.per_rep(0.5, 1) == 5 and suites.per_rep(2.0, 3) == 1


def test_measure_repeats_fast_steps_and_takes_reported_seconds() -> None:
    calls: list[int] = []
    series = measure(lambda i: calls.append(i), runs=3)
    assert len(series.samples) == 5 and calls == [0, 1, 2, 3, 4]
    reported = measure(lambda i: 2.0, runs=3)
    assert reported.samples == [2.0, 2.0, 2.0] and reported.median == 2.0


def test_shell_pipeline_round_trip_hashes_what_it_writes(tmp_path: Path) -> None:
    src = md.ensure(tmp_path / "data", "mixed", scale=SCALE)
    keys = Keys.create()
    try:
        out = tmp_path / "b" / "backup.tar.zst.gpg"
        info = shell_backup(src, out, keys)
        assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert oct(keys.passphrase_file.stat().st_mode & 0o777) == "0o600"
        shell_restore(out, tmp_path / "r", keys)
    finally:
        keys.cleanup()
    assert tree_counts(tmp_path / "r") == tree_counts(src)
    assert change.tree_digest(tmp_path / "r", mtimes=False) == change.tree_digest(src, mtimes=False)


def test_a_failing_stage_names_the_command_and_its_stderr(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match=r"tar -cf - -C .*missing.* exited with 2"):
        pipeline([["tar", "-cf", "-", "-C", str(tmp_path / "missing"), "."], ["cat"]])
    with pytest.raises(CommandFailed, match="exited with 3"):
        run([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_peak_rss_sees_the_child_not_its_parent() -> None:
    ballast = bytearray(150 << 20)  # the parent is big; a getrusage-based figure would report this
    code = "x = bytearray(60 << 20); import time; time.sleep(0.6)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    with PeakRss(proc.pid, interval=0.02) as peak:
        proc.wait()
    assert 55 << 10 < peak.top_hwm_kb < 120 << 10
    assert peak.tree_peak_kb >= 55 << 10
    del ballast


def _results(maintd_full: float, nochange: float, tree_mb: float) -> dict:
    def series(median: float, **extra: object) -> dict:
        return Series([median], bytes=10**9, extra=dict(extra)).to_dict()

    tasks = {d: {"existing.backup": series(50.0), "shell.backup": series(5.0), "maintd.full": series(maintd_full),
                 "restic.nochange": series(7.0),
                 "maintd.nochange": series(nochange, hwm_self_kb=[100 << 10], helpers_hwm_kb=[5 << 10],
                                           tree_peak_kb=[int(tree_mb * 1024)])}
             for d in ("mixed", "small")}
    return {"machine": {"cpus": 2, "tools": {}}, "datasets": {}, "tasks": tasks}


def test_report_states_which_targets_are_met() -> None:
    good = report.render(_results(maintd_full=5.5, nochange=3.0, tree_mb=120))
    assert "full backup >= 8x the existing pipeline (small): **met** (9.1x)" in good
    assert "of the shell pipeline's speed (mixed): **met** (91%)" in good
    assert "no slower than restic's second run (small): **met** (maintd 3.00 s vs restic 7.00 s)" in good
    assert "peak memory < 200 MB" in good and "**NOT met**" not in good
    bad = report.render(_results(maintd_full=8.0, nochange=9.0, tree_mb=250))
    assert "(small): **NOT met** (6.2x)" in bad
    assert "restic's second run (small): **NOT met**" in bad
    assert "peak memory < 200 MB (maintd's process tree: Python plus gpg, all operations): **NOT met**" in bad


def test_report_flags_memory_that_grows_with_the_number_of_files() -> None:
    results = _results(maintd_full=5.5, nochange=3.0, tree_mb=120)
    results["datasets"] = {"mixed": {"files": 20_000, "bytes": 10**9}, "small": {"files": 200_000, "bytes": 5 * 10**8}}
    results["tasks"]["mixed"]["maintd.nochange"]["tree_peak_kb"] = [80 << 10]
    growth = report.memory_growth(results)
    assert len(growth) == 1 and "grows ~22 MB per 100k files" in growth[0] and "near 560k files" in growth[0]
    assert "but see the growth with the number of files" in report.render(results)
