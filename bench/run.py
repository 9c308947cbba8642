"""The maintd benchmark: maintd's backup, incrementals, verify and restore side by side with today's pipeline,
the streamed shell pipeline and restic, on the *mixed* and *small* datasets, in one run. Writes
bench/results.json (raw samples) and bench/RESULTS.md.

    bench/run [--runs 3] [--datasets mixed,small] [--suites baselines,restic,maintd] [--scale 1.0] [--keep]

Use the `bench/run` wrapper: it installs restic from Debian when missing (as root) and picks the venv's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import change  # noqa: E402
import make_datasets  # noqa: E402
import report  # noqa: E402
import suites  # noqa: E402
from measure import pipeline, run, sync  # noqa: E402
from pipelines import Keys, tool_version, tree_counts  # noqa: E402

SUITES = ("baselines", "restic", "maintd")


def machine_info(work: Path) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    ram = next((line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")), "0")
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "?")
    try:
        fs = run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(work)], timeout=10).stdout.decode().strip()
    except Exception:  # noqa: BLE001 - informative only
        fs = "?"
    tools = {
        "tar": tool_version(["tar", "--version"]).replace("tar (GNU tar) ", "GNU "),
        "gzip": tool_version(["gzip", "--version"]).replace("gzip ", ""),
        "zstd": tool_version(["zstd", "--version"]).split(",")[0].replace("*** Zstandard CLI (64-bit) ", ""),
        "gpg": tool_version(["gpg", "--version"]).replace("gpg (GnuPG) ", ""),
        "restic": tool_version(["restic", "version"]).replace("restic ", "").split(" compiled")[0],
        "sha256sum": tool_version(["sha256sum", "--version"]).split()[-1],
    }
    for module in ("zstandard", "gnupg"):
        try:
            tools[f"python-{module}"] = getattr(__import__(module), "__version__", "?")
        except ImportError:
            tools[f"python-{module}"] = "missing"
    return {"cpu": model, "cpus": os.cpu_count(), "ram": f"{int(ram) / 2**20:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version() + f" ({sys.executable})",
            "filesystem": fs, "tools": tools}


class LoadWatch:
    """Samples the 1-minute load average every 10 s: other work on the machine moves the figures."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="loadavg")
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(10):
                return

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        ordered = sorted(self.samples)
        return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}

    def stop(self) -> None:
        self._stop.set()


def snapshot_maintd(work: Path) -> tuple[Path, str]:
    """The committed maintd (git HEAD) exported under work: the benchmark measures a fixed version, not a
    working tree that other engineers edit while it runs. Returns its directory and the commit."""
    repo = HERE.parent
    commit = run(["git", "-C", str(repo), "rev-parse", "HEAD"], timeout=30).stdout.decode().strip()
    dest = work / "maintd-src"
    dest.mkdir(parents=True)
    pipeline([["git", "-C", str(repo), "archive", "--format=tar", commit, "maintd"], ["tar", "-xf", "-", "-C", str(dest)]])
    return dest, commit


class OthersCpu:
    """How much CPU everything else on the machine used: busy time from /proc/stat minus this benchmark's own
    (its Python and every child it reaped), per second of wall time, i.e. the average number of CPUs taken by
    other work (other engineers' test suites; kernel writeback of our own restores counts too)."""

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        mine = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
        return time.monotonic(), busy, mine

    def since_last(self) -> float:
        """Average CPUs used by other work since the previous call."""
        now = self._now()
        wall = now[0] - self._last[0]
        others = (now[1] - self._last[1]) - (now[2] - self._last[2])
        self._last = now
        return round(max(0.0, others) / wall, 2) if wall > 0 else 0.0


