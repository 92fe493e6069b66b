"""The adaptive poll schedule as plain arithmetic: floor, deadline, monotonic gaps, no history,
the back-off cap after failed polls, exact window and gap values."""

from __future__ import annotations

import itertools
import math

import pytest

from airflow_provider_flowruns.core.history import durations_from_xcom, vendor_durations
from airflow_provider_flowruns.core.schedule import (
    DENSE_LEAD,
    EARLY_MAX_GAP,
    HIGH_Z,
    LOW_Z,
    MIN_HISTORY,
    MIN_SIGMA,
    ExpectedDuration,
    PollSchedule,
    backoff_cap,
    expected_duration,
)

HABU_FLOOR = 300.0


def poll_times(schedule: PollSchedule, *, start: float, until: float) -> list[float]:
    """Seconds after ``start`` at which the schedule polls (first poll at ``start``)."""
    times, now = [0.0], start
    while now - start < until:
        now += schedule.next_delay(now)
        times.append(now - start)
    return times


def test_no_or_too_little_history_means_fixed():
    assert expected_duration([]) is None
    assert expected_duration([600.0] * (MIN_HISTORY - 1)) is None
    assert expected_duration([0, -5, float("nan"), "x"]) is None  # type: ignore[list-item]
    sched = PollSchedule.adaptive(900, HABU_FLOOR, started_at=0.0, expected=None)
    assert not sched.is_adaptive
    assert sched.next_delay(12345.0) == 900


def test_unknown_start_means_fixed():
    sched = PollSchedule.adaptive(
        300, HABU_FLOOR, started_at=None, expected=ExpectedDuration(3000, 4000, samples=5)
    )
    assert not sched.is_adaptive and sched.next_delay(0) == 300


def test_expected_window_brackets_the_history():
    history = [3600 * math.exp(0.1 * k) for k in range(-3, 4)]
    expected = expected_duration(history)
    assert expected is not None and expected.samples == 7
    assert expected.low < min(history) <= max(history) < expected.high


@pytest.mark.parametrize("interval", [300.0, 900.0])
def test_never_under_the_floor_and_dense_from_one_lead_after_the_window_opens(interval):
    expected = ExpectedDuration(low=3000.0, high=5000.0, samples=10)
    sched = PollSchedule.adaptive(interval, HABU_FLOOR, started_at=1000.0, expected=expected)
    times = poll_times(sched, start=1000.0, until=20000)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= HABU_FLOOR
    # before the window: one gap straight to where dense polling starts (under an hour away), not
    # a poll at the window's edge, where the run is almost always still running
    dense_from = expected.low + DENSE_LEAD * interval
    assert times[1] == min(dense_from, EARLY_MAX_GAP) and dense_from in times and expected.low not in times
    assert all(t in (min(dense_from, EARLY_MAX_GAP), dense_from) for t in times[1:] if t <= dense_from)
    # then every ``interval`` up to the window's end
    inside = [b - a for a, b in itertools.pairwise(times) if dense_from <= a < expected.high - interval]
    assert inside and all(g == interval for g in inside)


def test_early_gaps_are_at_most_an_hour():
    # a window that opens 5 h after the start: a poll every hour until then (a run that fails early
    # is noticed within the hour), landing exactly where dense polling starts
    sched = PollSchedule.adaptive(300, HABU_FLOOR, started_at=0.0, expected=ExpectedDuration(18000, 20000, 5))
    times = poll_times(sched, start=0.0, until=18500)
    assert times[:8] == [0.0, 3600.0, 7200.0, 10800.0, 14400.0, 18000.0, 18000.0 + 330.0, 18630.0]
    assert EARLY_MAX_GAP == 3600.0
    # an interval longer than an hour is never shortened by it
    slow = PollSchedule.adaptive(7200, HABU_FLOOR, started_at=0.0, expected=ExpectedDuration(36000, 40000, 5))
    assert slow.next_delay(0.0) == 7200.0


def test_gaps_grow_monotonically_once_overdue():
    sched = PollSchedule.adaptive(
        300, HABU_FLOOR, started_at=0.0, expected=ExpectedDuration(600, 1200, samples=5)
    )
    times = poll_times(sched, start=0.0, until=40000)
    overdue = [b - a for a, b in itertools.pairwise(times) if a > 1200]
    assert overdue == sorted(overdue)
    assert overdue[-1] == sched.sparse_interval


def test_a_tiny_floor_is_still_respected_with_a_tiny_window():
    sched = PollSchedule.adaptive(
        10, 10, started_at=0.0, expected=ExpectedDuration(low=1.0, high=2.0, samples=3)
    )
    assert all(sched.next_delay(t) >= 10 for t in (0.0, 0.5, 1.5, 2.5, 100.0))


