"""Where maintd's time goes: one maintd operation on a benchmark dataset under a sampling profiler.

    python bench/profile.py --dataset small --op full            # py-spy (GIL-holding samples) when installed
    python bench/profile.py --dataset small --op nochange --all  # every sample, idle threads' waits included
    python bench/profile.py --dataset mixed --op full --perf     # perf: CPU by process and library (zstd, gpg...)
    python bench/profile.py --dataset small --op restore

Ops: full, nochange (a full first, untimed, then a no-change incremental), changed (the same after a 1% change,
undone afterwards), verify, restore (of a full). The dataset must exist (bench/run or make_datasets.py). Uses
py-spy (`pip install py-spy` in any venv; --py-spy PATH) or falls back to cProfile (main thread only).
Prints the top frames by own samples and by inclusive samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import change  # noqa: E402
import make_datasets  # noqa: E402
from maintd_bench import CHILD, REPO, Maintd  # noqa: E402
from pipelines import Keys  # noqa: E402


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw (collapsed) format: 'frame;frame;... count' per line."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("thread (") and not f.startswith("process ")]
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "own:"]
    out += [f"{n:7d} {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"{n:7d} {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=make_datasets.NAMES, default="small")
    parser.add_argument("--op", choices=("full", "nochange", "changed", "verify", "restore"), default="full")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    parser.add_argument("--all", action="store_true", help="every sample, not only those holding the GIL")
    parser.add_argument("--perf", action="store_true", help="perf record: CPU by process and shared library")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)

    root = args.data.resolve() / args.dataset
    if make_datasets.read_marker(args.data.resolve(), args.dataset) is None:
        parser.error(f"no dataset at {root}: run bench/make_datasets.py first")
    work = Path(tempfile.mkdtemp(prefix="maintd-profile-"))
    keys = Keys.create()
    try:
        tool = Maintd(work, root, keys)
        op, op_args = "backup", ["full"]
        if args.op in ("nochange", "changed", "verify", "restore"):
            full_id = tool.backup("full")["data"]["id"]
            op, op_args = {"nochange": ("backup", ["incremental"]), "changed": ("backup", ["incremental"]),
                           "verify": ("verify", [full_id]),
                           "restore": ("restore", [full_id, str(work / "restored")])}[args.op]
        if args.op == "changed":
            change.apply_change(root, 1)
        child = [sys.executable, str(CHILD), str(tool.settings_path), str(work / "out.json"), op, *op_args]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        try:
            if args.perf:
                data = work / "perf.data"
                subprocess.run(["perf", "record", "-q", "-F", "999", "-o", str(data), "--", *child], env=env,
                               cwd=REPO, check=True, timeout=3600)
                report = subprocess.run(["perf", "report", "-i", str(data), "--sort", "comm,dso", "--stdio"],
                                        capture_output=True, check=True, timeout=600).stdout.decode()
                print("\n".join(line for line in report.splitlines() if line.strip() and not line.startswith("#")))
            elif Path(args.py_spy).exists():
                raw = work / "profile.txt"
                subprocess.run([args.py_spy, "record", "--nolineno", "-r", str(args.rate), "--format", "raw", "-o", str(raw),
                                *([] if args.all else ["--gil"]), "--", *child], env=env, cwd=REPO, check=True,
                               timeout=3600)
                print(summarise(raw, args.top))
            else:
                stats = work / "cprofile.out"
                subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *child[1:]], env=env, cwd=REPO,
                               check=True, timeout=3600)
                import pstats

                pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(args.top)
        finally:
            if args.op == "changed":
                change.revert_change(root)
        print("\n" + (work / "out.json").read_text()[:600])
    finally:
        keys.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
