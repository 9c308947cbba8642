"""Each recovery mode against a real tree, a real redis-server (plain and append-only) and the stand-in app, all
driven through the `command` service manager."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from maintd.jobs import registry
from maintd.model import Outcome
from maintd.runtime.notify import Notifier
from maintd.runtime.runner import Runner
from tests.support.gpg_home import PASSPHRASE
from tests.support.trees import differences, snapshot

Make = Callable[..., Any]


def _fill(stack: Any, keys: int = 40) -> dict:
    data, conf = stack.rig.data, stack.rig.conf
    (data / "messages").mkdir(exist_ok=True)
    for i in range(15):
        (data / "messages" / f"{i}.json").write_text(json.dumps({"id": i, "text": "hello " * i}))
    (data / "state.db").write_bytes(bytes(range(256)) * 40)
    (data / "empty-queue").mkdir(exist_ok=True)
    (conf / "app.toml").write_text('token_file = "/etc/x"\nport = 8080\n')
    (conf / "app.toml").chmod(0o640)
    client = stack.redis.client()
    for i in range(keys):
        client.set(f"msg:{i}", f"value {i}")
    client.rpush("queue", *range(10))
    return {"data": snapshot(data, skip=("cache",)), "conf": snapshot(conf), "app": snapshot(stack.rig.root / "app")}


def _notified(stack: Any) -> list[dict]:
    log = stack.app.notify_log
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _report(record: Any) -> str:
    return "\n".join(record.data["report"])


@pytest.mark.parametrize("appendonly", [False, True], ids=["rdb", "appendonly"])
def test_recover_data_brings_back_the_files_and_the_keys(make_stack: Make, appendonly: bool) -> None:
    stack = make_stack(appendonly=appendonly)
    expected = _fill(stack)
    stack.rig.backup("full")
    shutil.rmtree(stack.rig.data)
    stack.rig.data.mkdir()  # data loss: the dir wiped, Redis flushed
    stack.redis.client().flushall()
    app_pid = stack.app.pid()

    record = stack.rig.run("recover", mode="data")

    assert record.outcome is Outcome.SUCCEEDED, _report(record)
    assert differences(expected["data"], snapshot(stack.rig.data)) == []
    assert stack.redis.client().dbsize() == 41
    assert record.data["redis"]["found"] == {"db0": 41} and record.data["met"] is True
    assert record.summary.startswith("recovered data in ") and record.summary.endswith("(objective 30 min): met")
    assert stack.app.pid() != app_pid and stack.app.healthy()  # restarted, healthy
    assert _notified(stack)[-1]["title"] == "maintd recovery test"  # the function test reached the app
    report = _report(record)
    assert report.index("stop app") < report.index("place the RDB") < report.index("start app")
    assert not list(stack.rig.root.glob("data.pre-restore.*"))  # the wiped (empty) dir is not kept
    if appendonly:  # the AOF was seeded from the snapshot: a plain restart keeps the keys
        stack.redis.stop()
        stack.redis.start()
        assert stack.redis.client().dbsize() == 41


def test_recover_service_restarts_in_order_and_fails_while_the_app_stays_unhealthy(make_stack: Make) -> None:
    stack = make_stack(extra={"services": {"start_timeout": 2}})
    stack.app.fail_flag.write_text("broken")  # the app answers 503 whatever is restarted
    stack.redis.stop()
    failed = stack.rig.run("recover", ok=False, mode="service")
    assert failed.outcome is Outcome.FAILED and "health app" in failed.summary
    assert failed.data["rto_s"] > 0 and failed.data["health"][0]["ok"] is False  # the report survives
    assert stack.redis.active()

    stack.app.fail_flag.unlink()
    stack.app.stop()
    stack.redis.stop()
    record = stack.rig.run("recover", mode="service")
    assert record.outcome is Outcome.SUCCEEDED, _report(record)
    assert stack.app.healthy() and stack.redis.active()
    report = _report(record)
    assert report.index("stop app") < report.index("make sure redis runs") < report.index("start app")
    assert "redis was not running: started" in report
    assert record.summary.endswith("(objective 5 min): met") and record.data["backup"] is None


def test_recover_configuration_with_the_key_inside_the_replaced_tree(make_stack: Make, tmp_path: Path) -> None:
    key = tmp_path / "conf" / "backup.passphrase"
    key.parent.mkdir(exist_ok=True)
    key.write_text(PASSPHRASE + "\n")
    key.chmod(0o600)
    stack = make_stack(extra={"backup": {"passphrase_file": str(key)}})
    expected = _fill(stack)
    stack.rig.backup("full")
    (stack.rig.conf / "app.toml").write_text("garbage{{{")
    (stack.rig.conf / "extra.toml").write_text("left by a bad deploy")
    app_pid = stack.app.pid()

    record = stack.rig.run("recover", mode="configuration")

    assert record.outcome is Outcome.SUCCEEDED, _report(record)
    assert differences(expected["conf"], snapshot(stack.rig.conf)) == []
    broken = list(tmp_path.glob("conf.broken.*"))
    assert len(broken) == 1 and (broken[0] / "app.toml").read_text() == "garbage{{{"
    assert stack.app.pid() != app_pid and _notified(stack)
    assert f"using {record.data['backup']} (taken " in _report(record)
    assert record.summary.endswith("(objective 15 min): met")


def test_recover_full_rebuilds_everything_with_the_key_moved_away_midway(make_stack: Make, tmp_path: Path) -> None:
    key = tmp_path / "conf" / "backup.passphrase"
    key.parent.mkdir(exist_ok=True)
    key.write_text(PASSPHRASE + "\n")
    stack = make_stack(extra={"backup": {"passphrase_file": str(key)}})
    expected = _fill(stack)
    stack.rig.backup("full")
    (stack.rig.data / "messages" / "3.json").write_text("newer")
    stack.rig.backup("incremental")
    expected["data"] = snapshot(stack.rig.data, skip=("cache",))
    shutil.rmtree(stack.rig.data)
    (stack.rig.root / "app" / "VERSION").unlink()
    stack.redis.client().flushall()
    # The configuration (holding the key) is swapped before data and Redis are decrypted: the key must already
    # be in memory by then.
    record = stack.rig.run("recover", mode="full")
    assert record.outcome is Outcome.SUCCEEDED, _report(record)
    assert differences(expected["data"], snapshot(stack.rig.data)) == []
    assert differences(expected["conf"], snapshot(stack.rig.conf)) == []
    assert differences(expected["app"], snapshot(stack.rig.root / "app")) == []
    assert stack.redis.client().dbsize() == 41 and stack.app.healthy()
    assert record.data["backup"].endswith("-incremental")
    report = _report(record)
    assert report.index("restore config") < report.index("restore data") < report.index("place the RDB")
    assert record.summary.startswith("recovered the full system in ")


def test_a_dry_run_or_a_damaged_backup_leaves_the_running_service_alone(make_stack: Make) -> None:
    stack = make_stack()
    _fill(stack)
    backup_id = stack.rig.backup("full")
    (stack.rig.data / "new.txt").write_text("after the backup")
    app_pid = stack.app.pid()

    dry = stack.rig.run("recover", mode="data", dry_run=True)
    assert dry.data["dry_run"] is True and dry.data["previews"][0]["removed"] == 1
    assert any("place the backup's RDB" in step for step in dry.data["steps"])
    assert (stack.rig.data / "new.txt").exists() and stack.app.pid() == app_pid

    archive = next((stack.rig.root / "backups" / backup_id).glob("data.tar.*"))
    archive.write_bytes(archive.read_bytes()[:-100])
    failed = stack.rig.run("recover", ok=False, mode="data")
    assert failed.outcome is Outcome.FAILED and archive.name in failed.summary
    assert stack.app.pid() == app_pid and stack.redis.client().dbsize() == 41  # checked before stopping anything
    assert not list(stack.rig.root.glob("data.pre-restore.*"))


def test_a_successful_recovery_is_notified_with_its_measured_time(make_stack: Make, tmp_path: Path) -> None:
    url_file = tmp_path / "webhook.url"
    stack = make_stack(extra={"notify": {"webhook_url_file": str(url_file)}})
    url_file.write_text(f"http://127.0.0.1:{stack.app.port}/notify\n")  # the stand-in app logs what it gets
    notifier = Notifier(stack.rig.settings)
    runner = Runner(stack.rig.settings, stack.rig.state, registry(), notifier=notifier)
    record = runner.run_sync("recover", args={"mode": "service"})
    assert record.outcome is Outcome.SUCCEEDED and "succeeded" not in stack.rig.settings.notify.on
    assert notifier.flush(10)
    runner.stop(5)
    posted = [m for m in _notified(stack) if m.get("job") == "recover"]
    assert posted and posted[-1]["outcome"] == "succeeded" and "(objective 5 min): met" in posted[-1]["summary"]