def test_round_trips_as_plain_numbers():
    sched = PollSchedule.adaptive(
        300, HABU_FLOOR, started_at=17.0, expected=ExpectedDuration(1.0, 2.0, samples=3)
    )
    data = sched.to_dict()
    assert all(v is None or isinstance(v, float | int) for v in data.values())
    assert PollSchedule.from_dict(data) == sched


def test_history_parsing():
    assert durations_from_xcom(None) == []
    assert durations_from_xcom({"at": 1, "seconds": 5}) == [5.0]
    records = [
        {"at": 1, "seconds": 5},
        {"at": 3, "seconds": 7.5},
        {"seconds": -1},
        "x",
        {"at": 2, "seconds": 6},
    ]
    assert durations_from_xcom(records) == [7.5, 6.0, 5.0]
    runs = [
        {"status": "COMPLETED", "submittedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T01:00:00Z"},
        {"status": "FAILED", "submittedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:01:00Z"},
        {"status": "COMPLETED", "submittedAt": "2026-01-01T00:00:00Z", "completedAt": None},
    ]
    assert vendor_durations(runs, start="submittedAt", end="completedAt", succeeded={"COMPLETED"}) == [3600.0]


# -- what the trigger actually sleeps: next_gap (jitter, back-off after failed polls, floor) ----------
@pytest.mark.parametrize(
    ("interval", "cap"), [(60.0, 480.0), (300.0, 1200.0), (900.0, 1800.0), (3600.0, 4500.0)]
)
def test_back_off_after_failed_polls_is_capped_at_min_8x_and_15_minutes_more(interval, cap):
    assert backoff_cap(interval) == cap
    sched = PollSchedule.fixed(interval, 10.0)
    gaps = [sched.next_gap(0.0, failures=f) for f in range(8)]
    assert gaps[0] == interval
    assert gaps == [min(interval * 2**f, cap) for f in range(8)]
    assert sched.next_gap(0.0, failures=10_000) == cap  # a long outage: no overflow, still the cap
    # jitter spreads the herd but never takes a backed-off gap past the cap
    assert sched.next_gap(0.0, jitter=1.1, failures=20) == cap


def test_back_off_doubles_from_the_gap_the_schedule_would_use():
    # 60 s dense gap, first back-off step 120 s, third 480 s = cap (8 x 60 < 60 + 900)
    sched = PollSchedule.fixed(60.0, 10.0)
    assert [sched.next_gap(0.0, failures=f) for f in (1, 2, 3, 4)] == [120.0, 240.0, 480.0, 480.0]
    # an early gap of 1000 s (the window opens 725 s after ``now``, plus the lead) backs off to at
    # most 1900 s (1000 + 15 min), never below 1000
    early = PollSchedule.adaptive(250.0, 10.0, started_at=0.0, expected=ExpectedDuration(1000, 6000, 5))
    assert early.next_delay(0.0) == 1275.0
    assert early.next_delay(275.0) == 1000.0
    assert [early.next_gap(275.0, failures=f) for f in (0, 1, 2)] == [1000.0, 1900.0, 1900.0]


def test_back_off_and_jitter_never_go_under_the_floor():
    sched = PollSchedule.fixed(HABU_FLOOR, HABU_FLOOR)
    assert sched.next_gap(0.0, jitter=0.9) == HABU_FLOOR  # 270 s without the clamp
    assert sched.next_gap(0.0, jitter=1.1) == pytest.approx(330.0)
    assert sched.next_gap(0.0, jitter=0.9, failures=1) == pytest.approx(540.0)
    # a schedule whose interval sits under the floor (built by hand) is still clamped
    assert PollSchedule(interval=5.0, floor=10.0).next_gap(0.0, jitter=0.9) == 10.0


# -- adaptive windows: exact values ------------------------------------------------------------------
def test_exactly_min_history_identical_runs_get_a_widened_minimum_window():
    expected = expected_duration([600.0] * MIN_HISTORY)
    assert expected is not None and expected.samples == MIN_HISTORY
    sigma = MIN_SIGMA * (1 + 1 / MIN_HISTORY)  # the floor on the spread, widened for 3 samples
    assert expected.low == pytest.approx(600.0 * math.exp(-LOW_Z * sigma), rel=1e-12)
    assert expected.high == pytest.approx(600.0 * math.exp(HIGH_Z * sigma), rel=1e-12)
    assert (round(expected.low, 2), round(expected.high, 2)) == (511.29, 732.84)


