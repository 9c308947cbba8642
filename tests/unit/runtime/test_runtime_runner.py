"""The runner: outcomes, locks, timeout, events, stop, one job.finished per run."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

from maintd.errors import BusyError, NotFoundError, UnavailableError, UsageError
from maintd.model import Outcome, Trigger
from maintd.runtime import locks
from tests.support.waiting import wait_for


def test_succeeded_run_is_recorded_with_entry_and_args(make_runner):
    runner = make_runner()
    record = runner.run_sync("ok", args={"count": "3"})
    assert record.outcome is Outcome.SUCCEEDED
    assert record.summary == "all fine"
    assert record.data["args"] == {"count": 3}
    stored = runner.state.get_run(record.run_id)
    assert stored.outcome is Outcome.SUCCEEDED
    assert stored.args == {"count": 3, "_entry": "ok"}
    assert stored.finished is not None and stored.finished >= stored.started


def test_calendar_entry_supplies_job_default_args_and_timeout(make_runner):
    runner = make_runner({"jobs": {"ok-nightly": {"job": "ok", "args": {"mode": "full", "count": 1},
                                                  "timeout": "90s"}}})
    handle = runner.start("ok-nightly", args={"count": 7})
    record = handle.wait(10)
    assert handle.job == "ok" and handle.entry == "ok-nightly" and handle.timeout_s == 90
    assert record.data["args"] == {"mode": "full", "count": 7}  # caller's args over the entry's
    assert record.args["_entry"] == "ok-nightly"


def test_job_name_takes_timeout_of_first_entry_running_it(make_runner):
    runner = make_runner({"jobs": {"ok-a": {"job": "ok", "timeout": 120, "args": {"mode": "x"}}}})
    handle = runner.start("ok")
    assert handle.timeout_s == 120
    assert handle.wait(10).data["args"] == {}  # not the entry's args


def test_unknown_entry_and_bad_args_are_refused_before_anything_runs(make_runner):
    runner = make_runner()
    with pytest.raises(NotFoundError, match="nope"):
        runner.start("nope")
    with pytest.raises(UsageError, match="count must be a number"):
        runner.start("ok", args={"count": "many"})
    with pytest.raises(NotFoundError, match="does not have"):
        runner.start("health")  # a calendar entry whose job this registry lacks
    assert runner.state.history() == []


def test_warnings_from_result_and_context_make_warning_outcome(make_runner):
    record = make_runner().run_sync("warn")
    assert record.outcome is Outcome.WARNING
    assert record.data["warnings"] == ["file changed while read", "disk almost full"]


def test_maintd_error_is_failed_with_its_message(make_runner):
    record = make_runner().run_sync("fail")
    assert record.outcome is Outcome.FAILED
    assert record.error == "no space left on /backups"
    assert record.summary == "no space left on /backups"


def test_bug_is_crashed_with_traceback_and_runner_keeps_serving(make_runner):
    runner = make_runner()
    with capture_logs() as logs:
        record = runner.run_sync("crash")
    assert record.outcome is Outcome.CRASHED
    assert "Traceback" in record.error and "KeyError: 'missing'" in record.error
    crashed = [e for e in logs if e["event"] == "job.crashed"]
    assert len(crashed) == 1 and crashed[0]["exc_info"] is not None
    assert runner.run_sync("ok").outcome is Outcome.SUCCEEDED


def test_timeout_cancels_the_job_and_records_timeout(make_runner):
    runner = make_runner({"jobs": {"slow-short": {"job": "slow", "timeout": 0.2}}})
    record = runner.start("slow-short").wait(10)
    assert record.outcome is Outcome.TIMEOUT
    assert "timed out after 0.2s" in record.summary
    assert record.duration_s < 5


def test_job_ignoring_cancel_is_recorded_timeout_after_grace(make_runner, jobs):
    runner = make_runner({"jobs": {"stubborn": {"timeout": 0.1}}}, cancel_grace_s=0.2)
    with capture_logs() as logs:
        handle = runner.start("stubborn")
        record = handle.wait(10)
    assert record.outcome is Outcome.TIMEOUT
    assert "did not stop within" in record.summary
    assert [e["event"] for e in logs].count("job.abandoned") == 1
    jobs.stubborn_release.set()  # the left-behind thread ends later; it must not record a second outcome
    wait_for(lambda: not handle.thread.is_alive(), timeout=5, message="stubborn thread ends")
    assert runner.state.get_run(record.run_id).outcome is Outcome.TIMEOUT
    assert sum(e["event"] == "job.finished" for e in logs) == 1


def test_stop_interrupts_running_runs_and_refuses_new_ones(make_runner, jobs):
    runner = make_runner()
    handle = runner.start("slow")
    assert jobs.gate.entered.wait(5)
    assert runner.stop(5) is True
    assert handle.wait(0).outcome is Outcome.INTERRUPTED
    assert runner.state.get_run(handle.run_id).outcome is Outcome.INTERRUPTED
    with pytest.raises(UnavailableError, match="daemon is stopping"):
        runner.start("ok")


def test_stop_records_interrupted_even_when_the_job_does_not_end(make_runner, jobs):
    runner = make_runner()
    handle = runner.start("stubborn")
    wait_for(lambda: handle.phase == "running", message="stubborn running")
    assert runner.stop(0.2) is False
    assert handle.wait(0).outcome is Outcome.INTERRUPTED
    assert runner.state.get_run(handle.run_id).outcome is Outcome.INTERRUPTED
    jobs.stubborn_release.set()


def test_held_lock_makes_start_busy_naming_the_holder(make_runner, jobs):
    runner = make_runner()
    first = runner.start("slow")
    assert jobs.gate.entered.wait(5)
    with pytest.raises(BusyError) as caught:
        runner.start("slow")
    assert first.run_id in str(caught.value) and "job slow" in str(caught.value)
    jobs.gate.opened.set()
    assert first.wait(5).outcome is Outcome.SUCCEEDED
    jobs.gate.opened.clear()


def test_jobs_sharing_a_lock_name_exclude_each_other(make_runner, jobs):
    runner = make_runner()
    runner.start("slow")
    assert jobs.gate.entered.wait(5)
    with pytest.raises(BusyError, match="'target'"):
        runner.start("other")
    assert runner.run_sync("ok").outcome is Outcome.SUCCEEDED  # no shared lock: runs alongside


def test_wait_for_locks_starts_once_the_holder_ends(make_runner, jobs):
    runner = make_runner()
    first = runner.start("slow")
    assert jobs.gate.entered.wait(5)
    second = runner.start("other", wait_for_locks=True, trigger=Trigger.SCHEDULE)
    assert second.phase == "waiting" and not jobs.gate2.entered.wait(0.3)
    assert runner.state.get_run(second.run_id) is None  # not recorded while waiting
    jobs.gate.opened.set()
    assert jobs.gate2.entered.wait(5)
    jobs.gate2.opened.set()
    record = second.wait(5)
    assert record.outcome is Outcome.SUCCEEDED and record.trigger is Trigger.SCHEDULE
    assert record.started >= first.wait(0).finished


def test_run_waiting_for_locks_is_cancellable(make_runner, jobs):
    runner = make_runner()
    runner.start("slow")
    assert jobs.gate.entered.wait(5)
    waiting = runner.start("other", wait_for_locks=True)
    waiting.cancel()
    record = waiting.wait(5)
    assert record.outcome is Outcome.INTERRUPTED and "waiting for locks" in record.summary
    assert not jobs.gate2.entered.is_set()


def test_lock_taken_by_another_process_makes_start_busy(make_runner):
    runner = make_runner()
    held = locks.try_acquire(runner.locks_dir, "target", {"run_id": "outside", "job": "restore"})
    try:
        with pytest.raises(BusyError, match="run outside, job restore"):
            runner.start("slow")
    finally:
        held.release()
    assert runner.start("ok").wait(5).outcome is Outcome.SUCCEEDED


def test_subscribers_get_progress_steps_and_warnings_and_late_ones_the_latest_progress(make_runner, jobs):
    runner = make_runner()
    seen: list[dict] = []
    handle = runner.start("slow")
    handle.subscribe(seen.append)
    assert jobs.gate.entered.wait(5)
    wait_for(lambda: seen, message="progress delivered")
    late: list[dict] = []
    handle.subscribe(late.append)
    assert late == [seen[0]] and late[0]["event"] == "progress" and late[0]["done_files"] == 1
    assert handle.snapshot()["progress"]["phase"] == "working"
    jobs.gate.opened.set()
    handle.wait(5)
    assert [e["event"] for e in seen] == ["progress", "step", "progress"]
    assert seen[1]["step"] == "second-half" and seen[1]["run_id"] == handle.run_id



def test_warnings_reach_subscribers_as_events(make_runner, jobs):
    from maintd.jobs.base import JobResult, JobSpec
    go = threading.Event()

    def warns_later(ctx, args):
        go.wait(5)
        ctx.warn("disk almost full", free_bytes=10)
        return JobResult("done")

    jobs.specs["warns-later"] = JobSpec(name="warns-later", run=warns_later, description="")
    runner = make_runner()
    warned: list[dict] = []
    handle = runner.start("warns-later")
    handle.subscribe(warned.append)
    go.set()
    assert handle.wait(5).outcome is Outcome.WARNING
    assert warned == [{"event": "warning", "run_id": handle.run_id, "job": "warns-later",
                       "message": "disk almost full", "free_bytes": 10}]


def test_broken_subscriber_is_dropped_without_harming_the_run(make_runner, jobs):
    runner = make_runner()
    handle = runner.start("slow")

    def broken(event: dict) -> None:
        raise BrokenPipeError("client went away")

    handle.subscribe(broken)
    jobs.gate.opened.set()
    assert handle.wait(5).outcome is Outcome.SUCCEEDED


def test_exactly_one_started_and_finished_line_per_run_with_context(make_runner):
    runner = make_runner()
    with capture_logs() as logs:
        records = [runner.run_sync(name) for name in ("ok", "warn", "fail", "crash")]
    for record in records:
        mine = [e for e in logs if e.get("run_id") == record.run_id]
        finished = [e for e in mine if e["event"] == "job.finished"]
        assert [e["event"] for e in mine].count("job.started") == 1
        assert len(finished) == 1
        line = finished[0]
        assert line["job"] == record.job and line["outcome"] == record.outcome.value
        assert line["trigger"] == "manual" and line["summary"] == record.summary
        assert isinstance(line["duration_s"], float)


def test_injected_clock_stamps_the_record(make_runner):
    moments = iter(datetime(2026, 1, 1, 12, tzinfo=timezone.utc) + timedelta(seconds=s) for s in range(100))
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return next(moments)

    record = make_runner(clock=clock).run_sync("ok")
    assert record.started.year == 2026 and record.duration_s > 0
    assert record.run_id.split("-")[0] == format(int(datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
                                                       .timestamp() * 1000) >> 16, "08x")


def test_recover_stale_marks_leftover_running_runs_interrupted(make_runner):
    from maintd.model import RunRecord
    runner = make_runner()
    runner.state.record_start(RunRecord(run_id="dead", job="ok", trigger=Trigger.MANUAL,
                                        started=datetime.now(timezone.utc)))
    assert runner.recover_stale() == ["dead"]
    assert runner.state.get_run("dead").outcome is Outcome.INTERRUPTED


def test_history_is_trimmed_after_each_run(make_runner):
    runner = make_runner({"daemon": {"history_keep": 10}})
    for _ in range(13):
        runner.run_sync("ok")
    assert len(runner.state.history(limit=100)) == 10


def test_services_come_from_the_factory_with_the_runs_cancel_event(make_runner, jobs):
    built: list = []

    def factory(settings, cancel):
        built.append(cancel)
        return "service-manager"

    from maintd.jobs.base import JobResult, JobSpec
    jobs.specs["svc"] = JobSpec(name="svc", run=lambda ctx, a: JobResult(str(ctx.services)), description="")
    runner = make_runner(services_factory=factory)
    handle = runner.start("svc")
    assert handle.wait(5).summary == "service-manager"
    assert built == [handle.cancel_event]


def test_on_change_and_notifier_failures_never_fail_the_run(make_runner):
    class BrokenNotifier:
        def run_started(self, handle):
            raise RuntimeError("webhook down")

        def run_finished(self, record):
            raise RuntimeError("webhook down")

    calls: list[int] = []
    runner = make_runner(notifier=BrokenNotifier(), on_change=lambda: calls.append(1))
    with capture_logs() as logs:
        assert runner.run_sync("ok").outcome is Outcome.SUCCEEDED
    assert len(calls) == 2
    assert [e["event"] for e in logs].count("notify.failed") == 2
