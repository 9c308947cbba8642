"""Reproducible benchmark datasets and a reversible "1% changed" edit.

    python bench/make_datasets.py [DIR] [--only mixed|small] [--scale F]

*mixed*: ~1 GiB in ~20k files: many small text files, medium binaries half compressible, a few large files
(zstd -3 / gzip -6 shrink it to ~60%). *small*: ~0.5 GiB in 200k files of 1-4 KB in nested dirs.

Planning is pure (`plan(name, seed, scale)` returns every file's path, kind, size and seed); writing derives the
bytes from those seeds, so the same plan gives the same bytes on any machine. A marker `<DIR>/<name>.json`
written last says the dataset of this version is complete: `ensure()` skips it next time.

`apply_change(root, generation)` edits 1% of the files in place (patches a block or appends), adds and deletes a
few, after saving everything needed to undo it in `<root>.change/`; `revert_change(root)` undoes it (contents,
sizes and mtimes; inodes and ctimes do change, as after any real edit). `ensure()` reverts a leftover change
first, so a killed benchmark never leaves a modified dataset behind.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

VERSION = 2
SEED = 20240601
NAMES = ("mixed", "small")
BASE_MTIME_NS = 1_700_000_000 * 10**9  # 2023-11-14: files look old; edits get "now"
CHUNK = 4 << 20
CORPUS_BYTES = 48 << 20

# ---------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative, "/" separated
    kind: str  # text | half | random | link
    size: int  # bytes (link: 0)
    seed: int
    mode: int = 0o644
    mtime_ns: int = BASE_MTIME_NS


_TEXT_EXT = (".py", ".js", ".json", ".md", ".log", ".txt", ".yaml", ".html")


def _text_size(rng: random.Random) -> int:
    return max(200, min(64 << 10, int(rng.lognormvariate(8.3, 1.0))))  # median ~4 KB


def plan_mixed(seed: int = SEED, scale: float = 1.0) -> list[FileSpec]:
    """~20k files, ~1 GiB: 17k text files (median 4 KB), ~2.9k half-compressible binaries (32-350 KB),
    8 large files (random, half-compressible and text, 16-72 MiB), 20 symlinks."""
    rng = random.Random(seed)
    out: list[FileSpec] = []

    def mtime() -> int:
        return BASE_MTIME_NS + rng.randrange(0, 300 * 86400) * 10**9 + rng.randrange(10**9)

    for i in range(max(1, round(17_000 * scale))):
        ext = _TEXT_EXT[i % len(_TEXT_EXT)]
        mode = 0o755 if ext == ".py" and i % 7 == 0 else 0o644
        out.append(FileSpec(f"src/m{i // 1000:02d}/p{i // 40:03d}/file{i:05d}{ext}", "text", _text_size(rng),
                            rng.getrandbits(63), mode, mtime()))
    for i in range(max(1, round(2_900 * scale))):
        size = rng.randrange(32 << 10, 350 << 10)
        out.append(FileSpec(f"blobs/b{i // 100:02d}/obj{i:04d}.bin", "half", size, rng.getrandbits(63),
                            mtime_ns=mtime()))
    large = (("media/video.mp4", "random", 72), ("media/archive.tar.xz", "random", 56),
             ("db/store.sqlite", "half", 64), ("db/events.db", "half", 48), ("db/cache.bin", "half", 40),
             ("logs/app.log", "text", 32), ("logs/access.log", "text", 24), ("db/wal.bin", "half", 16))
    for path, kind, mib in large:
        out.append(FileSpec(path, kind, max(4096, int((mib << 20) * scale)), rng.getrandbits(63),
                            mtime_ns=mtime()))
    for i in range(20):
        out.append(FileSpec(f"links/link{i:02d}", "link", 0, i, 0o777, mtime()))
    return out


def plan_small(seed: int = SEED + 1, scale: float = 1.0) -> list[FileSpec]:
    """200k files of 1-4 KB, 100 per directory in a three-level tree (10 x 10 x 20 leaves); 70% text, 20%
    half-compressible, 10% random."""
    rng = random.Random(seed)
    out: list[FileSpec] = []
    for i in range(max(1, round(200_000 * scale))):
        leaf = i // 100
        roll = rng.random()
        kind = "text" if roll < 0.70 else "half" if roll < 0.90 else "random"
        out.append(FileSpec(f"d{leaf // 200:02d}/d{leaf // 20 % 10:02d}/d{leaf % 20:02d}/f{i:06d}",
                            kind, rng.randrange(1024, 4097), rng.getrandbits(63),
                            mtime_ns=BASE_MTIME_NS + rng.randrange(0, 300 * 86400) * 10**9))
    return out


def plan(name: str, seed: int | None = None, scale: float = 1.0) -> list[FileSpec]:
    if name == "mixed":
        return plan_mixed(SEED if seed is None else seed, scale)
    if name == "small":
        return plan_small(SEED + 1 if seed is None else seed, scale)
    raise ValueError(f"unknown dataset {name!r} (have: {', '.join(NAMES)})")


# ---------------------------------------------------------------- content


class Content:
    """Derives file bytes from a seed. Text comes from a 48 MiB word corpus built once per process (Zipf-like
    vocabulary, log and code shaped lines) sliced at a seeded offset behind a unique header line; random bytes
    are fresh per file (no accidental duplicates for restic's dedup or zstd's window); "half" interleaves 8 KB
    random blocks with 8 KB of structured records (compress to ~10%): half compressible."""

    def __init__(self, seed: int = SEED, corpus_bytes: int = CORPUS_BYTES) -> None:
        self._seed = seed
        self._corpus_bytes = corpus_bytes
        self._corpus: bytes | None = None

    @property
    def corpus(self) -> bytes:
        if self._corpus is None:
            self._corpus = _make_corpus(self._seed, self._corpus_bytes)
        return self._corpus

    def text(self, rng: random.Random, size: int, header: bytes) -> bytes:
        corpus = self.corpus
        out = bytearray(header[:size])
        while len(out) < size:
            take = min(size - len(out), 256 << 10)
            start = rng.randrange(0, len(corpus) - take)
            out += corpus[start:start + take]
        return bytes(out)

    def chunks(self, spec: FileSpec):
        """Yields the file's bytes in chunks of at most CHUNK."""
        rng = random.Random(spec.seed)
        header = f"# {spec.path} {spec.seed:x}\n".encode()
        done = 0
        while done < spec.size:
            size = min(CHUNK, spec.size - done)
            if spec.kind == "random":
                yield rng.randbytes(size)
            elif spec.kind == "text":
                yield self.text(rng, size, header if done == 0 else b"")
            else:
                yield self._half(rng, size, header if done == 0 else b"")
            done += size

    def _half(self, rng: random.Random, size: int, header: bytes) -> bytes:
        out = bytearray(header[:size])
        block = 8192
        while len(out) < size:
            take = min(block, size - len(out))
            if (len(out) // block) % 2:
                wide = bytearray(take)  # records: text spread with zero bytes, like UTF-32 or int arrays
                wide[::4] = self.text(rng, len(range(0, take, 4)), b"")
                out += wide
            else:
                out += rng.randbytes(take)
        return bytes(out)


def _make_corpus(seed: int, size: int) -> bytes:
    rng = random.Random(seed ^ 0x5EED)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocab = ["".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 11)))
             for _ in range(20_000)]
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    levels = ("INFO", "DEBUG", "WARN", "ERROR")
    indents = ("", "    ", "        ", "            ")
    parts: list[str] = []
    total = 0
    while total < size:
        words = rng.choices(vocab, cum_weights=cum, k=8000)
        lines = []
        pos = 0
        while pos < len(words):
            bits = rng.getrandbits(64)
            n = 4 + (bits & 15) % 13
            chunk = " ".join(words[pos:pos + n])
            shape = (bits >> 4) % 10
            if shape < 4:
                lines.append(f"2024-{(bits >> 8) % 12 + 1:02d}-{(bits >> 12) % 28 + 1:02d}T{(bits >> 17) % 24:02d}:"
                             f"{(bits >> 22) % 60:02d}:{(bits >> 28) % 60:02d}.{(bits >> 34) % 1000000:06d}Z "
                             f"{levels[(bits >> 54) % 4]} {chunk} id={(bits >> 20) & 0xFFFFFFFF:08x} "
                             f"n={(bits >> 40) % 99999}")
            elif shape < 7:
                lines.append(f"{indents[(bits >> 8) % 4]}{words[pos]}_{(bits >> 12) % 1000} = {chunk}")
            else:
                lines.append(chunk.capitalize() + ".")
            pos += n
        block = "\n".join(lines) + "\n"
        parts.append(block)
        total += len(block)
    return "".join(parts).encode()[:size]


