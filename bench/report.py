"""Renders bench/RESULTS.md from the results dict that run.py collects (pure: results in, Markdown out)."""

from __future__ import annotations

from typing import Any

DATASETS = ("mixed", "small")

ROWS = (
    ("read", "read only: `tar -cf -`, read and discarded (the floor)", True),
    ("existing.backup", "existing pipeline: `tar -czf`, then `gpg --symmetric AES256`, then `sha256sum`", True),
    ("shell.backup", "shell pipeline: `tar | zstd -3 -T0 | gpg --compress-algo none`, hashed on the way", True),
    ("restic.init", "restic init", False),
    ("restic.full", "restic full backup", True),
    ("restic.nochange", "restic second backup, nothing changed", False),
    ("restic.changed", "restic backup after 1% changed", False),
    ("maintd.full", "**maintd full backup**", True),
    ("maintd.nochange", "**maintd incremental, nothing changed**", False),
    ("maintd.changed", "**maintd incremental after 1% changed**", False),
    ("maintd.verify", "**maintd verify (full: decrypt, hash every object and member)**", True),
    ("existing.restore", "restore: existing (`gpg -d` to a file, `tar -xzf`)", True),
    ("shell.restore", "restore: shell (`gpg -d | zstd -d | tar -x`)", True),
    ("restic.restore", "restore: restic (the full snapshot)", True),
    ("maintd.restore", "**restore: maintd (the full backup)**", True),
)

TARGET_FULL_VS_EXISTING = 8.0
TARGET_FULL_VS_SHELL = 0.85
TARGET_RSS_MB = 200.0


def _task(results: dict[str, Any], dataset: str, task: str) -> dict[str, Any] | None:
    entry = results.get("tasks", {}).get(dataset, {}).get(task)
    return entry if entry and entry.get("samples") else None


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "n/a"
    n = len(entry["samples"])
    if n == 1:
        return f"{entry['median']:.2f} (n=1)"
    return f"{entry['median']:.2f} ({entry['min']:.2f}-{entry['max']:.2f}, n={n})"


def _rate(entry: dict[str, Any] | None, show: bool) -> str:
    if entry is None or not show or not entry.get("bytes") or entry["median"] <= 0:
        return "-"
    return f"{entry['bytes'] / 1e6 / entry['median']:.0f}"


def _cpu(entry: dict[str, Any] | None) -> str:
    values = sorted(entry.get("cpu_s") or []) if entry else []
    return f"{values[len(values) // 2]:.1f}" if values else "-"


