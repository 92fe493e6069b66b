"""Poll schedules: when to check a run's status next.

A fixed schedule polls every ``interval``. An adaptive one knows how long this kind of run usually
takes (from the vendor's list of past runs, else from this task's earlier runs) and spends the
vendor's poll budget where the run is likely to end: no poll before the earliest plausible end (or
one an hour, at most), ``interval`` polls across the expected window from one interval after its
start, then a slowly widening gap for an overdue run. docs/benchmarks.md (polling) measures it
against an oracle that knows the true distribution of run times.

Every schedule is plain numbers (``to_dict``/``from_dict``) so a trigger can serialize it, and no
gap is ever shorter than the vendor floor: rate limits are correctness, not tuning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

#: ``poll_schedule`` values an operator accepts (the type for signatures, the tuple for checks).
PollScheduleMode = Literal["adaptive", "fixed"]
POLL_SCHEDULES: tuple[PollScheduleMode, ...] = get_args(PollScheduleMode)
#: Fewer past durations than this: too little to predict from, poll at the fixed interval.
MIN_HISTORY = 3
#: How many past durations are kept and used (recent runs predict best).
MAX_HISTORY = 20
#: z-score of the expected window's low edge: about the 1st percentile of a lognormal fit (with the
#: small-sample widening below). Runs ending before it are the few a sparse schedule finds late.
LOW_Z = 2.4
#: z-score of the high edge: dense polls until about the 99.9th percentile, then the overdue gaps.
HIGH_Z = 3.0
#: A tight history still gets a window at least this wide (in log space, ~ +-10 %).
MIN_SIGMA = 0.05
#: Overdue gaps are at most this many dense intervals (Habu: 4 x 900 s = the hourly poll it recommends).
SPARSE_FACTOR = 4.0
#: Before the window no gap is longer than an hour (Habu's recommended poll): a run that fails
#: minutes after it starts is noticed within the hour even when the window opens later.
EARLY_MAX_GAP = 3600.0
#: The first dense poll is this many intervals after the window's low edge, not at it: a poll at
#: the earliest plausible end almost always finds the run still running, and a run that does end
#: there is found about one interval later, as fixed polling would find it. Measured: 1.1 with
#: ``LOW_Z`` 2.4 is the pair that met both polling goals across seeds (docs/benchmarks.md).
DENSE_LEAD = 1.1
#: An overdue run is polled every ``overdue / OVERDUE_DIVISOR`` (between interval and the sparse gap).
OVERDUE_DIVISOR = 4.0
#: After failed polls (a vendor outage) the gap doubles per failure, up to this many times the usual
#: gap ...
BACKOFF_MAX_FACTOR = 8.0
#: ... and never more than this many seconds longer than it: with Habu's hourly polling, x8 alone
#: would notice a run that finished during an outage ~7 h late; with this, at most 15 min late.
BACKOFF_MAX_EXTRA = 15 * 60.0


def backoff_cap(gap: float) -> float:
    """The longest gap after failed polls, for a usual gap of ``gap`` seconds:
    ``min(8 x gap, gap + 15 min)`` (60 s -> 480 s; 3600 s -> 4500 s)."""
    return min(gap * BACKOFF_MAX_FACTOR, gap + BACKOFF_MAX_EXTRA)


@dataclass(frozen=True)
class ExpectedDuration:
    """The window in which a run is expected to end (seconds after its start)."""

    low: float
    high: float
    samples: int


def expected_duration(
    durations: Iterable[float], *, min_samples: int = MIN_HISTORY
) -> ExpectedDuration | None:
    """Fit a lognormal to past run durations; None when there are too few to say anything.

    Run times are positive and right-skewed, so log space is where a mean and a spread make sense.
    The spread is widened for a small sample (x (1 + 1/n)) so three lucky runs do not make a
    schedule that sleeps through the fourth.
    """
    values = [float(d) for d in durations if isinstance(d, (int, float)) and math.isfinite(d) and d > 0]
    values = values[:MAX_HISTORY]
    if len(values) < max(min_samples, 2):
        return None
    logs = [math.log(v) for v in values]
    import statistics  # only when there is history: not on the DAG-parse path

    mu = statistics.fmean(logs)
    sigma = max(statistics.stdev(logs), MIN_SIGMA) * (1 + 1 / len(values))
    return ExpectedDuration(
        low=math.exp(mu - LOW_Z * sigma), high=math.exp(mu + HIGH_Z * sigma), samples=len(values)
    )


@dataclass(frozen=True)
class PollSchedule:
    """Gaps between polls of one run, in real seconds.

    :param interval: the dense gap (the task's poll interval, already at or above the floor).
    :param floor: the vendor's shortest allowed gap; no gap is ever below it.
    :param started_at: epoch seconds when the run started; None means unknown (poll at ``interval``).
    :param expected_low: seconds after start before which the run rarely ends (adaptive only).
    :param expected_high: seconds after start by which it almost always has ended (adaptive only).
    :param sparse_interval: the longest gap while overdue (before the window: ``EARLY_MAX_GAP``).
    """

    interval: float
    floor: float = 0.0
    started_at: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None
    sparse_interval: float | None = None

    @classmethod
    def fixed(cls, interval: float, floor: float, *, started_at: float | None = None) -> PollSchedule:
        """Every ``interval`` (at least ``floor``); ``started_at`` is only carried along."""
        return cls(interval=max(interval, floor), floor=floor, started_at=started_at)

    @classmethod
    def adaptive(
        cls,
        interval: float,
        floor: float,
        *,
        started_at: float | None,
        expected: ExpectedDuration | None,
        sparse_factor: float = SPARSE_FACTOR,
    ) -> PollSchedule:
        """An adaptive schedule, or the fixed one when the start or the expected duration is unknown."""
        interval = max(interval, floor)
        if expected is None or started_at is None:
            return cls.fixed(interval, floor, started_at=started_at)
        return cls(
            interval=interval,
            floor=floor,
            started_at=started_at,
            expected_low=expected.low,
            expected_high=expected.high,
            sparse_interval=max(interval * sparse_factor, interval),
        )

    @property
    def is_adaptive(self) -> bool:
        return (
            self.started_at is not None and self.expected_low is not None and self.expected_high is not None
        )

    def next_delay(self, now: float) -> float:
        """Seconds from ``now`` (epoch) to the next poll, when the previous poll was at ``now``."""
        if not self.is_adaptive:
            return max(self.interval, self.floor)
        assert (
            self.started_at is not None and self.expected_low is not None and self.expected_high is not None
        )
        sparse = self.sparse_interval or self.interval
        elapsed = max(0.0, now - self.started_at)
        dense_from = self.expected_low + DENSE_LEAD * self.interval
        if elapsed < dense_from:
            # Early: land the next poll where dense polling starts, in gaps of at most an hour.
            gap = min(max(self.interval, EARLY_MAX_GAP), dense_from - elapsed)
        elif elapsed <= self.expected_high:
            gap = self.interval
        else:
            # Overdue: the longer past the window, the less one more minute tells - widen slowly.
            gap = max(self.interval, min(sparse, (elapsed - self.expected_high) / OVERDUE_DIVISOR))
        return max(gap, self.floor)

    def next_gap(self, now: float, *, jitter: float = 1.0, failures: int = 0) -> float:
        """The gap a poller actually sleeps: ``next_delay`` times a jitter factor (which spreads a
        herd of triggers apart), doubled per failed poll in a row up to :func:`backoff_cap` - and
        still never under the floor. The trigger, the operators' sync wait and the benchmark's
        simulator all call this: one rule for every path."""
        base = self.next_delay(now)
        gap = base * jitter
        if failures > 0:
            # 2.0 ** 30 already exceeds any cap; bounding the exponent keeps a float from overflowing.
            gap = min(gap * 2.0 ** min(failures, 30), backoff_cap(base))
        return max(gap, self.floor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PollSchedule:
        """Rebuild from ``to_dict``. Unknown keys are ignored and missing ones take their defaults, so
        a trigger serialized by a newer or older release still loads in this triggerer."""
        plain = {k: (None if v is None else float(v)) for k, v in data.items() if k in _FIELDS}
        return cls(**plain)  # type: ignore[arg-type]


_FIELDS = frozenset(PollSchedule.__dataclass_fields__)
