"""Dataset planning and content: which files a dataset has (pure, seeded) and the bytes derived from their seeds.

`plan(name, seed, scale)` lists every file's path, kind, size, seed, mode and mtime; `Content` turns a FileSpec
into bytes (text from a 48 MiB word corpus sliced at seeded offsets, fresh random bytes per file, half-compressible
mixes); `write_tree` writes a plan under a directory with large writes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
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


TEXT_EXT = (".py", ".js", ".json", ".md", ".log", ".txt", ".yaml", ".html")


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
        ext = TEXT_EXT[i % len(TEXT_EXT)]
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
        write_file(path, content.chunks(spec), spec.mode, spec.mtime_ns)


def write_file(path: Path, chunks, mode: int, mtime_ns: int) -> None:
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
