"""Pure planning: parents, chains, fallbacks, space, outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from maintd.backup import plan
from maintd.backup.catalog import Manifest
from maintd.backup.ids import format_id, new_id, parse_id
from maintd.model import BackupType

T0 = datetime(2026, 12, 3, 17, 30, tzinfo=timezone.utc)


def manifest(minutes: int, kind: BackupType, chain: tuple[str, ...] = (), size: int = 100) -> Manifest:
    backup_id = format_id(T0 + timedelta(minutes=minutes), kind)
    raw = {"format": 1, "id": backup_id, "type": kind.value, "parent": chain[-1] if chain else None,
           "chain": [*chain, backup_id], "created": (T0 + timedelta(minutes=minutes)).isoformat(),
           "outcome": "succeeded", "objects": {"a": {"size": size, "sha256": "0" * 64}}, "components": {}}
    return Manifest.from_dict(raw)


def test_incremental_takes_the_newest_backup_of_any_type() -> None:
    full = manifest(0, BackupType.FULL)
    diff = manifest(10, BackupType.DIFFERENTIAL, full.chain)
    chosen = plan.plan_backup([full, diff], BackupType.INCREMENTAL)
    assert chosen.type == BackupType.INCREMENTAL and chosen.parent == diff
    assert chosen.chain_before == (full.id, diff.id)


def test_differential_takes_the_newest_full() -> None:
    full = manifest(0, BackupType.FULL)
    inc = manifest(10, BackupType.INCREMENTAL, full.chain)
    chosen = plan.plan_backup([full, inc], BackupType.DIFFERENTIAL)
    assert chosen.parent == full and chosen.chain_before == (full.id,)


def test_no_parent_means_a_full_and_says_so() -> None:
    chosen = plan.plan_backup([], BackupType.DIFFERENTIAL)
    assert chosen.type == BackupType.FULL and chosen.parent is None
    assert "taking a full backup" in chosen.notes[0]


def test_an_unusable_parent_means_a_full_and_names_the_reason() -> None:
    full = manifest(0, BackupType.FULL)
    chosen = plan.plan_backup([full], BackupType.INCREMENTAL, unusable={full.id: "failed verification"})
    assert chosen.type == BackupType.FULL
    assert full.id in chosen.notes[0] and "failed verification" in chosen.notes[0]


def test_estimate_uses_the_last_backup_of_the_same_type_else_the_source() -> None:
    full = manifest(0, BackupType.FULL, size=5000)
    assert plan.estimate_bytes([full], BackupType.FULL, None) == (5000, f"the last full backup {full.id}")
    assert plan.estimate_bytes([], BackupType.FULL, 777)[0] == 777


def test_space_problem_refuses_when_the_estimate_and_the_reserve_do_not_fit() -> None:
    assert plan.space_problem(free=1000, needed=500, min_free=400, source="x", root="/b") is None
    message = plan.space_problem(free=1000, needed=700, min_free=400, source="the last full", root="/b")
    assert message is not None and "not enough space under /b" in message and "the last full" in message


def test_outcome_partial_beats_warning() -> None:
    assert plan.outcome([], False) == "succeeded"
    assert plan.outcome(["w"], False) == "warning"
    assert plan.outcome(["w"], True) == "partial"


def test_ids_are_unique_and_sort_in_time_order() -> None:
    taken: set[str] = set()
    ids = []
    for _ in range(3):
        backup_id = new_id(T0, BackupType.INCREMENTAL, lambda stamp: stamp in taken)
        taken.add(backup_id.split("-")[0])
        ids.append(backup_id)
    assert len(set(ids)) == 3 and ids == sorted(ids)
    parsed = parse_id(ids[0])
    assert parsed is not None and parsed.created == T0 and parsed.type == BackupType.INCREMENTAL
    assert parse_id("not-an-id") is None


def test_system_component_holds_extra_paths_under_root() -> None:
    class C:
        name, path, exclude = "data", "/var/lib/x", ("cache",)
    specs = plan.components([C()], ["/etc/x.conf"])
    assert [s.name for s in specs] == ["data", "system"]
    assert specs[1].root == "/" and specs[1].paths == ("/etc/x.conf",)


def test_redis_part_of_the_report_reads_as_text_not_as_a_dict() -> None:
    assert plan.redis_summary({"keys": {"db0": 3}, "rdb_size": 161}) == "db0=3 keys, RDB 161 B"
    assert plan.redis_summary({"keys": {"db1": 1, "db0": 42}, "rdb_size": 3 << 20}) == (
        "db0=42 keys, db1=1 key, RDB 3.0 MiB")
    assert plan.redis_summary({"keys": {}, "rdb_size": 88}) == "no keys, RDB 88 B"
