"""Cleanup's pure parts: glob matching and planning from a scan."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from maintd.cleanup.patterns import matches
from maintd.cleanup.plan import DEVICE, DIR, FILE, SYMLINK, Entry, needs_subtree, plan
from maintd.config import CleanupRule

NOW = 1_000_000.0
DAY = 86400.0


@pytest.mark.parametrize("patterns, path, expected", [
    (["*.old"], "a.old", True),
    (["*.old"], "logs/deep/a.old", True),  # no "/" in the pattern: matches the name at any depth
    (["*.old"], "a.old.gz", False),
    (["cctelegram*"], "cctelegram-123", True),
    (["cctelegram*"], "x/cctelegram-123", True),
    (["logs/*.old"], "logs/a.old", True),
    (["logs/*.old"], "logs/x/a.old", False),  # * stops at /
    (["**/*.old"], "a.old", True),  # ** spans zero directories
    (["**/*.old"], "x/y/a.old", True),
    (["cache/**"], "cache/a/b", True),
    (["cache/**"], "cache", False),
    (["?.log"], "a.log", True),
    (["?.log"], "ab.log", False),
    (["[ab].tmp"], "b.tmp", True),
    (["[!ab].tmp"], "c.tmp", True),
    (["[!ab].tmp"], "a.tmp", False),
    (["a.b"], "axb", False),  # dots are literal
    (["*"], ".hidden", True),
])
def test_glob_rules(patterns: list[str], path: str, expected: bool) -> None:
    assert matches(patterns, path) is expected


def entry(path: str, kind: str = FILE, age: float = 2 * DAY, newest_age: float | None = None, size: int = 1,
          files: int = 1, dirs: int = 0) -> Entry:
    newest = NOW - (newest_age if newest_age is not None else age)
    return Entry(path=path, kind=kind, mtime=NOW - age, newest=newest, size=size, files=files, dirs=dirs)


def test_plan_keeps_young_and_unmatched_and_unwanted_kinds() -> None:
    rule = CleanupRule(root="/tmp", patterns=("cctelegram*",), min_age=DAY, kind="files")
    entries = [entry("cctelegram-old"), entry("cctelegram-new", age=60), entry("other"),
               entry("cctelegram-dir", kind=DIR, files=0, dirs=1), entry("cctelegram-link", kind=SYMLINK),
               entry("cctelegram-dev", kind=DEVICE)]
    assert [d.entry.path for d in plan(rule, entries, NOW)] == ["cctelegram-link", "cctelegram-old"]


def test_plan_judges_a_directory_by_its_newest_content_and_skips_what_it_contains() -> None:
    rule = CleanupRule(root="/tmp", patterns=("*",), min_age=DAY, kind="both", recursive=True)
    entries = [entry("busy", kind=DIR, newest_age=10), entry("busy/old", age=5 * DAY),
               entry("idle", kind=DIR, age=3 * DAY), entry("idle/x", age=3 * DAY),
               Entry("unknown", DIR, NOW - 3 * DAY, math.inf)]  # a subtree that could not be read
    assert [d.entry.path for d in plan(rule, entries, NOW)] == ["busy/old", "idle"]


def test_subtrees_are_walked_only_when_needed() -> None:
    files = CleanupRule(root="/tmp", patterns=("c*",), kind="files")
    dirs = CleanupRule(root="/tmp", patterns=("c*",), kind="dirs")
    assert not needs_subtree(files, "cache") and needs_subtree(dirs, "cache") and not needs_subtree(dirs, "x")
    assert needs_subtree(CleanupRule(root="/tmp", recursive=True), "anything")


def test_rules_refuse_dangerous_roots_and_patterns() -> None:
    with pytest.raises(ValueError, match="must not be / itself"):
        CleanupRule(root="/")
    with pytest.raises(ValueError, match="absolute"):
        CleanupRule(root="tmp")
    with pytest.raises(ValueError, match="'..' segment"):
        CleanupRule(root="/tmp", patterns=("../etc/*",))
    with pytest.raises(ValueError, match="at least one"):
        CleanupRule(root="/tmp", patterns=())


names = st.sampled_from(["a", "b", "a.old", "cctelegram-1", "x.log"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
entries_st = st.lists(st.builds(lambda p, k, age, newer: Entry(p, k, NOW - age, NOW - min(age, newer)),
                                paths, st.sampled_from([FILE, DIR, SYMLINK, DEVICE]),
                                st.floats(0, 10 * DAY), st.floats(0, 10 * DAY)),
                      max_size=30, unique_by=lambda e: e.path)
rules_st = st.builds(CleanupRule, root=st.just("/r"),
                     patterns=st.lists(st.sampled_from(["*", "*.old", "cctelegram*", "a/**", "**/b"]), min_size=1,
                                       max_size=2).map(tuple),
                     min_age=st.sampled_from([0.0, DAY, 3 * DAY]), kind=st.sampled_from(["files", "dirs", "both"]),
                     recursive=st.booleans())


@settings(max_examples=300, deadline=None)
@given(rule=rules_st, entries=entries_st)
def test_plan_properties(rule: CleanupRule, entries: list[Entry]) -> None:
    chosen = plan(rule, entries, NOW)
    chosen_paths = [d.entry.path for d in chosen]
    assert len(chosen_paths) == len(set(chosen_paths))
    removed_dirs = {d.entry.path for d in chosen if d.entry.kind == DIR}
    for deletion in chosen:
        e = deletion.entry
        assert e.path and e.kind != DEVICE  # never the root, never a device
        assert matches(rule.patterns, e.path)
        assert (e.kind == DIR) == (rule.kind == "dirs") or rule.kind == "both" or (
            e.kind != DIR and rule.kind == "files")
        assert NOW - (e.newest if e.kind == DIR else e.mtime) >= rule.min_age
        assert not any(e.path.startswith(d + "/") for d in removed_dirs)  # nothing below a removed dir
