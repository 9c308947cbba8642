"""A swap restore carries the live tree's excluded entries (caches, tmp, logs: never backed up) into the restored
tree instead of moving them aside with the old tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from maintd.backup.restore_carry import carry_over
from tests.support.restore_rig import Rig

REPO = Path(__file__).resolve().parents[3]


def _app(rig: Rig) -> Path:
    app = rig.root / "app"  # exclude = ["tmp", "*.log"] in the rig's config
    (app / "lib").mkdir()
    (app / "lib" / "main.js").write_text("v1\n")
    return app


def _excluded_state(app: Path) -> None:
    (app / "tmp" / "sessions").mkdir(parents=True)
    (app / "tmp" / "sessions" / "s1").write_text("session\n")
    (app / "app.log").write_text("top log\n")
    (app / "lib" / "debug.log").write_text("deep log\n")
    (app / "gone").mkdir()  # created after the backup: not in the restored tree
    (app / "gone" / "x.log").write_text("orphan log\n")


def test_excluded_entries_move_into_the_restored_tree(rig: Rig) -> None:
    app = _app(rig)
    rig.backup("full")
    (app / "lib" / "main.js").write_text("broken\n")
    _excluded_state(app)

    record = rig.run("restore", components="application")

    assert (app / "lib" / "main.js").read_text() == "v1\n"
    assert (app / "tmp" / "sessions" / "s1").read_text() == "session\n"
    assert (app / "app.log").read_text() == "top log\n" and (app / "lib" / "debug.log").read_text() == "deep log\n"
    tree = record.data["components"][0]
    assert sorted(tree["carried_over"]) == ["app.log", "lib/debug.log", "tmp"]
    kept = Path(tree["kept"])
    assert not (kept / "tmp").exists() and not (kept / "app.log").exists()
    assert (kept / "gone" / "x.log").read_text() == "orphan log\n"  # its directory is not in the backup
    assert any("gone/x.log" in item for item in tree["left_in_kept_tree"])
    assert any("carried over from the live tree" in line for line in record.data["report"])


def test_a_restore_killed_after_the_carry_over_gives_the_entries_back(rig: Rig) -> None:
    app = _app(rig)
    rig.backup("full")
    _excluded_state(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAINTD_")}
    argv = [sys.executable, "-m", "maintd", "restore", "--config", str(rig.root / "maintd.toml"),
            "--component", "application"]
    killed = subprocess.run(argv, cwd=REPO, env={**env, "MAINTD_TEST_CRASH_AT": "restore-carried"},
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9
    assert not (app / "app.log").exists()  # it sits in the hidden staging dir now
    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert (app / "app.log").read_text() == "top log\n"
    assert (app / "tmp" / "sessions" / "s1").read_text() == "session\n"
    assert not list(rig.root.glob(".app.restoring.*"))


def test_nothing_is_moved_through_a_symlink(tmp_path: Path) -> None:
    old, new, elsewhere = tmp_path / "old", tmp_path / "new", tmp_path / "elsewhere"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "cache").mkdir()
    (old / "sub" / "cache" / "blob").write_text("x")
    new.mkdir()
    elsewhere.mkdir()
    (new / "sub").symlink_to(elsewhere)  # the restored tree has a link where the live one has a dir
    carried = carry_over(old, new, ["cache"])
    assert carried.moved == [] and carried.left[0][0] == b"sub/cache"
    assert list(elsewhere.iterdir()) == [] and (old / "sub" / "cache" / "blob").exists()


def test_a_dry_run_does_not_count_what_would_be_carried_over_as_removed(rig: Rig) -> None:
    app = _app(rig)
    rig.backup("full")
    _excluded_state(app)
    record = rig.run("restore", components="application", dry_run=True)
    removed = record.data["components"][0]["paths"]["removed"]
    assert sorted(removed) == ["gone", "gone/x.log"]  # tmp/..., app.log, lib/debug.log are carried over
