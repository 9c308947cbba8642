"""Reproducible benchmark datasets and a reversible "1% changed" edit.

    python bench/make_datasets.py [DIR] [--only mixed|small] [--scale F]

*mixed*: ~1 GiB in ~20k files: many small text files, medium binaries half compressible, a few large files
(zstd -3 / gzip -6 shrink it to ~60%). *small*: ~0.5 GiB in 200k files of 1-4 KB in nested dirs.

Planning is pure (`plan(name, seed, scale)` returns every file's path, kind, size and seed); writing derives the
bytes from those seeds, so the same plan gives the same bytes on any machine. A marker `<DIR>/<name>.json`
written last says the dataset of this version is complete: `ensure()` skips it next time.

The plan and the bytes live in datagen.py; the reversible "1% changed" edit in change.py. `ensure()` reverts a
leftover change first, so a killed benchmark never leaves a modified dataset behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from change import change_dir, revert_change
from datagen import CORPUS_BYTES, NAMES, SEED, VERSION, Content, FileSpec, plan, plan_digest, write_tree


def marker_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def read_marker(directory: Path, name: str) -> dict | None:
    try:
        data = json.loads(marker_path(directory, name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure(directory: Path, name: str, *, seed: int | None = None, scale: float = 1.0,
           say=lambda msg: None) -> Path:
    """The dataset's root, generating it when no marker of this version, seed and scale exists."""
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / name
    if change_dir(root).exists():
        say(f"{name}: reverting a leftover 1% change")
        revert_change(root)
    specs = plan(name, seed, scale)
    wanted = {"version": VERSION, "name": name, "seed": seed, "scale": scale, "plan": plan_digest(specs)}
    marker = read_marker(directory, name)
    if marker and all(marker.get(k) == v for k, v in wanted.items()) and root.is_dir():
        return root
    started = time.monotonic()
    marker_path(directory, name).unlink(missing_ok=True)
    staging = directory / f"{name}.tmp"
    for stale in (root, staging):
        if stale.exists():
            shutil.rmtree(stale)
    corpus = max(1 << 20, min(CORPUS_BYTES, int(CORPUS_BYTES * scale * 10)))  # small for tiny test datasets
    write_tree(staging, specs, Content(SEED if seed is None else seed, corpus))
    staging.rename(root)
    files = sum(1 for s in specs if s.kind != "link")
    info = {**wanted, "files": files, "links": len(specs) - files, "bytes": sum(s.size for s in specs),
            "generated_s": round(time.monotonic() - started, 1)}
    tmp = marker_path(directory, name).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    tmp.rename(marker_path(directory, name))
    say(f"{name}: generated {files} files, {info['bytes'] / 2**30:.2f} GiB in {info['generated_s']} s")
    return root


def dataset_info(spec_list: list[FileSpec]) -> dict:
    return {"files": sum(1 for s in spec_list if s.kind != "link"), "bytes": sum(s.size for s in spec_list),
            "by_kind": {k: sum(s.size for s in spec_list if s.kind == k) for k in ("text", "half", "random")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--only", choices=NAMES, action="append")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (tests, quick runs)")
    parser.add_argument("--plan", action="store_true", help="print the planned sizes and exit")
    args = parser.parse_args(argv)
    for name in args.only or NAMES:
        if args.plan:
            print(name, json.dumps(dataset_info(plan(name, scale=args.scale))))
            continue
        ensure(args.directory, name, scale=args.scale, say=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())

