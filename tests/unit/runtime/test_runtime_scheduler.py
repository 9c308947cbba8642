"""The scheduler over real APScheduler machinery: calendar, catch-up, pause, misfire grace, reload."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from structlog.testing import capture_logs

from maintd.errors import ConfigError
from maintd.model import Outcome, Trigger
from maintd.runtime.scheduler import Scheduler, job_options, validate_schedules
from tests.support.waiting import wait_for

UTC = timezone.utc
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday

CALENDAR = {"jobs": {
    "ok-daily": {"job": "ok", "schedule": "0 2 * * *", "args": {"mode": "daily"}},
    "ok-weekly": {"job": "ok", "schedule": "0 1 * * 0"},
    "ok-off": {"job": "ok", "schedule": "0 3 * * *", "enabled": False},
    "future-job": {"job": "logreport", "schedule": "0 4 * * *"},
}}


@pytest.fixture
def make_scheduler(make_runner) -> Iterator:
    made: list[Scheduler] = []

    def make(extra=None, clock=lambda: NOW, runner=None):
        runner = runner or make_runner({**CALENDAR, **(extra or {})})
        scheduler = Scheduler(runner.settings, runner.state, runner, clock=clock)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown(wait=False)


def test_calendar_entries_become_jobs_with_stable_ids_and_our_options(make_scheduler):
    scheduler = make_scheduler({"daemon": {"misfire_grace": "2h"}})
    with capture_logs() as logs:
        scheduler.start()
    assert scheduler.alive()
    jobs = {job.id: job for job in scheduler.aps.get_jobs()}
    assert set(jobs) == {"ok-daily", "ok-weekly"}
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 7200)
    nexts = scheduler.next_runs()
    assert nexts["ok-off"] is None and nexts["future-job"] is None and nexts["health"] is None
    assert nexts["ok-daily"].hour == 2 and nexts["ok-weekly"].isoweekday() == 7
    assert [e["entry"] for e in logs if e["event"] == "schedule.unknown_job"] == ["future-job"]
    scheduler.shutdown()
    assert not scheduler.alive()


def test_first_start_is_recorded_once(make_scheduler):
    scheduler = make_scheduler()
    scheduler.start()
    assert scheduler.state.get("daemon.first_start") == NOW.isoformat()
    later = make_scheduler(runner=scheduler.runner, clock=lambda: NOW + timedelta(days=1))
    later.start()
    assert later.state.get("daemon.first_start") == NOW.isoformat()


def test_catch_up_after_downtime_runs_each_missed_entry_once(make_scheduler):
    first = make_scheduler(clock=lambda: NOW - timedelta(days=10))
    state = first.state
    state.put("daemon.first_start", (NOW - timedelta(days=10)).isoformat())
    state.put("schedule.last_fire.ok-daily", (NOW - timedelta(days=3)).isoformat())  # missed 3 fires
    state.put("schedule.last_fire.ok-weekly", (NOW - timedelta(days=1)).isoformat())  # Sunday not yet due
    scheduler = make_scheduler(runner=first.runner)
    assert scheduler.start() == ["ok-daily"]
    wait_for(lambda: state.last_run("ok"), message="catch-up run recorded")
    runs = state.history("ok")
    wait_for(lambda: state.last_run("ok").outcome is Outcome.SUCCEEDED, message="catch-up run finished")
    assert len(runs) == 1 and runs[0].trigger is Trigger.CATCHUP and runs[0].args["_entry"] == "ok-daily"
    assert runs[0].args["mode"] == "daily"
    assert state.get("schedule.last_fire.ok-daily") == NOW.isoformat()

    scheduler.shutdown()
    again = make_scheduler(runner=first.runner, clock=lambda: NOW + timedelta(minutes=5))
    assert again.start() == []  # once, never more


def test_catch_up_can_be_turned_off(make_scheduler):
    scheduler = make_scheduler({"daemon": {"catch_up": False}})
    scheduler.state.put("schedule.last_fire.ok-daily", (NOW - timedelta(days=3)).isoformat())
    assert scheduler.start() == []
    assert scheduler.state.history() == []


def test_paused_entry_is_skipped_but_its_fire_recorded(make_scheduler):
    scheduler = make_scheduler()
    scheduler.state.set_paused("ok-daily", True)
    with capture_logs() as logs:
        assert scheduler.fire("ok-daily") is None
    assert [e["event"] for e in logs] == ["schedule.skipped_paused"]
    assert scheduler.state.get("schedule.last_fire.ok-daily") == NOW.isoformat()
    scheduler.state.set_paused("ok-daily", False)
    scheduler.state.set_paused("*", True)
    assert scheduler.fire("ok-weekly") is None
    scheduler.state.set_paused("*", False)
    handle = scheduler.fire("ok-weekly")
    assert handle.wait(5).trigger is Trigger.SCHEDULE
    assert scheduler.state.history()[0].run_id == handle.run_id


def test_fire_while_the_entry_still_runs_is_skipped(make_scheduler, jobs):
    scheduler = make_scheduler({"jobs": {**CALENDAR["jobs"], "slow-hourly": {"job": "slow", "schedule": "0 * * * *"}}})
    first = scheduler.fire("slow-hourly")
    assert jobs.gate.entered.wait(5)
    with capture_logs() as logs:
        assert scheduler.fire("slow-hourly") is None
    assert logs[0]["event"] == "schedule.skipped_running" and logs[0]["run_id"] == first.run_id
    jobs.gate.opened.set()
    assert first.wait(5).outcome is Outcome.SUCCEEDED


def test_fire_never_raises_even_when_the_runner_refuses(make_scheduler):
    scheduler = make_scheduler()
    scheduler.runner.stop(1)
    with capture_logs() as logs:
        assert scheduler.fire("ok-daily") is None
    assert logs[-1]["event"] == "schedule.start_failed" and "stopping" in logs[-1]["error"]


def test_apscheduler_fire_reaches_the_runner(make_scheduler):
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.aps.modify_job("ok-weekly", next_run_time=datetime.now(UTC))  # due now, through the real loop
    wait_for(lambda: scheduler.state.last_run("ok"), message="scheduled run")
    wait_for(lambda: scheduler.state.last_run("ok").outcome is Outcome.SUCCEEDED, message="run finished")
    record = scheduler.state.last_run("ok")
    assert record.trigger is Trigger.SCHEDULE and record.args["_entry"] == "ok-weekly"
    assert scheduler.next_runs()["ok-weekly"] > datetime.now(UTC)


def test_misfire_grace_runs_late_fires_within_grace_and_skips_later_ones(settings):
    options = job_options(settings({"daemon": {"misfire_grace": "3s"}}))
    assert options == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3}
    ran, missed = [], []
    done = threading.Event()
    aps = BackgroundScheduler(timezone=UTC)

    def listener(event):
        (ran if event.code == EVENT_JOB_EXECUTED else missed).append(event.job_id)
        if len(ran) + len(missed) == 2:
            done.set()

    aps.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    now = datetime.now(UTC)
    aps.add_job(lambda: None, "date", run_date=now - timedelta(seconds=1), id="late-within-grace", **options)
    aps.add_job(lambda: None, "date", run_date=now - timedelta(seconds=30), id="late-beyond-grace", **options)
    aps.start()
    try:
        assert done.wait(10)
    finally:
        aps.shutdown()
    assert ran == ["late-within-grace"] and missed == ["late-beyond-grace"]


def test_reload_reschedules_in_place_and_refuses_bad_expressions(make_scheduler, settings, jobs):
    scheduler = make_scheduler()
    scheduler.start()
    weekly_next = scheduler.next_runs()["ok-weekly"]
    changed = settings({"jobs": {"ok-daily": {"job": "ok", "schedule": "30 5 * * *"},
                                 "ok-weekly": {"job": "ok", "schedule": "0 1 * * 0"}}})
    scheduler.reload(changed)
    nexts = scheduler.next_runs()
    assert (nexts["ok-daily"].hour, nexts["ok-daily"].minute) == (5, 30)
    assert nexts["ok-weekly"] == weekly_next
    assert {job.id for job in scheduler.aps.get_jobs()} == {"ok-daily", "ok-weekly"}

    bad = settings({"jobs": {"ok-daily": {"job": "ok", "schedule": "0 25 * * *"}}})
    with pytest.raises(ConfigError, match="jobs.ok-daily.schedule"):
        scheduler.reload(bad)
    assert (scheduler.next_runs()["ok-daily"].hour, scheduler.settings is changed) == (5, True)

    scheduler.reload(settings({}))  # the test base calendar schedules nothing
    assert scheduler.aps.get_jobs() == []


def test_validate_schedules_lists_every_bad_expression(settings):
    config = settings({"jobs": {"health": {"schedule": "0 2 * * 9"}, "cleanup": {"schedule": "61 0 * * *"},
                                "verify": {"schedule": "0 6 * * sun"}}})
    problems = validate_schedules(config)
    assert len(problems) == 2
    assert problems[0].startswith("jobs.health.schedule:") and problems[1].startswith("jobs.cleanup.schedule:")
