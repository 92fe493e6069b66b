"""The adaptive poll schedule as plain arithmetic: floor, deadline, monotonic gaps, no history."""

from __future__ import annotations

import itertools
import math

import pytest

from airflow_provider_flowruns.core.history import durations_from_xcom, vendor_durations
from airflow_provider_flowruns.core.schedule import (
    MIN_HISTORY,
    ExpectedDuration,
    PollSchedule,
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
def test_never_under_the_floor_and_dense_in_the_window(interval):
    expected = ExpectedDuration(low=3000.0, high=5000.0, samples=10)
    sched = PollSchedule.adaptive(interval, HABU_FLOOR, started_at=1000.0, expected=expected)
    times = poll_times(sched, start=1000.0, until=20000)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= HABU_FLOOR
    # sparse before the window, every ``interval`` inside it
    assert all(
        b - a > interval or b == expected.low for a, b in itertools.pairwise(times) if a < expected.low
    )
    inside = [b - a for a, b in itertools.pairwise(times) if expected.low <= a < expected.high - interval]
    assert inside and all(g == interval for g in inside)
    # one poll lands at the start of the window
    assert expected.low in times


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