def cpu_ratio(results: dict[str, Any], dataset: str, top: str, bottom: str) -> float | None:
    """median CPU(top) / median CPU(bottom)."""
    a, b = _task(results, dataset, top), _task(results, dataset, bottom)
    ca, cb = (sorted(e.get("cpu_s") or []) if e else [] for e in (a, b))
    if not ca or not cb or cb[len(cb) // 2] <= 0:
        return None
    return ca[len(ca) // 2] / cb[len(cb) // 2]


def ratio(results: dict[str, Any], dataset: str, top: str, bottom: str) -> float | None:
    """median(top) / median(bottom): how many times faster `bottom` is than `top`."""
    a, b = _task(results, dataset, top), _task(results, dataset, bottom)
    if a is None or b is None or b["median"] <= 0:
        return None
    return a["median"] / b["median"]


def peak_rss(results: dict[str, Any]) -> dict[str, Any]:
    """Over every maintd call, in MB: the largest maintd process peak (VmHWM), the largest helper's (gpg), and the
    largest sampled sum of the whole process tree; with where each happened."""
    best: dict[str, Any] = {}
    for dataset, tasks in results.get("tasks", {}).items():
        for task, entry in tasks.items():
            if not task.startswith("maintd."):
                continue
            for key in ("hwm_self_kb", "helpers_hwm_kb", "tree_peak_kb"):
                values = entry.get(key) or []
                if values and max(values) / 1024 > best.get(key, (0.0, ""))[0]:
                    best[key] = (max(values) / 1024, f"{task} on {dataset}")
    return best


def memory_growth(results: dict[str, Any]) -> list[str]:
    """Operations whose peak (process tree) grows with the number of files, from mixed (20k files) to small (200k):
    MB per 100k files and the file count at which the 200 MB target would be passed."""
    files = {d: results.get("datasets", {}).get(d, {}).get("files") for d in DATASETS}
    if not all(files.values()) or files["small"] == files["mixed"]:
        return []
    out = []
    for task, label, _ in ROWS:
        entries = [_task(results, d, task) for d in DATASETS]
        if not task.startswith("maintd.") or not all(e and e.get("tree_peak_kb") for e in entries):
            continue
        peaks = [max(e["tree_peak_kb"]) / 1024 for e in entries]  # type: ignore[index]
        slope = (peaks[1] - peaks[0]) / (files["small"] - files["mixed"]) * 100_000
        if slope < 5:
            continue
        reach = files["small"] + (TARGET_RSS_MB - peaks[1]) / slope * 100_000
        out.append(f"{label.strip('*')}: {peaks[0]:.0f} MB at {files['mixed']} files, {peaks[1]:.0f} MB at "
                   f"{files['small']}: grows ~{slope:.0f} MB per 100k files, so it would pass {TARGET_RSS_MB:.0f} MB "
                   f"near {reach / 1000:.0f}k files")
    return out


def rss_table(results: dict[str, Any]) -> list[str]:
    lines = ["| operation | " + " | ".join(f"{d}: maintd / gpg / tree (MB)" for d in DATASETS) + " |",
             "|---|" + "---|" * len(DATASETS)]
    for task, label, _ in ROWS:
        if not task.startswith("maintd."):
            continue
        cells = []
        for dataset in DATASETS:
            entry = _task(results, dataset, task)
            if entry is None or not entry.get("hwm_self_kb"):
                cells.append("n/a")
            else:
                cells.append(" / ".join(f"{max(entry[k]) / 1024:.0f}"
                                        for k in ("hwm_self_kb", "helpers_hwm_kb", "tree_peak_kb")))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for task, label in (("restic.full", "restic full backup (restic's own peak)"),
                        ("restic.restore", "restic restore (restic's own peak)")):
        entries = [_task(results, d, task) for d in DATASETS]
        lines.append(f"| {label} | " + " | ".join(
            f"{max(e['hwm_kb']) / 1024:.0f}" if e and e.get("hwm_kb") else "n/a" for e in entries) + " |")
    return lines


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met or None when not measured, the figures)."""
    out: list[tuple[str, bool | None, str]] = []
    for dataset in DATASETS:
        r = ratio(results, dataset, "existing.backup", "maintd.full")
        out.append((f"full backup >= {TARGET_FULL_VS_EXISTING:.0f}x the existing pipeline ({dataset})",
                    None if r is None else r >= TARGET_FULL_VS_EXISTING, "n/a" if r is None else f"{r:.1f}x"))
    for dataset in DATASETS:
        r = ratio(results, dataset, "shell.backup", "maintd.full")
        out.append((f"full backup >= {TARGET_FULL_VS_SHELL:.0%} of the shell pipeline's speed ({dataset})",
                    None if r is None else r >= TARGET_FULL_VS_SHELL, "n/a" if r is None else f"{r:.0%}"))
    r = ratio(results, "small", "restic.nochange", "maintd.nochange")
    m, s = _task(results, "small", "maintd.nochange"), _task(results, "small", "restic.nochange")
    out.append(("no-change incremental over 200k files no slower than restic's second run (small)",
                None if r is None else r >= 1.0,
                f"maintd {_fmt(m and m['median'])} s vs restic {_fmt(s and s['median'])} s"))
    rss = peak_rss(results)
    tree = rss.get("tree_peak_kb")
    own = rss.get("hwm_self_kb")
    out.append((f"peak memory < {TARGET_RSS_MB:.0f} MB (maintd's process tree: Python plus gpg, all operations)",
                None if tree is None else tree[0] < TARGET_RSS_MB,
                "n/a" if tree is None or own is None else
                f"tree {tree[0]:.0f} MB at {tree[1]}; the maintd process alone {own[0]:.0f} MB at {own[1]}"
                + ("; but see the growth with the number of files under Peak memory" if memory_growth(results)
                   else "")))
    return out


def render(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = ["# maintd benchmark results", "",
             f"Written by `bench/run` on {results.get('finished', '?')} (took {results.get('duration_s', 0) / 60:.0f} "
             f"min), maintd at commit {results.get('maintd_commit', '?')}. Re-run: `bench/run` (datasets are generated once under bench/data, git-ignored). Raw samples: "
             "`bench/results.json`.", "", "## Targets", ""]
    for text, met, figures in targets(results):
        verdict = "not measured" if met is None else ("**met**" if met else "**NOT met**")
        lines.append(f"- {text}: {verdict} ({figures})")
    ceiling = [ratio(results, d, "existing.backup", "shell.backup") for d in DATASETS]
    lines.append("- for reference, the shell pipeline itself is " + ", ".join(
        f"{'n/a' if r is None else f'{r:.1f}x'} ({d})" for r, d in zip(ceiling, DATASETS))
        + " the existing pipeline's speed on this run")
    lines += ["", "## Machine", ""]
    for key in ("cpu", "cpus", "ram", "kernel", "python", "filesystem"):
        lines.append(f"- {key}: {machine.get(key, '?')}")
    lines.append("- tools: " + "; ".join(f"{k} {v}" for k, v in machine.get("tools", {}).items()))
    load = machine.get("load_1min")
    if load:
        lines.append(f"- 1-minute load average during the run (sampled every 10 s, this benchmark's own processes "
                     f"included): min {load['min']:.2f}, median {load['median']:.2f}, max {load['max']:.2f} on "
                     f"{machine.get('cpus', '?')} CPUs")
    others = machine.get("others_cpu")
    if others:
        lines.append("- CPUs used on average by other work (other test suites, kernel writeback) while each part "
                     "ran: " + ", ".join(f"{part} {value:.2f}" for part, value in others.items())
                     + f" (of {machine.get('cpus', '?')}; above ~0.3 the figures of that part are slowed)")
    lines += ["", "## Datasets", "",
              "| dataset | files | bytes | gzip -6 output (existing) | zstd -3 output (shell) | restic repo | "
              "maintd full backup |", "|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        info = results.get("datasets", {}).get(dataset)
        if not info:
            continue
        total = info["bytes"]

        def size(task: str, key: str = "output_bytes") -> str:
            entry = _task(results, dataset, task)
            value = entry.get(key) if entry else None
            return "n/a" if not value else f"{value / 1e6:.0f} MB ({value / total:.0%})"

        lines.append(f"| {dataset} | {info['files']} | {total / 1e6:.0f} MB | {size('existing.backup')} | "
                     f"{size('shell.backup')} | {size('restic.full', 'repo_bytes_after_sequence')} | "
                     f"{size('maintd.full')} |")
    lines += ["", "mixed: text files (median 4 KB), half-compressible binaries (32-350 KB), eight large files "
              "(16-72 MiB: random, half-compressible, logs), 20 symlinks. small: 200k files of 1-4 KB, 100 per "
              "directory, three levels. The restic repo size is after the whole sequence (full, no-change, 1% "
              "changed).", "",
              "## Seconds (median, min-max, n), MB/s of the dataset, CPU seconds", "",
              "CPU s: user + system seconds of every process of the step (median), the benchmark's own Python "
              "excluded; for maintd it includes the child's interpreter start and imports (~0.4 s). It moves "
              "less than wall time when other work shares the machine.", "",
              "| task | mixed s | MB/s | CPU s | small s | MB/s | CPU s |", "|---|---|---|---|---|---|---|"]
    for task, label, show_rate in ROWS:
        entries = [_task(results, d, task) for d in DATASETS]
        if all(e is None for e in entries):
            continue
        cells = " | ".join(f"{_cell(e)} | {_rate(e, show_rate)} | {_cpu(e)}" for e in entries)
        lines.append(f"| {label} | {cells} |")
    lines += ["", "## Ratios (medians)", "", "| comparison | mixed | small |", "|---|---|---|"]
    comparisons = (
        ("maintd full: times faster than the existing pipeline (target >= 8)", "existing.backup", "maintd.full", "x"),
        ("maintd full: speed relative to the shell pipeline (target >= 85%)", "shell.backup", "maintd.full", "%"),
        ("maintd full: speed relative to restic full", "restic.full", "maintd.full", "%"),
        ("maintd no-change incremental: restic's second run / maintd's (target >= 1 on small)", "restic.nochange",
         "maintd.nochange", "x"),
        ("maintd 1%-changed incremental: restic / maintd", "restic.changed", "maintd.changed", "x"),
        ("maintd restore: speed relative to the shell pipeline's restore", "shell.restore", "maintd.restore", "%"),
        ("maintd restore: speed relative to restic's restore", "restic.restore", "maintd.restore", "%"),
        ("maintd verify: speed relative to the shell pipeline's backup", "shell.backup", "maintd.verify", "%"),
    )
    for label, top, bottom, unit in comparisons:
        cells = []
        for dataset in DATASETS:
            r = ratio(results, dataset, top, bottom)
            cells.append("n/a" if r is None else (f"{r:.2f}x" if unit == "x" else f"{r:.0%}"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cpu_rows = (("maintd full: CPU seconds relative to the shell pipeline's (1.0 = as efficient)", "maintd.full",
                 "shell.backup"),
                ("maintd full: CPU seconds relative to restic full's", "maintd.full", "restic.full"),
                ("maintd no-change incremental: CPU seconds relative to restic's second run", "maintd.nochange",
                 "restic.nochange"))
    for label, top, bottom in cpu_rows:
        cells = []
        for dataset in DATASETS:
            r = cpu_ratio(results, dataset, top, bottom)
            cells.append("n/a" if r is None else f"{r:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Peak memory (max RSS)", ""] + rss_table(results)
    growth = memory_growth(results)
    if growth:
        lines += ["", "Growing with the number of files (the target says: whatever the dataset size):", ""]
        lines += [f"- {line}" for line in growth]
    lines += ["", "## How it was measured", ""] + [f"- {note}" for note in METHOD]
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes from this run", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


METHOD = (
    "Everything in one run, side by side, on the same datasets, warm page cache (one untimed `tar -cf -` read of "
    "each dataset first), `sync` before every timed step so one step's writeback does not land in the next.",
    "Medians of 3 runs; a single run when the first took over 30 s; 5 or more when under a second (the spread "
    "min-max is shown: timings that short move 5-30% here).",
    "restic and maintd run a sequence per repetition in a fresh repository / backup root: full, no-change, 1% "
    "changed (the same deterministic edit for both: 1% of files patched or appended to, 0.1% deleted, 0.1% added; "
    "undone afterwards), restore of the full. Fast steps are repeated inside a repetition (for the 1% case the "
    "edit is undone and an untimed backup re-syncs the tool before the next edit).",
    "maintd: each operation in its own Python process (`bench/maintd_child.py`), calling the job as a script "
    "would (`maintd.jobs.backup.run_backup`, the verify and restore jobs through a JobContext), not through the "
    "daemon. The time is the job's own; interpreter start and imports (about 0.3-0.5 s, paid once by the daemon) "
    "are excluded and recorded in results.json as import_s. Config: defaults (zstd -3, one thread per CPU, "
    "symmetric AES256), one component (the dataset), Redis, prune and tiers off.",
    "Peak memory: the maintd process's own VmHWM (exact), each helper's VmHWM, and the summed RSS of the whole "
    "process tree sampled every 50 ms from /proc (the target is judged on that sum). Not getrusage/wait4: "
    "ru_maxrss carries the parent's high-water mark over fork and exec, so a child of a big process reports the "
    "parent's size.",
    "Restores go into fresh directories, none right after a mass `rm -rf` (on this VM a restore right after "
    "deleting a large tree is 3-6x slower: discarded blocks); no tool fsyncs the restored files, so the figures "
    "are page-cache speeds. Each restore is checked (file count and bytes) against the dataset.",
    "GnuPG runs with a private GNUPGHOME and a passphrase file in a temp dir; restic gets the same passphrase "
    "through RESTIC_PASSWORD_FILE and a private cache dir; no secret on any command line.",
    "restic from Debian (repository format 2, compression auto). The existing pipeline's gpg compresses with its "
    "default unless it sees compressed input (it reads a .tar.gz file: it does).",
)
