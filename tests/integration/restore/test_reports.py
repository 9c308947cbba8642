"""drill and recover leave a JSON report in paths.reports_dir, written atomically, on success and on failure."""

from __future__ import annotations

import json

from maintd.model import Outcome
from tests.support.restore_rig import Rig


def _reports(rig: Rig) -> dict[str, dict]:
    directory = rig.settings.paths.reports_dir
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no temporaries left
    return {p.name: json.loads(p.read_text()) for p in directory.iterdir()}


def _backup(rig: Rig) -> str:
    (rig.conf / "app.toml").write_text("port = 1\n")
    (rig.data / "orders.json").write_text("[]\n")
    return rig.backup("full")


def test_recover_writes_its_report(rig: Rig) -> None:
    backup_id = _backup(rig)
    record = rig.run("recover", mode="configuration")
    name = f"recover-configuration-{rig.now.strftime('%Y%m%dT%H%M%SZ')}.json"
    report = _reports(rig)[name]
    assert record.data["report_file"] == str(rig.settings.paths.reports_dir / name)
    assert report["kind"] == "recover" and report["outcome"] == "succeeded" and report["backup"] == backup_id
    assert report["using"].startswith(f"using {backup_id} (taken ")
    assert report["rto_s"] == record.data["rto_s"] and report["objective_s"] == 900 and report["met"] is True
    steps = [s["step"] for s in report["steps"]]
    assert steps[:3] == ["key", "check backup", "restore"] and "health" in steps
    assert all(s["duration_s"] >= 0 for s in report["steps"])
    assert report["report"][-1].startswith("recovered the configuration in ")


def test_a_failed_recovery_still_leaves_its_report(rig: Rig) -> None:
    backup_id = _backup(rig)
    archive = next((rig.root / "backups" / backup_id).glob("config.tar.*"))
    archive.write_bytes(archive.read_bytes()[:-10])
    record = rig.run("recover", ok=False, mode="configuration", backup=backup_id)
    assert record.outcome is Outcome.FAILED
    (report,) = _reports(rig).values()
    assert report["outcome"] == "failed" and archive.name in report["error"] and report["met"] is False
    assert [s["step"] for s in report["steps"]] == ["key", "check backup"]


def test_drill_writes_its_report_and_a_dry_run_none(rig: Rig) -> None:
    backup_id = _backup(rig)
    rig.run("drill", dry_run=True)
    rig.run("recover", mode="configuration", dry_run=True)
    assert not rig.settings.paths.reports_dir.exists()
    record = rig.run("drill")
    report = _reports(rig)[f"drill-{rig.now.strftime('%Y%m%dT%H%M%SZ')}.json"]
    assert report["kind"] == "drill" and report["backup"] == backup_id
    assert report["outcome"] == "warning"  # this backup holds no Redis snapshot: files only
    assert report["files"] == record.data["files"] == 2 and report["met"] is True and report["rto_s"] > 0
    assert [s["step"] for s in report["steps"]] == ["key", "check chain", "restore files"]
