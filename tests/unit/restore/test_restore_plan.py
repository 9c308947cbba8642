"""The pure restore planner: backup selection, sorting index entries into work, diffs, destinations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maintd.backup.extract import UnsafeMemberError
from maintd.backup.restore_plan import (Present, destinations, diff, dirs_deepest_first, parse_at, plan_component,
                                        removals, side_names, want_from_index)
from maintd.backup.restore_select import Candidate, select_backup
from maintd.errors import IntegrityError, NotFoundError, UsageError

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _c(hours: int, kind: str = "incremental", **kw: object) -> Candidate:
    moment = T0 + timedelta(hours=hours)
    return Candidate(id=moment.strftime("%Y%m%dT%H%M%S.000000Z-") + kind, created=moment,
                     outcome=str(kw.pop("outcome", "succeeded")), **kw)  # type: ignore[arg-type]


CHAIN = [_c(0, "full", has_redis=True), _c(4, has_redis=True), _c(8, "differential", has_redis=False),
         _c(12, has_redis=True)]


def test_latest_is_the_newest_backup() -> None:
    assert select_backup(CHAIN).candidate == CHAIN[-1]
    assert select_backup(CHAIN, backup="latest").candidate == CHAIN[-1]


def test_point_in_time_takes_the_newest_backup_at_or_before() -> None:
    assert select_backup(CHAIN, at=T0 + timedelta(hours=5)).candidate == CHAIN[1]
    assert select_backup(CHAIN, at=T0 + timedelta(hours=8)).candidate == CHAIN[2]
    with pytest.raises(NotFoundError, match="at or before"):
        select_backup(CHAIN, at=T0 - timedelta(seconds=1))


def test_explicit_id_is_found_or_not_found() -> None:
    assert select_backup(CHAIN, backup=CHAIN[1].id).candidate == CHAIN[1]
    with pytest.raises(NotFoundError, match="no committed backup"):
        select_backup(CHAIN, backup="20000101T000000.000000Z-full")
    with pytest.raises(UsageError):
        select_backup(CHAIN, backup=CHAIN[1].id, at=T0)


def test_redis_restores_skip_backups_without_a_snapshot() -> None:
    chosen = select_backup(CHAIN, at=T0 + timedelta(hours=9), need_redis=True)
    assert chosen.candidate == CHAIN[1] and "without a Redis snapshot" in chosen.notes[0]
    with pytest.raises(IntegrityError, match="no Redis snapshot"):
        select_backup(CHAIN, backup=CHAIN[2].id, need_redis=True)


def _chain(*specs: tuple[int, str, dict]) -> list[Candidate]:
    """Candidates whose `chain` links each incremental to everything before it since the last full."""
    out: list[Candidate] = []
    for hours, kind, kw in specs:
        base = _c(hours, kind, **kw)
        since = [] if kind == "full" else [m.id for m in out[max(i for i, m in enumerate(out)
                                                                   if m.id.endswith("-full")):]]
        out.append(Candidate(base.id, base.created, base.outcome, base.has_redis, base.verified,
                             chain=(*since, base.id)))
    return out


def test_an_unverified_newer_backup_is_used_over_an_older_verified_one() -> None:
    # The trial's data loss: verify runs weekly, an incremental taken minutes ago must not be ignored.
    pool = _chain((0, "full", {"verified": True}), (4, "incremental", {"verified": True}),
                  (8, "incremental", {}))
    chosen = select_backup(pool)
    assert chosen.candidate == pool[-1] and chosen.warnings == () and chosen.notes == ()


def test_a_failed_verify_is_never_picked_implicitly_nor_anything_built_on_it() -> None:
    pool = _chain((0, "full", {}), (4, "incremental", {"verified": False}), (8, "incremental", {}))
    chosen = select_backup(pool)
    assert chosen.candidate == pool[0]
    assert len(chosen.warnings) == 1 and pool[1].id in chosen.warnings[0] and pool[2].id in chosen.warnings[0]
    assert "failed its last verify" in chosen.warnings[0]
    assert select_backup(pool, backup=pool[1].id).candidate == pool[1]  # named: used anyway


def test_a_damaged_chain_falls_back_to_the_next_one_naming_the_damaged_backup() -> None:
    pool = _chain((0, "full", {}), (4, "incremental", {}), (8, "incremental", {}), (12, "full", {}),
                  (16, "incremental", {}))
    chosen = select_backup(pool, damaged={pool[3].id: "data.tar.zst.gpg: sha256 mismatch"})
    assert chosen.candidate == pool[2]  # the newest whose chain does not hold the damaged full
    assert len(chosen.warnings) == 1
    warning = chosen.warnings[0]
    assert pool[3].id in warning and "DAMAGED" in warning and "sha256 mismatch" in warning
    assert pool[4].id in warning and f"falling back to the older {pool[2].id}" in warning
    with pytest.raises(IntegrityError, match="no restorable backup"):
        select_backup(pool, damaged={pool[0].id: "missing", pool[3].id: "missing"})


def test_partial_backups_only_when_nothing_else_and_never_silently() -> None:
    pool = _chain((0, "full", {}), (4, "incremental", {"outcome": "partial"}))
    chosen = select_backup(pool)
    assert chosen.candidate == pool[0] and "partial" in chosen.warnings[0] and pool[1].id in chosen.warnings[0]
    only = select_backup([pool[1]])
    assert only.candidate == pool[1] and "partial" in only.notes[0]


def test_age_is_said_in_human_units() -> None:
    from maintd.backup.restore_select import age_text, using_line

    assert using_line("X", T0, T0 + timedelta(minutes=5)) == "using X (taken 5 min ago)"
    assert age_text(T0, T0 + timedelta(seconds=42)) == "42 s ago"
    assert age_text(T0, T0 + timedelta(hours=7)) == "7.0 h ago"
    assert age_text(T0, T0 + timedelta(days=8)) == "8.0 days ago"


def test_parse_at_needs_a_zone() -> None:
    assert parse_at("2026-12-03T17:30:00Z") == datetime(2026, 12, 3, 17, 30, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="time zone"):
        parse_at("2026-12-03T17:30:00")
    with pytest.raises(UsageError, match="ISO 8601"):
        parse_at("yesterday")


def _w(path: bytes, kind: str = "f", source: str | None = "B1", **kw: object):  # noqa: ANN202
    return want_from_index(path, kind, mode=int(kw.pop("mode", 0o644)), uid=0, gid=0,
                           mtime_ns=int(kw.pop("mtime_ns", 10)), source=source if kind == "f" else None,
                           **kw)  # type: ignore[arg-type]


def test_plan_groups_files_by_the_archive_holding_them() -> None:
    plan = plan_component("data", [_w(b"", "d"), _w(b"a", "d"), _w(b"a/x", size=3), _w(b"y", source="B2", size=4),
                                   _w(b"l", "l", link=b"a/x"), _w(b"q", "p"), _w(b"sock", "s")], ["B1", "B2"])
    assert plan.sources == ["B1", "B2"]
    assert set(plan.files["B1"]) == {b"a/x"} and set(plan.files["B2"]) == {b"y"}
    assert (plan.file_count, plan.total_bytes) == (2, 7)
    assert plan.root_meta is not None and [w.path for w in plan.dirs] == [b"a"]
    assert [w.path for w in plan.links] == [b"l"] and [w.path for w in plan.fifos] == [b"q"]
    assert "socket sock" in plan.skipped[0]


def test_plan_refuses_content_from_outside_the_chain_and_devices_and_escaping_links() -> None:
    with pytest.raises(IntegrityError, match="not in the chain"):
        plan_component("data", [_w(b"x", source="B9")], ["B1"])
    with pytest.raises(UnsafeMemberError, match="device node"):
        plan_component("data", [_w(b"null", "c")], ["B1"])
    with pytest.raises(UnsafeMemberError, match="points outside"):
        plan_component("data", [_w(b"a/l", "l", link=b"../../etc")], ["B1"])
    assert plan_component("data", [_w(b"l", "l", link=b"/etc")], ["B1"], allow_symlinks_outside=True).links


def test_index_paths_that_climb_out_are_refused() -> None:
    for bad in (b"/etc/passwd", b"../x", b"a/../../x"):
        with pytest.raises(UnsafeMemberError):
            _w(bad)


def test_diff_counts_added_changed_removed() -> None:
    wanted = {w.path: w for w in (_w(b"same", size=1), _w(b"edited", size=2), _w(b"new", size=1),
                                  _w(b"mode", size=1, mode=0o600), _w(b"d", "d", mode=0o755))}
    present = {b"same": Present("f", 0o644, 0, 0, 1, 10), b"edited": Present("f", 0o644, 0, 0, 3, 10),
               b"mode": Present("f", 0o644, 0, 0, 1, 10), b"d": Present("d", 0o755, 0, 0, 0, 99),
               b"gone": Present("f", 0o644, 0, 0, 1, 10)}
    changes = diff(wanted, present)
    assert changes.added == (b"new",)
    assert changes.changed == (b"edited", b"mode")
    assert changes.removed == (b"gone",)
    assert changes.summary() == {"added": 1, "changed": 2, "removed": 1}


def test_removals_lists_only_the_topmost_unwanted_entries() -> None:
    present = {p: Present("d" if p.count(b"/") < 2 else "f", 0o755, 0, 0, 0, 0)
               for p in (b"keep", b"old", b"old/a", b"old/a/b", b"zz")}
    assert removals({b"keep": _w(b"keep", "d")}, present) == [(b"old",), (b"zz",)]


def test_dirs_are_finished_deepest_first() -> None:
    order = [w.path for w in dirs_deepest_first([_w(b"a", "d"), _w(b"a/b/c", "d"), _w(b"a/b", "d")])]
    assert order == [b"a/b/c", b"a/b", b"a"]


def test_destinations_live_single_target_and_several() -> None:
    live = {"data": Path("/srv/data"), "config": Path("/etc/app")}
    assert destinations(["data"], live, None) == {"data": Path("/srv/data")}
    assert destinations(["data"], live, Path("/tmp/r")) == {"data": Path("/tmp/r")}
    assert destinations(["data", "config"], live, Path("/tmp/r")) == {"data": Path("/tmp/r/data"),
                                                                      "config": Path("/tmp/r/config")}
    with pytest.raises(UsageError, match="no live path"):
        destinations(["system"], live, None)


def test_side_names_sit_beside_the_live_tree() -> None:
    staging, kept = side_names(Path("/var/lib/app"), "20261203T173000Z", "broken")
    assert staging == Path("/var/lib/.app.restoring.20261203T173000Z")
    assert kept == Path("/var/lib/app.broken.20261203T173000Z")


@given(st.lists(st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=3), max_size=12),
       st.lists(st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=3), max_size=12))
def test_removals_cover_exactly_what_is_not_wanted(present_paths: list[list[bytes]],
                                                   wanted_paths: list[list[bytes]]) -> None:
    # Present trees are closed under parents (a real directory listing).
    present = {b"/".join(p[:i]): Present("d", 0o755, 0, 0, 0, 0) for p in present_paths for i in range(1, len(p) + 1)}
    wanted = {b"/".join(p[:i]): _w(b"/".join(p[:i]), "d") for p in wanted_paths for i in range(1, len(p) + 1)}
    tops = removals(wanted, present)
    covered = {path for path in present for top in tops if tuple(path.split(b"/"))[:len(top)] == top}
    assert covered == {path for path in present if path not in wanted}


def test_no_restorable_backup_is_a_data_error_not_a_usage_error() -> None:
    pool = _chain((0, "full", {"verified": False}), (4, "incremental", {}))
    with pytest.raises(IntegrityError, match=r"no restorable backup \(last verify failed") as caught:
        select_backup(pool)
    assert caught.value.exit_code == 65
    with pytest.raises(IntegrityError, match="no restorable backup with a Redis snapshot"):
        select_backup([_c(0, "full", has_redis=False)], need_redis=True)
    with pytest.raises(NotFoundError, match="none was committed"):
        select_backup([])