def test_a_small_sample_widens_its_window():
    history = [500.0, 600.0, 700.0]
    logs = [math.log(v) for v in history]
    mu = sum(logs) / 3
    sd = math.sqrt(sum((x - mu) ** 2 for x in logs) / 2)
    expected = expected_duration(history)
    assert expected is not None
    widened = sd * (1 + 1 / 3)
    assert expected.low == pytest.approx(math.exp(mu - LOW_Z * widened), rel=1e-12)
    assert expected.high == pytest.approx(math.exp(mu + HIGH_Z * widened), rel=1e-12)
    assert (round(expected.low), round(expected.high)) == (347, 1166)


def test_a_start_in_the_future_counts_as_just_started():
    # vendor clock ahead of ours: now is 100 s before the run's start; the first gap still lands
    # where dense polling starts (600 s + 1.1 x 300 s after start), not 100 s after it
    sched = PollSchedule.adaptive(300, HABU_FLOOR, started_at=1000.0, expected=ExpectedDuration(600, 900, 5))
    assert sched.sparse_interval == 1200.0
    assert sched.next_delay(900.0) == 930.0


def test_overdue_gaps_never_go_under_the_interval_and_widen_by_a_quarter_of_the_overrun():
    sched = PollSchedule.adaptive(900, HABU_FLOOR, started_at=0.0, expected=ExpectedDuration(1000, 2000, 5))
    assert sched.sparse_interval == 3600.0
    assert sched.next_delay(2400.0) == 900.0  # overrun 400 s: 100 s, raised to the interval (not the floor)
    assert sched.next_delay(10000.0) == 2000.0  # overrun 8000 s: a quarter of it
    assert sched.next_delay(30000.0) == 3600.0  # then the sparse gap at most


def test_from_dict_ignores_unknown_keys_and_defaults_missing_ones():
    sched = PollSchedule.adaptive(300, HABU_FLOOR, started_at=17.0, expected=ExpectedDuration(1, 2, 3))
    # a newer release added a field: this triggerer still loads the schedule
    assert PollSchedule.from_dict({**sched.to_dict(), "future_field": 1}) == sched
    # an older release wrote fewer fields: the missing ones take their defaults
    assert PollSchedule.from_dict({"interval": 60}) == PollSchedule(interval=60.0)
    assert PollSchedule.from_dict({"interval": 60, "floor": 10}).next_delay(0.0) == 60.0


def test_only_positive_finite_durations_count_and_sub_second_ones_do():
    three = expected_duration([600.0] * MIN_HISTORY)
    # a zero (a run that 'took' no time: clock trouble) is left out, not fed to log()
    assert expected_duration([0, 0.0, *[600.0] * MIN_HISTORY]) == three
    # a half-second run is a real duration: it counts
    tiny = expected_duration([0.5] * MIN_HISTORY)
    assert tiny is not None and tiny.samples == MIN_HISTORY
    assert tiny.low == pytest.approx(0.5 * math.exp(-LOW_Z * MIN_SIGMA * (1 + 1 / MIN_HISTORY)))


def test_min_samples_may_go_down_to_two_but_no_lower():
    two = expected_duration([500.0, 700.0], min_samples=2)
    assert two is not None and two.samples == 2
    # one duration has no spread: too little even when the caller would accept it
    assert expected_duration([500.0], min_samples=1) is None


def test_a_fixed_schedule_carries_the_start_along():
    assert PollSchedule.fixed(60.0, 10.0, started_at=5.0).started_at == 5.0
    # no history: adaptive falls back to fixed but keeps the start (the trigger reports it)
    fallback = PollSchedule.adaptive(60.0, 10.0, started_at=5.0, expected=None)
    assert (fallback.is_adaptive, fallback.started_at, fallback.interval) == (False, 5.0, 60.0)


def test_a_fixed_schedule_round_trips_its_none_fields():
    sched = PollSchedule.fixed(60.0, 10.0)
    assert sched.to_dict()["started_at"] is None
    assert PollSchedule.from_dict(sched.to_dict()) == sched


def test_jitter_without_failures_is_not_capped_by_the_back_off_cap():
    # back-off caps only a backed-off gap: a 10,000 s sparse gap jittered to 11,000 s stays 11,000 s
    # (the cap would be 10,000 + 15 min = 10,900 s)
    sched = PollSchedule.fixed(10_000.0, 10.0)
    assert sched.next_gap(0.0, jitter=1.1) == pytest.approx(11_000.0)
    assert sched.next_gap(0.0, jitter=1.1, failures=1) == backoff_cap(10_000.0)