def wait_quiet(minutes: float, say, threshold: float = 0.25, window_s: float = 30.0) -> float:
    """Waits (up to `minutes`) until other work used under `threshold` CPUs for two windows in a row; returns
    the last reading. A shared machine: better figures when the other test suites pause."""
    meter = OthersCpu()
    deadline = time.monotonic() + minutes * 60
    quiet = 0
    reading = 0.0
    last_said = 0.0
    while time.monotonic() < deadline:
        time.sleep(window_s)
        reading = meter.since_last()
        quiet = quiet + 1 if reading < threshold else 0
        if quiet >= 2:
            say(f"machine quiet (other work {reading:.2f} CPUs): starting")
            return reading
        if time.monotonic() - last_said > 300:
            say(f"waiting for a quiet machine: other work uses {reading:.2f} CPUs")
            last_said = time.monotonic()
    say(f"still busy after {minutes:.0f} min (other work {reading:.2f} CPUs): measuring anyway")
    return reading


def prepare_work(work: Path, say) -> None:
    """A clean work dir. Leftovers of an earlier run are removed now, then synced: the mass delete is the
    first thing, so it is long past when the restores are timed."""
    if work.exists():
        say(f"removing the previous run's {work}")
        shutil.rmtree(work)
        sync()
    work.mkdir(parents=True)


def save(results: dict[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(report.render(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where the datasets live (generated once)")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="backups and restores (emptied first)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (1 over 30 s, 5+ under 1 s)")
    parser.add_argument("--datasets", default="mixed,small")
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor (quick trial runs)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (backups, restores) afterwards")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="MINUTES",
                        help="first wait up to MINUTES for other work to pause (under 0.25 CPUs for a minute)")
    parser.add_argument("--worktree", action="store_true",
                        help="measure the maintd of the working tree as it is, not a snapshot of git HEAD")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    chosen = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(datasets) - set(make_datasets.NAMES)) + sorted(set(chosen) - set(SUITES))
    if unknown:
        parser.error(f"unknown dataset or suite: {', '.join(unknown)}")

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet, say)
    started = time.monotonic()
    work = args.work.resolve()
    prepare_work(work, say)
    results: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "runs": args.runs, "scale": args.scale, "suites": chosen,
                               "machine": machine_info(work), "datasets": {}, "tasks": {}, "notes": []}
    if args.worktree:
        maintd_src, commit = None, "working tree"
    else:
        maintd_src, commit = snapshot_maintd(work)
    results["maintd_commit"] = commit
    say(f"measuring maintd at {commit}")
    if args.scale != 1.0:
        results["notes"].append(f"datasets scaled by {args.scale}: a trial run, not the reference figures")
    keys = Keys.create()
    load = LoadWatch()
    others = OthersCpu()
    results["machine"]["others_cpu"] = {}
    try:
        for name in datasets:
            root = make_datasets.ensure(args.data.resolve(), name, scale=args.scale, say=say)
            counts = tree_counts(root)
            results["datasets"][name] = {"files": counts[0], "bytes": counts[1], "path": str(root)}
            say(f"{name}: {counts[0]} files, {counts[1] / 1e6:.0f} MB")
            out: dict[str, Any] = {}
            ctx = suites.Context(name, root, counts, work, keys, args.runs, out, say, maintd_src)
            suites.warm(ctx)
            for suite in chosen:
                say(f"{name}: {suite}")
                others.since_last()
                {"baselines": suites.baselines, "restic": suites.restic, "maintd": suites.maintd}[suite](ctx)
                results["machine"]["others_cpu"][f"{name}: {suite}"] = others.since_last()
                results["tasks"][name] = {task: series.to_dict() for task, series in out.items()}
                results["notes"].extend(n for n in ctx.notes if n not in results["notes"])
                results["machine"]["load_1min"] = load.summary()
                save(results, args.json, args.results)
    finally:
        load.stop()
        keys.cleanup()
        for name in datasets:
            root = args.data.resolve() / name
            if change.change_dir(root).exists():
                change.revert_change(root)
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - started)
    save(results, args.json, args.results)
    say(f"wrote {args.results} and {args.json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
