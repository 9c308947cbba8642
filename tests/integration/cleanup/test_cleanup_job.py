"""The cleanup job on real trees: ages, kinds, symlinks out of the root, dry run, a root that must survive."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

from maintd.cleanup import tree
from maintd.cleanup.plan import needs_subtree, plan
from maintd.config import CleanupRule, Settings
from maintd.jobs import cleanup
from tests.integration.cleanup.conftest import NOW

DAY = 86400.0


def age(path: Path, seconds: float) -> Path:
    """Set path's mtime (the link itself for a symlink) to `seconds` before the test's clock."""
    moment = NOW.timestamp() - seconds
    os.utime(path, (moment, moment), follow_symlinks=False)
    return path


def make_file(path: Path, seconds_old: float, content: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return age(path, seconds_old)


def rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"cleanup": {"rules": list(rules)}}


def run(make_ctx: Callable, settings: Settings, dry_run: bool = False):
    ctx = make_ctx(settings, dry_run=dry_run)
    return ctx, cleanup.run(ctx, cleanup.parse_args({"dry_run": dry_run}))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Precious old files outside every cleanup root."""
    precious = tmp_path / "outside"
    make_file(precious / "cctelegram-precious.txt", 30 * DAY, "keep me")
    make_file(precious / "deep" / "a.old", 30 * DAY, "keep me too")
    age(precious / "deep", 30 * DAY)
    age(precious, 30 * DAY)
    return precious


def test_symlinks_out_of_the_root_are_never_followed(
        tmp_path: Path, outside: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    (root / "cctelegram-link-to-dir").symlink_to(outside)
    (root / "cctelegram-link-to-file").symlink_to(outside / "cctelegram-precious.txt")
    session = root / "cctelegram-session"
    make_file(session / "state.json", 3 * DAY)
    (session / "escape").symlink_to(outside / "deep")
    for link in (root / "cctelegram-link-to-dir", root / "cctelegram-link-to-file", session / "escape"):
        age(link, 3 * DAY)
    age(session, 3 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["cctelegram*"], "min_age": "1d", "kind": "both"},
                            {"root": str(root), "patterns": ["**/*.old"], "min_age": 0, "recursive": True}))
    _, result = run(make_ctx, config)
    assert sorted(os.listdir(root)) == []  # the links themselves and the session dir are gone ...
    assert (outside / "cctelegram-precious.txt").read_text() == "keep me"  # ... their targets are not
    assert (outside / "deep" / "a.old").read_text() == "keep me too"
    assert result.data["files"] == 4 and result.data["dirs"] == 1  # 2 links + state.json + escape link
    assert root.is_dir()


def test_symlinked_directory_is_not_entered_by_a_recursive_rule(
        tmp_path: Path, outside: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "logs"
    make_file(root / "app" / "x.old", 10 * DAY)
    (root / "app" / "elsewhere").symlink_to(outside / "deep")
    config = settings(rules({"root": str(root), "patterns": ["*.old"], "min_age": "7d", "recursive": True}))
    _, result = run(make_ctx, config)
    assert not (root / "app" / "x.old").exists()
    assert (outside / "deep" / "a.old").exists()
    assert (root / "app" / "elsewhere").is_symlink()  # "elsewhere" does not match *.old: kept
    assert result.data["report"] == [f"removed {root}/app/x.old (file, 1 B)"]


def test_files_younger_than_the_threshold_are_kept(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "logs"
    old = make_file(root / "a.old", 8 * DAY, "12345")
    young = make_file(root / "b.old", 6 * DAY)
    edge = make_file(root / "c.old", 7 * DAY - 1)
    other = make_file(root / "d.log", 30 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["*.old"], "min_age": "7d"}))
    _, result = run(make_ctx, config)
    assert not old.exists() and young.exists() and edge.exists() and other.exists()
    assert (result.data["files"], result.data["dirs"], result.data["bytes"]) == (1, 0, 5)
    assert result.summary == "removed 1 file(s), 0 dir(s), 5 B (1 rule(s))"


