"""Benchmark 4: adaptive polling against a fixed poll at the vendor floor, by simulation.

Runs have lognormal durations (median one hour). Each simulated run is polled by the product's own
``PollSchedule.next_gap`` - the code ``FlowRunTrigger`` sleeps on, jitter and floor included - so
the simulation measures the shipped schedule, not a model of it. The adaptive schedule learns from
the previous 20 runs' durations (the vendor's list-runs history). Baseline: the same loop with a
fixed schedule at the Habu floor of 300 s for latency, and for calls the oracle: a poller that knows
the true distribution of these durations and spends the fewest calls that keep fixed polling's p95
latency. Reported per spread (sigma) of the durations, because how much a schedule can skip depends
on how predictable the runs are.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from airflow_provider_flowruns.core.schedule import MAX_HISTORY, PollSchedule, expected_duration
from benchmarks.report import Report, Row

HABU_FLOOR = 300.0
MEDIAN = 3600.0


@dataclass(frozen=True)
class Outcome:
    calls: int
    latency: float


def poll_until_done(schedule: PollSchedule, duration: float, rng: random.Random) -> Outcome:
    """Poll one run as the trigger does: first poll after ``next_delay(start)`` (Habu operators do
    not check before deferring), then every ``next_gap`` with the trigger's 0.9-1.1 jitter."""
    start = schedule.started_at or 0.0
    now = start + schedule.next_delay(start)
    calls = 1
    while now - start < duration:
        now += schedule.next_gap(now, jitter=rng.uniform(0.9, 1.1))
        calls += 1
    return Outcome(calls=calls, latency=now - start - duration)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def draw_durations(runs: int, sigma: float, *, seed: int = 7) -> tuple[list[float], random.Random]:
    """``MAX_HISTORY`` runs of history followed by ``runs`` runs to poll, and the stream after them."""
    rng = random.Random(seed)
    return [MEDIAN * math.exp(rng.gauss(0.0, sigma)) for _ in range(MAX_HISTORY + runs)], rng


def simulate(runs: int, sigma: float, *, seed: int = 7) -> tuple[list[Outcome], list[Outcome]]:
    """(adaptive, fixed) outcomes for the same ``runs`` durations and the same jitter stream."""
    durations, rng = draw_durations(runs, sigma, seed=seed)
    history: deque[float] = deque(durations[:MAX_HISTORY], maxlen=MAX_HISTORY)
    adaptive, fixed = [], []
    for duration in durations[MAX_HISTORY:]:
        expected = expected_duration(reversed(history))
        sched = PollSchedule.adaptive(HABU_FLOOR, HABU_FLOOR, started_at=0.0, expected=expected)
        jitter_seed = rng.random()
        adaptive.append(poll_until_done(sched, duration, random.Random(jitter_seed)))
        fixed.append(
            poll_until_done(PollSchedule.fixed(HABU_FLOOR, HABU_FLOOR), duration, random.Random(jitter_seed))
        )
        history.append(duration)
    return adaptive, fixed


def oracle_calls(durations: list[float], p95_target: float, floor: float = HABU_FLOOR) -> float | None:
    """The fewest calls per run of a reference that *knows* these very durations' distribution and
    still keeps p95 latency at ``p95_target``: first poll at a start ``a``, then exactly every
    ``floor`` (no jitter: better than any real poller), with ``a`` as late as the target allows.

    The floor is what binds: inside the dense phase a run's latency is uniform over one floor gap,
    so each run that ends before ``a`` spends the 5 % of runs allowed above the target. When runs
    vary, ``a`` must come early and the dense phase is most of the run, whatever the schedule.
    """

    def outcome(first: float) -> tuple[float, float]:
        calls, latencies = 0, []
        for d in durations:
            polls = 1 + max(0, math.ceil((d - first) / floor))
            calls += polls
            latencies.append(first + (polls - 1) * floor - d)
        return calls / len(durations), percentile(latencies, 0.95)

    low, high = 0.0, max(durations)
    if outcome(low)[1] > p95_target:
        return None  # a sample this small put the target under even every-floor polling's p95
    for _ in range(40):  # p95 grows with a later first poll: bisect for the latest that holds
        middle = (low + high) / 2
        if outcome(middle)[1] <= p95_target:
            low = middle
        else:
            high = middle
    return outcome(low)[0]


def run(report: Report, *, smoke: bool) -> None:
    # 5,000 runs: with 1,000 the p95 ratio moved by +-1.5 % between seeds, as much as the goal allows
    runs = 50 if smoke else 5000
    for sigma in (0.1, 0.25, 0.5):
        adaptive, fixed = simulate(runs, sigma)
        calls_a = sum(o.calls for o in adaptive) / runs
        calls_f = sum(o.calls for o in fixed) / runs
        p95_a = percentile([o.latency for o in adaptive], 0.95)
        p95_f = percentile([o.latency for o in fixed], 0.95)
        name = f"4 polling, {runs} runs, lognormal sigma={sigma}"
        oracle = oracle_calls(draw_durations(runs, sigma)[0][MAX_HISTORY:], p95_f)
        # Goals (issue 21): calls within 1.15x of the oracle's, at a p95 latency within 1.02x of
        # fixed polling's. The oracle is None only when a smoke run's sample is too small to say.
        report.add(
            Row(
                name,
                "API calls per run, against the oracle (knows the distribution, no jitter)",
                calls_a,
                oracle,
                "",
                "<= 1.15x",
                None if smoke or oracle is None else calls_a <= 1.15 * oracle,
                baseline_name="oracle",
            )
        )
        report.add(
            Row(
                name,
                "p95 detection latency",
                p95_a,
                p95_f,
                "s",
                "<= 1.02x",
                None if smoke else p95_a <= 1.02 * p95_f,
                baseline_name="fixed 300 s",
            )
        )
        report.add(
            Row(
                name,
                "API calls per run (reference)",
                calls_a,
                calls_f,
                "",
                "-",
                None,
                baseline_name="fixed 300 s",
            )
        )
        floor_ok = all(o.calls >= 1 for o in adaptive)
        assert floor_ok
