"""The measurements of one dataset, tool by tool. Each suite adds Series to `out` (task name -> Series) and never
deletes anything: every backup and restore goes to a fresh directory under `work`, removed only at the end of
the whole run (restores right after a mass rm -rf are 3-6x slower on this VM)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import change
from maintd_bench import Maintd, Unavailable
from measure import FAST_RUNS, FAST_S, SLOW_S, CpuMeter, Series, measure, sync
from pipelines import (Keys, Restic, check_restored, existing_backup, existing_restore, read_only, shell_backup,
                       shell_restore)


@dataclass
class Context:
    name: str  # dataset name
    root: Path  # dataset root
    counts: tuple[int, int]  # regular files, bytes
    work: Path
    keys: Keys
    runs: int
    out: dict[str, Series]
    say: Callable[[str], None]
    maintd_src: Path | None = None  # the maintd package measured (a snapshot of HEAD); None: the working tree
    notes: list[str] = field(default_factory=list)

    def series(self, task: str) -> Series:
        return self.out.setdefault(task, Series(bytes=self.counts[1]))

    def fresh(self, *parts: str) -> Path:
        path = self.work.joinpath(self.name, *parts)
        if path.exists():
            raise RuntimeError(f"{path} exists: every measurement writes to a fresh directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _prepare(_i: int) -> None:
    sync()


def warm(ctx: Context) -> None:
    """One untimed read of the whole tree: the page cache is warm for every tool alike."""
    read_only(ctx.root)


def baselines(ctx: Context) -> None:
    ctx.out["read"] = measure(lambda i: read_only(ctx.root), runs=ctx.runs, prepare=_prepare, say=ctx.say,
                              label="tar -cf - (read only)")
    ctx.out["read"].bytes = ctx.counts[1]

    archives: list[Path] = []
    series = measure(lambda i: archives.append(existing_backup(ctx.root, ctx.fresh(f"existing-{i}"), ctx.keys)),
                     runs=ctx.runs, prepare=_prepare, say=ctx.say, label="existing pipeline backup")
    series.bytes = ctx.counts[1]
    series.extra["output_bytes"] = archives[-1].stat().st_size
    ctx.out["existing.backup"] = series
    ctx.out["existing.restore"] = _restores(ctx, "existing", lambda dest: existing_restore(archives[-1], dest,
                                                                                          ctx.keys))

    outputs: list[Path] = []

    def shell(i: int) -> None:
        outputs.append(ctx.fresh(f"shell-{i}", "backup.tar.zst.gpg"))
        shell_backup(ctx.root, outputs[-1], ctx.keys)

    series = measure(shell, runs=ctx.runs, prepare=_prepare, say=ctx.say, label="shell pipeline backup")
    series.bytes = ctx.counts[1]
    series.extra["output_bytes"] = outputs[-1].stat().st_size
    ctx.out["shell.backup"] = series
    ctx.out["shell.restore"] = _restores(ctx, "shell", lambda dest: shell_restore(outputs[-1], dest, ctx.keys))


def _restores(ctx: Context, tool: str, restore: Callable[[Path], object],
              where: Callable[[Path], Path] = lambda dest: dest) -> Series:
    dests: list[Path] = []

    def step(i: int) -> None:
        dests.append(ctx.fresh("restore", f"{tool}-{len(dests)}"))
        restore(dests[-1])

    series = measure(step, runs=ctx.runs, prepare=_prepare, say=ctx.say, label=f"{tool} restore")
    series.bytes = ctx.counts[1]
    check_restored(ctx.counts, where(dests[0]), f"{ctx.name}: {tool} restore")
    return series


# ---------------------------------------------------------------- sequences: full, no change, 1% changed, restore


def per_rep(first_s: float, reps: int) -> int:
    """Repetitions of a step inside each repetition of a sequence, so a step under a second gets 5+ samples."""
    return math.ceil(FAST_RUNS / reps) if first_s < FAST_S else 1


class Sequence:
    """Times the steps of one tool's sequence, repeated `reps` times (one when its full backup is over 30 s)."""

    def __init__(self, ctx: Context, tool: str) -> None:
        self.ctx = ctx
        self.tool = tool
        self.reps = ctx.runs

    def time(self, task: str, step: Callable[[], float | None], *, rep: int, repeatable: bool = True,
             between: Callable[[], None] | None = None) -> None:
        """Runs step (returns its own seconds, or None to use the wall clock), again when it was fast."""
        import time as clock

        series = self.ctx.series(f"{self.tool}.{task}")
        count = 1
        j = 0
        while j < count:
            if j and between is not None:
                between()
            sync()
            cpu = CpuMeter.total
            started = clock.perf_counter()
            reported = step()
            elapsed = clock.perf_counter() - started
            series.samples.append(reported if reported is not None else elapsed)
            series.cpu.append(CpuMeter.total - cpu)
            if j == 0 and repeatable:
                count = per_rep(series.samples[0], self.reps)
            self.ctx.say(f"  {self.tool} {task} (rep {rep + 1}/{self.reps}): {series.samples[-1]:.2f} s")
            j += 1

    def after_full(self) -> None:
        full = self.ctx.series(f"{self.tool}.full").samples
        if len(full) == 1 and full[0] > SLOW_S:
            self.reps = 1