def test_a_directory_with_recent_content_is_kept_whatever_its_own_age(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "tmp"
    make_file(root / "cctelegram-busy" / "sub" / "fresh", 60)
    make_file(root / "cctelegram-idle" / "sub" / "stale", 5 * DAY, "abc")
    for d in ("cctelegram-busy/sub", "cctelegram-busy", "cctelegram-idle/sub", "cctelegram-idle"):
        age(root / d, 5 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["cctelegram*"], "min_age": "1d", "kind": "dirs"}))
    _, result = run(make_ctx, config)
    assert (root / "cctelegram-busy" / "sub" / "fresh").exists()
    assert not (root / "cctelegram-idle").exists()
    assert (result.data["files"], result.data["dirs"], result.data["bytes"]) == (1, 2, 3)
    assert result.data["report"] == [f"removed {root}/cctelegram-idle/ (dir: 1 file(s), 3 B)"]


def test_dry_run_lists_and_removes_nothing(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "tmp"
    make_file(root / "cctelegram-1", 2 * DAY, "aa")
    make_file(root / "cctelegram-2" / "f", 2 * DAY, "bbb")
    age(root / "cctelegram-2", 2 * DAY)
    make_file(root / "unrelated", 2 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["cctelegram*"], "min_age": "1d", "kind": "both"}))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    _, result = run(make_ctx, config, dry_run=True)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert result.data["dry_run"] is True
    assert result.data["report"] == [f"would remove {root}/cctelegram-1 (file, 2 B)",
                                     f"would remove {root}/cctelegram-2/ (dir: 1 file(s), 3 B)"]
    assert result.summary.startswith("would remove 2 file(s), 1 dir(s), 5 B")


def test_the_root_itself_is_never_removed(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "scratch"
    make_file(root / "a" / "b" / "c", 2 * DAY)
    make_file(root / "top", 2 * DAY)
    for d in ("a/b", "a"):
        age(root / d, 2 * DAY)
    age(root, 2 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["**", "*"], "min_age": 0, "kind": "both",
                             "recursive": True}))
    _, result = run(make_ctx, config)
    assert root.is_dir() and list(root.iterdir()) == []
    assert (result.data["files"], result.data["dirs"]) == (2, 2)


