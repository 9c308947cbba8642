"""restore, recover and drill choose the same backup: the newest good one whose chain passes the pre-restore
integrity check, verified or not; a damaged newest chain falls back to the next one with a loud warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maintd.model import Outcome
from tests.support.restore_rig import Rig


def _three(rig: Rig) -> list[str]:
    """full (verified by the real verify job), then two incrementals nobody verified yet (verify runs weekly)."""
    (rig.conf / "app.toml").write_text("port = 1\n")
    (rig.data / "orders.json").write_text('{"orders": 1}\n')
    full = rig.backup("full")
    assert rig.run("verify", backup=full).outcome is Outcome.SUCCEEDED
    (rig.data / "orders.json").write_text('{"orders": 2}\n')
    first = rig.backup("incremental")
    (rig.data / "orders.json").write_text('{"orders": 3}\n')
    (rig.conf / "app.toml").write_text("port = 3\n")
    rig.now = rig.now.replace(minute=0)
    newest = rig.backup("incremental")
    rig.tick(5 / 60)  # the trial: the incremental was taken 5 minutes before the recovery
    return [full, first, newest]


def _report(record: Any) -> str:
    return "\n".join(record.data.get("report", []))


def _damage(rig: Rig, backup_id: str, prefix: str = "data.tar.") -> Path:
    archive = next((rig.root / "backups" / backup_id).glob(prefix + "*"))
    with archive.open("r+b") as handle:
        handle.seek(archive.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))
    return archive


def test_recover_restore_and_drill_use_the_newest_backup_not_the_newest_verified(rig: Rig) -> None:
    ids = _three(rig)
    recovered = rig.run("recover", mode="configuration")
    assert recovered.data["backup"] == ids[-1], _report(recovered)
    assert (rig.conf / "app.toml").read_text() == "port = 3\n"
    assert f"using {ids[-1]} (taken 5 min ago)" in _report(recovered)
    restored = rig.run("restore", components="data", target=str(rig.root / "out"))
    assert restored.data["backup"] == ids[-1] and (rig.root / "out" / "orders.json").read_text() == '{"orders": 3}\n'
    assert _report(restored).startswith(f"using {ids[-1]} (taken 5 min ago)")
    drilled = rig.run("drill")
    assert drilled.data["backup"] == ids[-1] and drilled.data["ok"] is True
    assert f"using {ids[-1]} (taken 5 min ago)" in _report(drilled)


def test_a_damaged_newest_chain_falls_back_loudly_in_all_three(rig: Rig) -> None:
    ids = _three(rig)
    _damage(rig, ids[-1])
    _damage(rig, ids[-1], "config.tar.")  # each restore checks the objects it reads
    restored = rig.run("restore", components="data", target=str(rig.root / "out"))
    assert restored.outcome is Outcome.WARNING and restored.data["backup"] == ids[1]
    assert (rig.root / "out" / "orders.json").read_text() == '{"orders": 2}\n'
    for record in (restored, rig.run("recover", mode="configuration", dry_run=True)):
        assert record.data["backup"] == ids[1]
        text = _report(record)
        assert f"WARNING: backup {ids[-1]} is DAMAGED" in text and "sha256 mismatch" in text, text
        assert f"using {ids[1]} (taken " in text
    assert any(ids[-1] in w and "DAMAGED" in w for w in restored.data["warnings"])
    # the drill proves what a recovery would restore, and fails: the newest backup does not restore
    drilled = rig.run("drill", ok=False)
    assert drilled.outcome is Outcome.FAILED and drilled.data["backup"] == ids[1]
    assert ids[-1] in drilled.summary and "DAMAGED" in _report(drilled)
    last = rig.state.get("drill.last")
    assert last["ok"] is False and ids[-1] in last["error"]


def test_a_named_backup_is_never_replaced_by_another(rig: Rig) -> None:
    ids = _three(rig)
    archive = _damage(rig, ids[-1])
    record = rig.run("restore", ok=False, backup=ids[-1], components="data", target=str(rig.root / "out"))
    assert record.outcome is Outcome.FAILED and archive.name in record.summary
    assert not (rig.root / "out").exists()


def test_a_restore_in_place_warns_that_services_were_not_stopped(rig: Rig) -> None:
    _three(rig)
    record = rig.run("restore", components="data")
    assert record.outcome is Outcome.WARNING
    assert any(w.startswith("services were not stopped; use `maintctl recover data` to stop, restore and restart")
               for w in record.data["warnings"])
    assert (rig.data / "orders.json").read_text() == '{"orders": 3}\n'  # restored all the same
    elsewhere = rig.run("restore", components="data", target=str(rig.root / "out"))
    assert elsewhere.outcome is Outcome.SUCCEEDED and "warnings" not in elsewhere.data
