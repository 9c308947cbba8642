"""The prune job through the real runner: dry run, deletion, verify results, tiers, locks, bad arguments."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from maintd.backup.catalog import Catalog
from maintd.errors import UsageError
from maintd.jobs import prune
from maintd.model import Outcome
from maintd.runtime.runner import Runner
from maintd.state import State
from tests.integration.tiers.store_builder import UTC, Clock, Store, make_ctx

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POLICY = {"incremental_days": 2, "differential_days": 0, "full_days": 10, "daily": 0, "weekly": 0, "monthly": 0,
          "yearly": 0}


@pytest.fixture
def env(tmp_path: Path, settings):
    def make(**backup):
        loaded = settings({"backup": {"retention": POLICY, **backup}})
        state = State.open(loaded.paths.state_dir)
        runner = Runner(loaded, state, {"prune": prune.JOB}, clock=Clock(NOW))
        made.append(state)
        return loaded, state, Store(loaded.paths.backup_root), runner

    made: list[State] = []
    yield make
    for state in made:
        state.close()


def timeline(store: Store) -> dict[str, str]:
    """An old chain beyond every limit, and a young one."""
    return {
        "old_full": store.add(NOW - timedelta(days=20), "full").id,
        "old_inc": store.add(NOW - timedelta(days=19), "incremental").id,
        "full": store.add(NOW - timedelta(days=5), "full").id,
        "inc_old": store.add(NOW - timedelta(days=4), "incremental").id,
        "inc_new": store.add(NOW - timedelta(days=1), "incremental").id,
    }


def test_dry_run_reports_every_decision_and_deletes_nothing(env) -> None:
    settings, state, store, runner = env()
    ids = timeline(store)
    record = runner.run_sync("prune", args={"dry_run": "true"})
    assert record.outcome is Outcome.SUCCEEDED
    assert record.summary == "would delete 2 backup(s), keep 3"
    assert store.ids() == sorted(ids.values())
    report = record.data["report"]
    assert report[:2] == [
        f"would delete {ids['old_full']}: older than 10 days (full) and no period rule keeps it",
        f"would delete {ids['old_inc']}: older than 2 days (incremental) and no period rule keeps it"]
    assert f"keep    {ids['full']}: within 10 days (full); parent of {ids['inc_old']}" in report
    assert f"keep    {ids['inc_old']}: parent of {ids['inc_new']}" in report
    assert report[-1].startswith("3 kept, 2 to delete, would free ")
    assert record.data["kept"][-1] == {"id": ids["inc_new"],
                                       "rules": ["newest good backup", "within 2 days (incremental)"]}


def test_prune_deletes_the_plan_frees_bytes_and_forgets_state(env) -> None:
    settings, state, store, runner = env()
    ids = timeline(store)
    root = settings.paths.backup_root
    expected_free = sum(f.stat().st_size for i in ("old_full", "old_inc") for f in (root / ids[i]).iterdir())
    cache = settings.paths.state_dir / "index-cache" / ids["old_full"]
    cache.mkdir(parents=True)
    (cache / "data.index").write_bytes(b"plain index")
    for key in ("old_full", "inc_new"):  # the newest verified backup is inc_new: old_full may go
        state.put(f"verify.{ids[key]}", {"time": NOW.isoformat(), "ok": True})
    record = runner.run_sync("prune")
    assert record.outcome is Outcome.SUCCEEDED, record.error
    assert store.ids() == sorted([ids["full"], ids["inc_old"], ids["inc_new"]])
    assert record.data["freed_bytes"] == expected_free
    assert record.data["deleted"] == [
        {"id": ids["old_full"], "reason": "older than 10 days (full) and no period rule keeps it"},
        {"id": ids["old_inc"], "reason": "older than 2 days (incremental) and no period rule keeps it"}]
    assert not cache.exists()
    assert state.get(f"verify.{ids['old_full']}") is None
    assert os.listdir(root / ".deleting") == []
    again = runner.run_sync("prune")
    assert again.data["deleted"] == [] and again.summary.startswith("deleted 0 backup(s)")


def test_failed_verify_makes_a_backup_bad_but_only_its_age_limit_deletes_it(env) -> None:
    settings, state, store, runner = env()
    ids = timeline(store)
    state.put(f"verify.{ids['inc_old']}", {"time": NOW.isoformat(), "ok": False, "level": "full",
                                           "problems": ["data.tar.zst.gpg: sha256 mismatch"]})
    newer = store.add(NOW - timedelta(hours=1), "full").id
    record = runner.run_sync("prune", args={"dry_run": True})
    deleted = {d["id"]: d["reason"] for d in record.data["deleted"]}
    kept = {k["id"]: k["rules"] for k in record.data["kept"]}
    # Nothing is deleted for being bad: only what is past its age limit anyway.
    assert set(deleted) == {ids["old_full"], ids["old_inc"]}
    # Bad (its chain holds a failed member) but younger than the incremental limit: kept, with its chain.
    assert kept[ids["inc_new"]] == [f"chain member {ids['inc_old']} failed verify, kept: within 2 days "
                                    "(incremental)"]
    assert kept[ids["inc_old"]] == [f"parent of {ids['inc_new']}"]  # itself older than 2 days: only the chain
    assert kept[newer][0] == "newest good backup"
    later = prune.local_plan(make_ctx(settings, state, NOW + timedelta(days=2)),
                             Catalog.from_settings(settings))
    assert later.decision(ids["inc_new"]).reasons == (
        f"chain member {ids['inc_old']} failed verify: older than 2 days (incremental), superseded by {newer}",)
    assert later.decision(ids["inc_old"]).reasons == (
        f"verify failed: older than 2 days (incremental), superseded by {newer}",)


def test_prune_also_prunes_a_dir_tier_by_what_the_tier_holds(env, tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    settings, state, store, runner = env(tiers=[{"name": "nas", "path": str(nas)}])
    from maintd.backup import tiers
    ids = timeline(store)
    tiers.replicate(make_ctx(settings, state, NOW), Catalog(settings.paths.backup_root).get(ids["inc_new"]))
    tiers.replicate(make_ctx(settings, state, NOW), Catalog(settings.paths.backup_root).get(ids["old_inc"]))
    # The local store lost its recent chain (a replaced disk): the tier must not lose it too.
    for key in ("full", "inc_old", "inc_new"):
        Catalog(settings.paths.backup_root).delete(ids[key])
    record = runner.run_sync("prune")
    assert record.outcome is Outcome.SUCCEEDED, record.error
    assert record.data["tiers"][0]["deleted"] == [ids["old_inc"], ids["old_full"]]
    assert sorted(n for n in os.listdir(nas) if not n.startswith(".")) == sorted(
        [ids["full"], ids["inc_old"], ids["inc_new"]])
    # Locally, the old chain is now all there is: the newest good backup and its parent stay.
    assert store.ids() == [ids["old_full"], ids["old_inc"]]
    assert any(line.startswith(f"tier nas: delete  {ids['old_full']}") for line in record.data["report"])


def test_an_unreachable_tier_does_not_stop_the_local_prune(env, tmp_path: Path) -> None:
    settings, state, store, runner = env(tiers=[{"name": "gone", "path": str(tmp_path / "unmounted")}])
    ids = timeline(store)
    record = runner.run_sync("prune")
    assert record.outcome is Outcome.WARNING
    assert ids["old_full"] not in store.ids()
    assert record.data["tiers"][0]["error"].endswith("is not a directory (not mounted?)")
    assert record.data["warnings"] == [f"tier gone: not pruned: {record.data['tiers'][0]['error']}"]
    assert f"tier gone: not pruned: {record.data['tiers'][0]['error']}" in record.data["report"]


def test_prune_waits_for_no_one_when_another_process_writes_the_store(env) -> None:
    settings, state, store, runner = env()
    timeline(store)
    with Catalog(settings.paths.backup_root).writer_lock():
        record = runner.run_sync("prune")
    assert record.outcome is Outcome.FAILED
    assert "another process writes to" in record.summary
    assert len(store.ids()) == 5


def test_prune_after_backup_runs_the_same_plan_without_taking_the_store_lock(env) -> None:
    settings, state, store, runner = env()
    ids = timeline(store)
    with Catalog(settings.paths.backup_root).writer_lock():  # as if the backup job still held it
        data = prune.prune_after_backup(make_ctx(settings, state, NOW))
    assert [d["id"] for d in data["deleted"]] == [ids["old_full"], ids["old_inc"]]
    assert ids["old_full"] not in store.ids()


@pytest.mark.parametrize("args, expected", [({}, {"dry_run": False}), ({"dry_run": "yes"}, {"dry_run": True}),
                                            ({"dry_run": "0"}, {"dry_run": False}),
                                            ({"dry_run": True}, {"dry_run": True})])
def test_arguments_are_coerced_from_cli_strings(args, expected) -> None:
    assert prune.parse_args(args) == expected


@pytest.mark.parametrize("args, message", [({"dry_run": "maybe"}, "dry_run must be true or false"),
                                           ({"keep": "3"}, "unexpected argument(s): keep")])
def test_bad_arguments_are_usage_errors(args, message) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prune.parse_args(args)


def test_a_backup_with_an_unreadable_manifest_stops_prune_before_anything_goes(env) -> None:
    settings, state, store, runner = env()
    ids = timeline(store)
    (settings.paths.backup_root / ids["inc_old"] / "manifest.json").write_text("{broken")
    record = runner.run_sync("prune")
    assert record.outcome is Outcome.FAILED
    assert record.summary.startswith(f"prune refused: backups with a missing or unreadable manifest: {ids['inc_old']}")
    assert len(os.listdir(settings.paths.backup_root)) >= 5 and ids["old_full"] in store.ids()


def test_a_tier_holding_an_unreadable_copy_is_left_alone_and_says_why(env, tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    settings, state, store, runner = env(tiers=[{"name": "nas", "path": str(nas)}])
    from maintd.backup import tiers
    ids = timeline(store)
    for key in ("old_inc", "inc_new"):
        tiers.replicate(make_ctx(settings, state, NOW), Catalog(settings.paths.backup_root).get(ids[key]))
    (nas / ids["full"] / "manifest.json").unlink()
    record = runner.run_sync("prune")
    assert record.outcome is Outcome.WARNING
    assert record.data["tiers"][0]["error"] == (f"copies with a missing or unreadable manifest: {ids['full']}"
                                                " (repair or remove them by hand)")
    assert (nas / ids["old_full"]).is_dir()  # nothing deleted on that tier
    assert ids["old_full"] not in store.ids()  # the local prune went ahead


def test_prune_drops_tier_records_of_copies_that_no_longer_exist(env, tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    settings, state, store, runner = env(tiers=[{"name": "nas", "path": str(nas)}])
    from maintd.backup import tiers
    ids = timeline(store)
    tiers.replicate(make_ctx(settings, state, NOW), Catalog(settings.paths.backup_root).get(ids["inc_new"]))
    state.put(f"tier.nas.{ids['inc_new']}", {"time": NOW.isoformat(), "ok": True, "error": None})
    state.put("tier.nas.20200101T000000.000000Z-full", {"time": "2020-01-01T00:00:00+00:00", "ok": True})
    state.put(f"tier.nas.{ids['old_inc']}", {"time": NOW.isoformat(), "ok": False, "error": "disk full"})
    runner.run_sync("prune")
    held = {key.removeprefix("tier.nas.") for key, _ in state.items("tier.nas.")}
    # gone from everywhere: forgotten; the failure of a pruned local backup: forgotten too; copies held: kept.
    assert held == {ids["full"], ids["inc_old"], ids["inc_new"]}