def test_missing_root_is_a_warning_and_other_rules_still_run(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "logs"
    make_file(root / "a.old", 8 * DAY)
    config = settings(rules({"root": str(tmp_path / "absent"), "patterns": ["*"]},
                            {"root": str(root), "patterns": ["*.old"], "min_age": "7d"}))
    ctx, result = run(make_ctx, config)
    assert ctx.warnings == [f"cleanup root {tmp_path / 'absent'} does not exist; rule skipped"]
    assert not (root / "a.old").exists() and result.data["files"] == 1
    assert result.data["rules"][0]["problems"] == 1


def test_a_file_that_cannot_be_removed_is_a_warning_and_the_rest_goes_on(
        settings: Callable[..., Settings], make_ctx: Callable) -> None:
    # Permission checks follow the effective uid: drop it to nobody for the run, in a world-traversable tree
    # (pytest's tmp dirs are root-only), with one root-owned directory nobody may not write into.
    base = Path(tempfile.mkdtemp(prefix="maintd-cleanup-test-"))
    try:
        base.chmod(0o755)
        root = base / "logs"
        make_file(root / "a.old", 8 * DAY)
        make_file(root / "locked" / "b.old", 8 * DAY)
        make_file(root / "z" / "c.old", 8 * DAY)
        for path in (root, root / "a.old", root / "z", root / "z" / "c.old"):
            os.chown(path, 65534, 65534)
        config = settings(rules({"root": str(root), "patterns": ["*.old"], "min_age": "7d", "recursive": True}))
        ctx = make_ctx(config)
        os.seteuid(65534)
        try:
            result = cleanup.run(ctx, {"dry_run": False})
        finally:
            os.seteuid(0)
        assert not (root / "a.old").exists() and not (root / "z" / "c.old").exists()
        assert (root / "locked" / "b.old").exists()
        assert ctx.warnings == [f"cannot remove {root}/locked/b.old: Permission denied"]
        assert result.data["files"] == 2
    finally:
        shutil.rmtree(base)


def test_a_directory_swapped_for_a_symlink_after_the_scan_is_refused(
        tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "logs"
    make_file(root / "sub" / "a.old", 8 * DAY)
    rule = CleanupRule(root=root, patterns=("*.old",), min_age=0, recursive=True)
    fd = tree.open_root(str(root))
    try:
        scanned = tree.scan(fd, str(root), descend=lambda rel: needs_subtree(rule, rel), emit_nested=True)
        (deletion,) = plan(rule, scanned.entries, NOW.timestamp())
        shutil.rmtree(root / "sub")
        (root / "sub").symlink_to(outside / "deep")  # an attacker's swap: sub/a.old now names outside/deep/a.old
        with pytest.raises(OSError) as refused:
            tree.remove(fd, deletion)
    finally:
        os.close(fd)
    assert refused.value.errno in (40, 20)  # ELOOP (O_NOFOLLOW) or ENOTDIR
    assert (outside / "deep" / "a.old").read_text() == "keep me too"


def test_a_file_touched_after_the_scan_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    target = make_file(root / "a.old", 8 * DAY)
    rule = CleanupRule(root=root, patterns=("*.old",), min_age=DAY)
    fd = tree.open_root(str(root))
    try:
        scanned = tree.scan(fd, str(root), descend=lambda rel: needs_subtree(rule, rel), emit_nested=False)
        (deletion,) = plan(rule, scanned.entries, NOW.timestamp())
        target.write_text("appended by a writer")
        with pytest.raises(tree.Changed):
            tree.remove(fd, deletion)
    finally:
        os.close(fd)
    assert target.exists()


def test_fifos_are_files_and_devices_are_never_touched(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "run"
    root.mkdir()
    os.mkfifo(root / "cctelegram.fifo")
    age(root / "cctelegram.fifo", 2 * DAY)
    os.mknod(root / "cctelegram.null", 0o600 | 0o020000, os.makedev(1, 3))
    age(root / "cctelegram.null", 2 * DAY)
    config = settings(rules({"root": str(root), "patterns": ["cctelegram*"], "min_age": "1d", "kind": "both"}))
    _, result = run(make_ctx, config)
    assert sorted(os.listdir(root)) == ["cctelegram.null"]
    assert result.data["files"] == 1


def test_bad_pattern_skips_its_rule_with_a_warning(
        tmp_path: Path, settings: Callable[..., Settings], make_ctx: Callable) -> None:
    root = tmp_path / "logs"
    make_file(root / "a.old", 8 * DAY)
    ctx, result = run(make_ctx, settings(rules({"root": str(root), "patterns": ["[z-a].old"]})))
    assert (root / "a.old").exists()
    assert ctx.warnings[0].startswith(f"cleanup rule {root}: bad glob pattern '[z-a].old'")


def test_no_rules_reports_so(settings: Callable[..., Settings], make_ctx: Callable) -> None:
    _, result = run(make_ctx, settings())
    assert result.data["report"] == ["no cleanup rules configured (cleanup.rules)"]
    assert result.data["files"] == 0


def test_parse_args_accepts_cli_strings_only_for_dry_run() -> None:
    assert cleanup.parse_args({"dry_run": "true"}) == {"dry_run": True}
    assert cleanup.parse_args({"dry_run": "0"}) == {"dry_run": False}
    with pytest.raises(Exception, match="only dry_run"):
        cleanup.parse_args({"root": "/"})
