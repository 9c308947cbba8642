"""The "1% changed" edit, reversible: `apply_change(root, generation)` edits 1% of the files in place (a 4 KB block
overwritten in binaries, a line appended to text files), deletes 0.1% and adds as many, after saving what it needs
to undo that in `<root>.change/`; `revert_change(root)` undoes it (contents, sizes, mtimes; inodes and ctimes do
change, as after any real edit). The same generation makes the same change, for every tool alike. To change a
copy instead, copy the tree first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from datagen import SEED, TEXT_EXT, Content, write_file


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
        if path.endswith(TEXT_EXT) or size < 8192:
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
                write_file(path, [saved], item["mode"], item["mtime_ns"])
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