# ---------------------------------------------------------------- writing


def write_tree(root: Path, specs: list[FileSpec], content: Content) -> None:
    made: set[str] = set()
    for spec in specs:
        path = root / spec.path
        parent = spec.path.rpartition("/")[0]
        if parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        if spec.kind == "link":
            path.symlink_to(f"../src/m00/p{spec.seed:03d}")
            os.utime(path, ns=(spec.mtime_ns, spec.mtime_ns), follow_symlinks=False)
            continue
        _write_file(path, content.chunks(spec), spec.mode, spec.mtime_ns)


def _write_file(path: Path, chunks, mode: int, mtime_ns: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def plan_digest(specs: list[FileSpec]) -> str:
    """Changes whenever the plan (or the content code's version) does: the marker records it."""
    digest = hashlib.sha256(f"v{VERSION}".encode())
    for s in specs:
        digest.update(f"{s.path}\0{s.kind}\0{s.size}\0{s.seed}\0{s.mode}\0{s.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


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


# ---------------------------------------------------------------- the 1% change


@dataclass(frozen=True)
class Edit:
    op: str  # patch | append | delete | add
    path: str
    offset: int = 0
    length: int = 0
    seed: int = 0


def plan_change(files: list[str], sizes: dict[str, int], generation: int, fraction: float = 0.01) -> list[Edit]:
    """Pure: which files change. `fraction` of the files are edited (binaries get a 4 KB block overwritten at a
    seeded offset, text files get a line appended), a tenth of that number is deleted and as many added."""
    rng = random.Random(f"change-{generation}")
    ordered = sorted(files)
    edited = max(1, round(len(ordered) * fraction))
    few = max(1, edited // 10)
    chosen = rng.sample(ordered, min(len(ordered), edited + few))
    edits: list[Edit] = []
    for path in chosen[:edited]:
        size = sizes[path]
        if path.endswith(_TEXT_EXT) or size < 8192:
            edits.append(Edit("append", path, size, rng.randint(40, 400), rng.getrandbits(63)))
        else:
            offset = rng.randrange(0, size - 4096) // 4096 * 4096
            edits.append(Edit("patch", path, offset, 4096, rng.getrandbits(63)))
    edits += [Edit("delete", path) for path in chosen[edited:]]
    edits += [Edit("add", f"{ordered[rng.randrange(len(ordered))].rpartition('/')[0]}/new-g{generation}-{i}.txt",
                   0, rng.randint(1024, 16384), rng.getrandbits(63)) for i in range(few)]
    return edits


def change_dir(root: Path) -> Path:
    return root.parent / f"{root.name}.change"


def list_files(root: Path) -> dict[str, int]:
    """Relative path -> size of every regular file under root."""
    out: dict[str, int] = {}
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                out[os.path.relpath(entry.path, root)] = entry.stat(follow_symlinks=False).st_size
    return out


def apply_change(root: Path, generation: int = 1, fraction: float = 0.01) -> dict[str, int]:
    """Edit `fraction` of root's files in place (mtime = now). Everything needed to undo it is saved first in
    `<root>.change/journal.json`; a second apply before a revert is refused."""
    stash = change_dir(root)
    if stash.exists():
        raise RuntimeError(f"{stash} exists: revert the previous change first")
    sizes = list_files(root)
    edits = plan_change(list(sizes), sizes, generation, fraction)
    journal = []
    for edit in edits:
        path = root / edit.path
        if edit.op == "add":
            journal.append({"op": "add", "path": edit.path})
            continue
        st = path.stat()
        saved = b""
        if edit.op == "patch":
            with path.open("rb") as handle:
                handle.seek(edit.offset)
                saved = handle.read(edit.length)
        elif edit.op == "delete":
            saved = path.read_bytes()
        journal.append({"op": edit.op, "path": edit.path, "offset": edit.offset, "size": st.st_size,
                        "mode": st.st_mode & 0o7777, "mtime_ns": st.st_mtime_ns,
                        "saved": base64.b64encode(saved).decode()})
    tmp = stash.with_name(stash.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "journal.json").write_text(json.dumps(journal))
    tmp.rename(stash)  # from here on, revert_change undoes whatever part of the edits was done
    content = Content(SEED + generation, corpus_bytes=1 << 20)
    for edit in edits:
        path = root / edit.path
        rng = random.Random(edit.seed)
        if edit.op == "patch":
            with path.open("r+b") as handle:
                handle.seek(edit.offset)
                handle.write(rng.randbytes(edit.length))
        elif edit.op == "append":
            with path.open("ab") as handle:
                handle.write(content.text(rng, edit.length, f"# edit g{generation}\n".encode()))
        elif edit.op == "delete":
            path.unlink()
        else:
            path.write_bytes(content.text(rng, edit.length, f"# new {edit.path}\n".encode()))
    counts = {op: sum(1 for e in edits if e.op == op) for op in ("patch", "append", "delete", "add")}
    counts["changed"] = counts["patch"] + counts["append"]
    return counts


def revert_change(root: Path) -> None:
    """Undo apply_change (idempotent: safe to run again after a crash part way)."""
    stash = change_dir(root)
    journal = json.loads((stash / "journal.json").read_text())
    for item in journal:
        path = root / item["path"]
        if item["op"] == "add":
            path.unlink(missing_ok=True)
            continue
        saved = base64.b64decode(item["saved"])
        if item["op"] == "delete":
            if not path.exists():
                _write_file(path, [saved], item["mode"], item["mtime_ns"])
            continue
        with path.open("r+b") as handle:
            if item["op"] == "patch":
                handle.seek(item["offset"])
                handle.write(saved)
            handle.truncate(item["size"])
        os.utime(path, ns=(item["mtime_ns"], item["mtime_ns"]))
    shutil.rmtree(stash)


def tree_digest(root: Path, *, mtimes: bool = True) -> str:
    """sha256 over sorted (path, mode, mtime_ns, content) of the regular files: equal trees, equal digests.
    mtimes=False leaves mtimes out (tar keeps whole seconds only)."""
    digest = hashlib.sha256()
    for rel in sorted(list_files(root)):
        path = root / rel
        st = path.stat()
        digest.update(f"{rel}\0{st.st_mode & 0o7777}\0{st.st_mtime_ns if mtimes else 0}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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


__all__ = ["FileSpec", "Edit", "plan", "plan_mixed", "plan_small", "plan_change", "ensure", "apply_change",
           "revert_change", "list_files", "tree_digest", "dataset_info", "Content"]