def restic(ctx: Context) -> None:
    seq = Sequence(ctx, "restic")
    rep = 0
    while rep < seq.reps:
        repo = Restic(ctx.fresh(f"restic-{rep}"), ctx.keys)
        rss = ctx.series("restic.full").extra.setdefault("hwm_kb", [])
        seq.time("init", lambda: _none(repo.init()), rep=rep, repeatable=False)
        seq.time("full", lambda: _none(rss.append(repo.backup(ctx.root).maxrss_kb)), rep=rep, repeatable=False)
        seq.after_full()
        full_id = repo.latest_snapshot()
        seq.time("nochange", lambda: _none(repo.backup(ctx.root)), rep=rep)
        _changed(ctx, seq, rep, lambda: _none(repo.backup(ctx.root)), lambda: repo.backup(ctx.root))
        restored: list[Path] = []

        def restore() -> None:
            restored.append(ctx.fresh("restore", f"restic-{rep}-{len(restored)}"))
            rss_r.append(repo.restore(full_id, restored[-1]).maxrss_kb)

        rss_r = ctx.series("restic.restore").extra.setdefault("hwm_kb", [])
        seq.time("restore", restore, rep=rep)
        check_restored(ctx.counts, restored[0] / ctx.root.relative_to("/"), f"{ctx.name}: restic restore")
        ctx.series("restic.full").extra["repo_bytes_after_sequence"] = repo.stats()
        rep += 1


def _changed(ctx: Context, seq: Sequence, rep: int, backup: Callable[[], float | None],
             resync: Callable[[], object]) -> None:
    """The 1%-changed backup: apply a change (the same generations for every tool), time the backup, undo it.
    When repeated, an untimed backup after the undo brings the tool back in step with the tree."""
    generation = [0]
    counts: dict[str, int] = {}

    def apply() -> None:
        generation[0] += 1
        counts.update(change.apply_change(ctx.root, generation[0]))

    def between() -> None:
        change.revert_change(ctx.root)
        resync()
        apply()

    apply()
    try:
        seq.time("changed", backup, rep=rep, between=between)
    finally:
        change.revert_change(ctx.root)
    ctx.series(f"{seq.tool}.changed").extra["change"] = counts


def _none(_value: object) -> None:
    return None


def maintd(ctx: Context) -> None:
    seq = Sequence(ctx, "maintd")
    rep = 0
    while rep < seq.reps:
        tool = Maintd(ctx.fresh(f"maintd-{rep}"), ctx.root, ctx.keys,
                      **({"src": ctx.maintd_src} if ctx.maintd_src else {}))
        ids: list[str] = []

        def backup(kind: str, task: str) -> Callable[[], float]:
            def step() -> float:
                report = tool.backup(kind)
                _keep(ctx, f"maintd.{task}", report)
                ids.append(report["data"]["id"])
                return float(report["seconds"])
            return step

        seq.time("full", backup("full", "full"), rep=rep, repeatable=False)
        seq.after_full()
        full_id = ids[0]
        ctx.series("maintd.full").extra.setdefault("output_bytes", tool.store_bytes(full_id))
        seq.time("nochange", backup("incremental", "nochange"), rep=rep)
        _changed(ctx, seq, rep, backup("incremental", "changed"), lambda: tool.backup("incremental"))
        try:
            seq.time("verify", lambda: _call(ctx, "maintd.verify", tool.verify(full_id)), rep=rep)
        except Unavailable as err:
            _unavailable(ctx, "verify", err)
        restored: list[Path] = []

        def restore() -> float:
            restored.append(ctx.fresh("restore", f"maintd-{rep}-{len(restored)}"))
            return _call(ctx, "maintd.restore", tool.restore(full_id, restored[-1]))

        try:
            seq.time("restore", restore, rep=rep)
        except Unavailable as err:
            _unavailable(ctx, "restore", err)
        else:
            check_restored(ctx.counts, restored[0], f"{ctx.name}: maintd restore")
        rep += 1


def _call(ctx: Context, task: str, report: dict) -> float:
    _keep(ctx, task, report)
    return float(report["seconds"])


def _keep(ctx: Context, task: str, report: dict) -> None:
    """Peak RSS and the job's own figures of every maintd call."""
    extra = ctx.series(task).extra
    extra.setdefault("hwm_self_kb", []).append(report["hwm_self_kb"])
    extra.setdefault("helpers_hwm_kb", []).append(report["helpers_hwm_kb"])
    extra.setdefault("tree_peak_kb", []).append(report["tree_peak_kb"])
    extra.setdefault("wall_s", []).append(round(report["wall_s"], 3))
    extra.setdefault("import_s", []).append(report["import_s"])
    data = report.get("data") or {}
    for key in ("stored_files", "stored_bytes", "size", "files"):
        if key in data:
            extra.setdefault(key, []).append(data[key])


def _unavailable(ctx: Context, what: str, err: Exception) -> None:
    note = f"maintd {what}: not measured ({err})"
    if note not in ctx.notes:
        ctx.notes.append(note)
    ctx.out.pop(f"maintd.{what}", None)
    ctx.say(f"  {note}")
