"""What a run watcher remembers between polls, and how one poll's listing becomes events.

A watcher (``triggers/watch.py``) lists a vendor's runs of one flow and fires one asset event per run
that reaches a wanted state. Which runs are new is decided here, as pure functions over a plain
record, so the rule is written once for every vendor and tested without a vendor or an Airflow:

``horizon``
    vendor-clock epoch seconds: every run *created* before it is settled and dealt with. A poll
    lists runs created since ``horizon - overlap`` (the overlap absorbs listings that show a new run
    a little late); the horizon then moves to the creation time of the oldest run still going, or
    of the newest run seen when none is, and never back.
``done``
    run id -> creation time of runs dealt with: fired, terminal in an unwanted state, or already
    terminal when the watcher was first deployed. Entries older than the overlap are forgotten
    (the listing no longer reaches them).
``pending``
    run id -> [creation time, real time fired, owner] of events handed to Airflow but not yet
    confirmed. Airflow writes a trigger's event to its database a moment after the trigger yields
    it, and tells the trigger nothing; the watcher waits ``confirm_seconds`` and then moves the
    entry to ``done``. An entry whose owner stopped before confirming (a killed triggerer) is fired
    again once older than ``pending_timeout``: the one case where an event may arrive twice.
``deployed_at``
    real time of the first poll. Runs already terminal then do not fire, unless they finished within
    the ``lookback`` window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_flowruns.core.runs import RunState

Record = dict[str, Any]

#: Vendor seconds a poll looks behind the horizon.
DEFAULT_OVERLAP = 3600.0
#: Runs created up to this long before the first deployment are looked at once (those still going
#: then fire when they finish).
DEFAULT_BASELINE_WINDOW = 7 * 86400.0


@dataclass(frozen=True)
class ListedRun:
    """One run as a vendor's listing shows it, in the engine's terms."""

    run_id: str
    state: RunState
    vendor_status: str
    created_at: float
    finished_at: float | None = None
    name: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class RunPage:
    """One page of a listing: its runs and the vendor's token for the next page (None: last).

    ``newest_first``: the vendor documents the listing as ordered by creation, newest first, so a
    page that reaches past the horizon ends the scan (no server-side creation filter needed).
    """

    runs: list[ListedRun]
    next_page: Any = None
    newest_first: bool = False


@dataclass(frozen=True)
class Plan:
    """What one poll decided: the new record and the runs to fire (``refired``: a subset whose
    earlier event was never confirmed)."""

    record: Record
    fire: list[ListedRun] = field(default_factory=list)
    refired: list[str] = field(default_factory=list)


def is_deployed(record: Mapping[str, Any]) -> bool:
    return isinstance(record.get("deployed_at"), (int, float))


def scan_since(record: Mapping[str, Any], *, now: float, overlap: float, baseline_window: float) -> float:
    """The creation time (vendor clock) a poll lists runs from."""
    horizon = record.get("horizon")
    if isinstance(horizon, (int, float)):
        return float(horizon) - overlap
    return now - baseline_window


def plan(
    record: Mapping[str, Any],
    runs: Iterable[ListedRun],
    *,
    wanted: frozenset[RunState],
    since: float,
    now: float,
    owner: str,
    overlap: float = DEFAULT_OVERLAP,
    lookback: float = 0.0,
    pending_timeout: float = 120.0,
    complete: bool = True,
) -> Plan:
    """Decide which listed runs fire, and the record after this poll.

    ``record`` is the freshest copy (re-read under the watcher's lease), ``runs`` what the listing
    showed from ``since`` on, ``complete`` whether the scan reached ``since`` (False: a page cap
    stopped it, and the horizon must not move over runs it did not see).
    """
    baseline = not is_deployed(record)
    done: dict[str, float] = {str(k): float(v) for k, v in dict(record.get("done") or {}).items()}
    pending: dict[str, list[Any]] = {str(k): list(v) for k, v in dict(record.get("pending") or {}).items()}
    fire: list[ListedRun] = []
    refired: list[str] = []
    open_created: list[float] = []
    newest = -math.inf
    seen: set[str] = set()
    for run in runs:
        if run.run_id in seen or run.created_at < since:
            continue
        seen.add(run.run_id)
        newest = max(newest, run.created_at)
        if not run.state.is_terminal:
            open_created.append(run.created_at)
            continue
        if run.run_id in done:
            continue
        entry = pending.get(run.run_id)
        if entry is not None:
            if entry[2] == owner or now - float(entry[1]) < pending_timeout:
                continue  # ours, or a live rival's: it confirms (or times out) on its own
            if run.state not in wanted:  # re-run since (a retry) and now ended otherwise
                del pending[run.run_id]
                done[run.run_id] = run.created_at
                continue
            refired.append(run.run_id)  # its owner stopped before confirming: fire it again
        elif run.state not in wanted:
            done[run.run_id] = run.created_at
            continue
        elif baseline and not _within(run.finished_at, now, lookback):
            done[run.run_id] = run.created_at  # finished before the watcher existed
            continue
        fire.append(run)
        pending[run.run_id] = [run.created_at, now, owner]

    old = record.get("horizon")
    horizon = float(old) if isinstance(old, (int, float)) else None
    if complete:
        reached = min(open_created) if open_created else (newest if newest > -math.inf else None)
        if reached is None and horizon is None:
            reached = since  # nothing listed at all: the scan window's start is settled
        if reached is not None:
            horizon = reached if horizon is None else max(horizon, reached)
    floor = (horizon if horizon is not None else since) - overlap
    done = {k: v for k, v in done.items() if v >= floor}
    # A pending entry whose run fell out of the listing can never be confirmed or fired again.
    pending = {
        k: v for k, v in pending.items() if float(v[0]) >= floor or now - float(v[1]) < pending_timeout
    }
    new: Record = {
        "v": 1,
        "deployed_at": record.get("deployed_at") if not baseline else now,
        "horizon": horizon,
        "done": done,
        "pending": pending,
    }
    return Plan(new, fire, refired)


def _within(finished_at: float | None, now: float, lookback: float) -> bool:
    """Whether a run already finished at the first poll is inside the look-back window (none by
    default: with 0, nothing that finished before deployment fires, whatever the vendor's clock)."""
    return lookback > 0 and finished_at is not None and finished_at >= now - lookback


def confirm(record: Mapping[str, Any], run_ids: Iterable[str], owner: str) -> Record:
    """``record`` with this owner's pending ``run_ids`` moved to ``done``."""
    done = dict(record.get("done") or {})
    pending = {k: list(v) for k, v in dict(record.get("pending") or {}).items()}
    for run_id in run_ids:
        entry = pending.get(run_id)
        if entry is not None and entry[2] == owner:
            del pending[run_id]
            done[run_id] = float(entry[0])
    return {**record, "done": done, "pending": pending}


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (the event's timestamps)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
