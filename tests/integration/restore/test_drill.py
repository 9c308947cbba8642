"""The restore drill against real backups with a real Redis: passes on a good backup, fails loudly on a damaged
one, and never leaves its scratch copy or its throwaway Redis behind."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from maintd.backup.catalog import Catalog
from maintd.backup.streams import ObjectWriter
from maintd.edges.gpg import Gpg
from maintd.health.backups import judge_drill
from maintd.model import Outcome
from tests.support.redis_server import RedisServer
from tests.support.restore_rig import Rig, make_rig


@pytest.fixture
def drill_rig(tmp_path: Path, redis_server: RedisServer) -> Iterator[Rig]:
    client = redis_server.client()
    for i in range(120):
        client.set(f"session:{i}", "x" * 50)
    client.hset("config", mapping={"a": 1, "b": 2})
    made = make_rig(tmp_path / "rig", {"backup": {"redis": True}, "redis": {"url": redis_server.url}})
    (made.data / "db").mkdir()
    for i in range(20):
        (made.data / "db" / f"{i}.json").write_text(f'{{"n": {i}}}\n' * 50)
    (made.data / "link").symlink_to("db/1.json")
    made.backup("full")
    (made.data / "db" / "new.json").write_text("{}\n")
    made.backup("incremental")
    yield made
    made.close()


def _redis_children() -> set[int]:
    """redis-server processes whose parent is this test process (the drill's throwaway ones)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat.split(" (", 1)[1].rsplit(") ", 1)
            if name.startswith("redis-server") and int(rest.split()[1]) == os.getpid():
                found.add(int(entry))
    return found


def _scratch_left(rig: Rig) -> list[Path]:
    scratch = rig.root / "backups" / ".drill"
    return list(scratch.iterdir()) if scratch.exists() else []


def test_drill_passes_on_a_good_backup_and_records_the_measured_rto(drill_rig: Rig) -> None:
    dry = drill_rig.run("drill", dry_run=True)
    assert "would restore" in dry.summary and drill_rig.state.get("drill.last") is None
    before = _redis_children()  # the maintained Redis of the fixture
    record = drill_rig.run("drill")
    assert record.outcome is Outcome.SUCCEEDED, record.summary
    last = drill_rig.state.get("drill.last")
    assert last["ok"] is True and last["backup"].endswith("-incremental")
    assert last["keys"]["found"] == last["keys"]["expected"] == {"db0": 121}
    assert last["files"] == 21 and last["met"] is True and 0 < last["rto_s"] < last["objective_s"]
    assert "drill passed" in record.summary and "(objective 30 min): met" in record.summary
    assert record.summary not in record.data["report"]  # maintctl prints the summary, then the report: once
    assert record.data["report"][-1] == f"report: {record.data['report_file']}"
    assert _scratch_left(drill_rig) == []
    report = json.loads(Path(record.data["report_file"]).read_text())
    assert report["outcome"] == "succeeded" and report["keys"] == last["keys"] and report["rto_s"] == last["rto_s"]
    assert [s["step"] for s in report["steps"]] == ["key", "check chain", "restore files", "load redis"]
    assert _redis_children() == before


def test_drill_fails_loudly_on_a_damaged_backup(drill_rig: Rig) -> None:
    full = next(p for p in (drill_rig.root / "backups").iterdir() if p.name.endswith("-full"))
    archive = next(full.glob("data.tar.*"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    archive.write_bytes(bytes(data))
    record = drill_rig.run("drill", ok=False)
    assert record.outcome is Outcome.FAILED
    assert full.name in record.summary and archive.name in record.summary
    last = drill_rig.state.get("drill.last")
    assert last["ok"] is False and archive.name in last["error"] and last["met"] is False
    assert _scratch_left(drill_rig) == []
    # the health job reports the failed drill as degraded until a drill passes: the record says how to clear it
    assert last["hint"] == "run `maintctl drill` after fixing the cause to clear it"
    status, message = judge_drill(last)
    assert status == "degraded" and "run `maintctl drill` after fixing the cause to clear it" in message


def test_drill_fails_when_redis_cannot_load_the_snapshot(drill_rig: Rig) -> None:
    # A snapshot that passes every hash but is not an RDB (what a writer bug would leave): Redis refuses it.
    catalog = Catalog.from_settings(drill_rig.settings)
    newest = catalog.list()[-1]
    name = newest.redis_name()
    path = catalog.object_path(newest.id, name)
    writer = ObjectWriter(path, Gpg.from_settings(drill_rig.settings))
    garbage = b"REDIS0009 this is not a snapshot" * 10
    writer.write(garbage)
    info = writer.close()
    os.replace(writer.tmp, path)
    raw = json.loads((path.parent / "manifest.json").read_text())
    raw["objects"][name] = {"size": info.size, "sha256": info.sha256}
    raw["redis"].update(rdb_size=len(garbage), rdb_sha256=hashlib.sha256(garbage).hexdigest())
    (path.parent / "manifest.json").write_text(json.dumps(raw))
    before = _redis_children()
    record = drill_rig.run("drill", ok=False)
    assert record.outcome is Outcome.FAILED and "could not load" in record.summary
    assert drill_rig.state.get("drill.last")["ok"] is False
    assert _redis_children() == before
    assert _scratch_left(drill_rig) == []
