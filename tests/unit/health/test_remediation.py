"""Remediation planning: examples and properties over random failure sequences."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from maintd.config import Remediation
from maintd.health.remediation import (BUDGET_EXHAUSTED, RESTART, Memory, Observation, memory_from_json,
                                       memory_to_json, plan)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def obs(failed: bool, probe: str = "web", unit: str | None = "app") -> Observation:
    return Observation(probe, unit, failed)


def test_restart_only_after_n_consecutive_failures() -> None:
    policy = Remediation(failures_before_restart=3, max_restarts=5, window=3600)
    memory = Memory()
    kinds = []
    for minute, failed in enumerate([True, True, False, True, True, True]):
        result = plan([obs(failed)], memory, T0 + timedelta(minutes=minute), policy)
        memory = result.memory
        kinds.append([a.kind for a in result.actions])
    assert kinds == [[], [], [], [], [], [RESTART]]
    assert memory.failures == {"web": 0}
    assert memory.restarts == {"app": (T0 + timedelta(minutes=5),)}


def test_two_failing_probes_of_one_unit_make_one_restart() -> None:
    policy = Remediation(failures_before_restart=1)
    result = plan([obs(True, "web"), obs(True, "tcp"), obs(True, "other", "db")], Memory(), T0, policy)
    assert [(a.kind, a.unit, a.probes) for a in result.actions] == [
        (RESTART, "app", ("web", "tcp")), (RESTART, "db", ("other",))]


def test_budget_exhausted_then_refilled_after_the_window() -> None:
    policy = Remediation(failures_before_restart=1, max_restarts=2, window=600)
    memory = Memory()
    seen = []
    for minute in (0, 1, 2, 9, 10, 11):
        result = plan([obs(True)], memory, T0 + timedelta(minutes=minute), policy)
        memory = result.memory
        seen.append(result.actions[0].kind)
    # restarts at 0 and 1; at 10 the one from 0 has left the (10-minute) window, at 11 the one from 1 has too
    assert seen == [RESTART, RESTART, BUDGET_EXHAUSTED, BUDGET_EXHAUSTED, RESTART, RESTART]


def test_disabled_policy_counts_but_never_acts() -> None:
    policy = Remediation(enabled=False, failures_before_restart=1)
    result = plan([obs(True)], Memory(failures={"web": 4}), T0, policy)
    assert result.actions == () and result.memory.failures == {"web": 5}


def test_probe_without_unit_is_never_remediated() -> None:
    result = plan([obs(True, unit=None)], Memory(failures={"web": 10}), T0, Remediation(failures_before_restart=1))
    assert result.actions == ()


def test_zero_max_restarts_always_reports_exhausted() -> None:
    result = plan([obs(True)], Memory(), T0, Remediation(failures_before_restart=1, max_restarts=0))
    assert [a.kind for a in result.actions] == [BUDGET_EXHAUSTED]


def test_memory_round_trips_through_json_and_survives_damage() -> None:
    memory = Memory(failures={"web": 2}, restarts={"app": (T0, T0 + timedelta(seconds=5))})
    assert memory_from_json(memory_to_json(memory)) == memory
    assert memory_from_json(None) == Memory()
    assert memory_from_json({"failures": {"web": "x", "ok": 1}, "restarts": {"app": ["garbage"]}}) == Memory(
        failures={"ok": 1})


runs = st.lists(st.tuples(st.integers(min_value=0, max_value=900),  # seconds since the previous run
                          st.lists(st.booleans(), min_size=2, max_size=2)),  # failed? for probes a (app) and b (app)
                min_size=1, max_size=60)
policies = st.builds(Remediation, failures_before_restart=st.integers(1, 5), max_restarts=st.integers(0, 4),
                     window=st.sampled_from([60.0, 600.0, 3600.0]))


@settings(max_examples=300, deadline=None)
@given(runs=runs, policy=policies)
def test_properties_of_any_run_sequence(runs, policy: Remediation) -> None:
    memory = Memory()
    now = T0
    restarts: list[datetime] = []
    streak = {"a": 0, "b": 0}
    for gap, (fail_a, fail_b) in runs:
        now += timedelta(seconds=gap)
        observations = [Observation("a", "app", fail_a), Observation("b", "app", fail_b)]
        result = plan(observations, memory, now, policy)
        streak = {"a": streak["a"] + 1 if fail_a else 0, "b": streak["b"] + 1 if fail_b else 0}
        restarted = [a for a in result.actions if a.kind == RESTART]
        # A restart (or an exhausted budget) happens only when some probe reached the threshold.
        if result.actions:
            assert max(streak.values()) >= policy.failures_before_restart
            assert len(result.actions) == 1 and result.actions[0].unit == "app"
        elif max(streak.values()) >= policy.failures_before_restart:
            raise AssertionError("threshold reached but nothing planned")
        if restarted:
            restarts.append(now)
            streak = {"a": 0, "b": 0}
            assert result.memory.failures == {"a": 0, "b": 0}
        # Healthy checks reset their counter; counters are the streaks.
        assert dict(result.memory.failures) == streak
        # Never more than max_restarts inside any window ending at a restart.
        for moment in restarts:
            inside = [t for t in restarts if moment - timedelta(seconds=policy.window) < t <= moment]
            assert len(inside) <= policy.max_restarts
        memory = result.memory
