"""A budget of run creations shared by every worker of a deployment (Habu: 20 per API user per hour).

The vendor's own 429 is the wrong place to learn the budget is spent: every waiting task would
spend one refused call to find out, a DAG of a hundred mapped tasks would send a hundred of them
each hour, and the vendor counts refusals against the same user. So the workers keep a ledger of
the creations they made in an Airflow Variable ``flowruns_budget_<digest>`` - one ledger per API
user, whichever connection id points at it - and a create is sent only after a slot was booked in
it under a :class:`~airflow_provider_flowruns.core.leases.DeploymentLock`.

The ledger is a sliding window (no more than ``limit`` creations in any ``window`` seconds), which
is never more generous than the vendor's token bucket of the same size. When the vendor refuses
anyway (another system shares the API user) the refusal is written to the ledger as
``blocked_until``, so the rest of the deployment waits without asking: at most one 429 per window.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowruns.core.errors import RateLimitBudgetExhausted
from airflow_provider_flowruns.core.leases import (
    DeploymentLock,
    Read,
    Record,
    Step,
    Write,
    run_steps,
    variable_name,
)

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "flowruns_budget_"
_DESCRIPTION = (
    "Run creations booked by airflow-provider-flowruns against the vendor's hourly create limit, "
    "shared by every worker. Safe to delete: the next creations rebuild it."
)


@dataclass(frozen=True)
class Booking:
    """One booked slot; hand it back with :meth:`SharedCreateBudget.cancel` if nothing was created."""

    key: str
    slot: str
    at: float


@dataclass(frozen=True)
class Verdict:
    """What a change to the ledger decided: booked (at ``booked_at``) or full until ``free_at``."""

    booked_at: float | None = None
    free_at: float | None = None


Change = Callable[[Record], tuple[Record, Verdict]]


class SharedCreateBudget:
    """``book()`` before a create; ``cancel()`` when the create certainly did not happen;
    ``refused()`` when the vendor answered 429 in spite of the ledger.

    :param jitter: up to this many seconds per hour of window are added to a wait, so tasks refused
        together do not return in one burst.
    """

    def __init__(self, *, lock: DeploymentLock | None = None, jitter: float = 120.0) -> None:
        self._lock = lock or DeploymentLock(_DESCRIPTION, lease_seconds=30.0)
        self.jitter = jitter
        # Outside Airflow (no Variables) the ledger still holds for this process.
        self._memory: dict[str, Record] = {}

    @staticmethod
    def variable_key(key: str) -> str:
        return variable_name(VARIABLE_PREFIX, key)

    def book(self, key: str, *, limit: int, window: float, what: str) -> Booking:
        """Book one creation, or raise :class:`RateLimitBudgetExhausted` saying when to come back."""
        slot = uuid.uuid4().hex[:12]
        verdict = self._update(key, lambda record: _book(record, slot, limit, window))
        if verdict.booked_at is not None:
            return Booking(key, slot, verdict.booked_at)
        free_at = verdict.free_at or time.time() + window
        raise RateLimitBudgetExhausted(
            f"Not creating {what} now: the {limit} run creations allowed per hour for this API user "
            f"are used up; the next one frees in about {max(free_at - time.time(), 0):.0f}s.",
            retry_at=self.retry_at(free_at, window),
        )

    def retry_at(self, free_at: float, window: float) -> float:
        """When a held-back task should try again: ``free_at`` plus jitter (scaled with the window),
        so tasks held back together do not return in one burst."""
        return free_at + random.uniform(0, self.jitter * window / 3600.0)

    def cancel(self, booking: Booking) -> None:
        """Give a slot back: the vendor rejected the request, so it created nothing."""
        self._update(booking.key, lambda record: _cancel(record, booking.slot))

    def refused(self, key: str, *, window: float) -> float:
        """The vendor said 429 although the ledger had room (someone else uses this API user):
        nobody here asks again for a window. Returns when the block ends (epoch seconds)."""
        until = time.time() + window
        self._update(key, lambda record: _block(record, until))
        return until

    def _update(self, key: str, change: Change) -> Verdict:
        """Read-modify-write of the ledger under the deployment lock."""
        variable = self.variable_key(key)
        with self._lock.hold(variable) as outcome:
            if outcome == "unshared":
                self._memory[variable], verdict = change(self._memory.get(variable, {}))
                return verdict
            if outcome == "timeout":
                # The holder stopped answering and its lease has run out twice over; waiting longer
                # would stall every create of the deployment on one dead process.
                log.warning("Create-budget lease for %s not obtained in time; booking anyway.", variable)
            return run_steps(_apply(variable, change), _DESCRIPTION)


def _apply(variable: str, change: Change) -> Generator[Step, Any, Verdict]:
    record = yield Read(variable)
    new, verdict = change(record)
    yield Write(variable, new)
    return verdict


def _live(record: Record, window: float, now: float) -> list[list[Any]]:
    """Bookings still inside the window; anything malformed (a hand-edited Variable) is dropped."""
    entries = record.get("created")
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], (int, float))
        and entry[0] > now - window
    ]


def _book(record: Record, slot: str, limit: int, window: float) -> tuple[Record, Verdict]:
    now = time.time()
    live = _live(record, window, now)
    blocked = record.get("blocked_until")
    if isinstance(blocked, (int, float)) and blocked > now:
        return {**record, "created": live}, Verdict(free_at=float(blocked))
    if len(live) >= limit:
        oldest = sorted(float(entry[0]) for entry in live)[len(live) - limit]
        return {**record, "created": live}, Verdict(free_at=oldest + window)
    return {**record, "created": [*live, [now, slot]]}, Verdict(booked_at=now)


def _cancel(record: Record, slot: str) -> tuple[Record, Verdict]:
    created = record.get("created")
    kept = (
        [e for e in created if not (isinstance(e, list) and e[1:] == [slot])]
        if isinstance(created, list)
        else []
    )
    return {**record, "created": kept}, Verdict()


def _block(record: Record, until: float) -> tuple[Record, Verdict]:
    blocked = record.get("blocked_until")
    if isinstance(blocked, (int, float)) and blocked > until:
        until = float(blocked)
    return {**record, "blocked_until": until}, Verdict(free_at=until)
