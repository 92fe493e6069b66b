"""How long runs took before: the two sources adaptive polling learns from.

1. The vendor's own list of past runs of the same flow/question (``vendor_durations``), where the
   API has one - exact, and shared by every DAG running that flow.
2. This task's earlier runs (``task_durations``): each successful try pushes one small XCom,
   ``{"at": epoch, "seconds": submit-to-detection}``, read back with ``include_prior_dates=True``.
   XCom is the one per-task store that works the same on the 3.1 floor and on 3.3 (task-instance
   history needs the metadata DB, which Airflow 3 workers cannot reach), survives deferral and
   needs no setup. ``airflow db clean`` bounds it like any other XCom.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_provider_flowruns.core.schedule import MAX_HISTORY

log = logging.getLogger(__name__)

#: XCom key of one successful try's vendor-run duration.
HISTORY_XCOM_KEY = "flowruns_run_duration"


def _positive(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def durations_from_xcom(value: Any) -> list[float]:
    """Newest-first durations from what ``xcom_pull(include_prior_dates=True)`` returned: one
    record, or a list of records from several runs (whose order Airflow does not promise)."""
    records = value if isinstance(value, list) else [value]
    dated: list[tuple[float, float]] = []
    for record in records:
        if isinstance(record, Mapping):
            seconds, at = _positive(record.get("seconds")), _positive(record.get("at"))
            if seconds is not None:
                dated.append((at or 0.0, seconds))
    dated.sort(reverse=True)
    return [seconds for _, seconds in dated[:MAX_HISTORY]]


def task_durations(context: Any) -> list[float]:
    """This task's earlier run durations, newest first; [] when none or the XCom cannot be read."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return []
    try:
        value = ti.xcom_pull(task_ids=ti.task_id, key=HISTORY_XCOM_KEY, include_prior_dates=True)
    except Exception:  # history is an optimisation: without it we poll at the fixed interval
        log.warning("Could not read this task's run history; polling at the fixed interval.", exc_info=True)
        return []
    return durations_from_xcom(value)


def record_task_duration(context: Any, seconds: float) -> None:
    """Record this try's run duration for the next run's schedule (best effort)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None or _positive(seconds) is None:
        return
    try:
        ti.xcom_push(key=HISTORY_XCOM_KEY, value={"at": round(time.time(), 3), "seconds": round(seconds, 3)})
    except Exception:
        log.warning("Could not record this run's duration for adaptive polling.", exc_info=True)


def vendor_durations(
    runs: Iterable[Mapping[str, Any]],
    *,
    start: str,
    end: str,
    succeeded: Collection[str],
    status: str = "status",
) -> list[float]:
    """Durations (seconds, in list order) of the successful runs in a vendor's run list.

    ``start``/``end`` name the ISO-8601 timestamp fields; runs without both, or not in
    ``succeeded``, are skipped. Stops after ``MAX_HISTORY`` durations so a long list costs at most
    the pages needed to find them.
    """
    found: list[float] = []
    for run in runs:
        if str(run.get(status)) not in succeeded:
            continue
        began, ended = _epoch(run.get(start)), _epoch(run.get(end))
        if began is not None and ended is not None and ended > began:
            found.append(ended - began)
            if len(found) >= MAX_HISTORY:
                break
    return found


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
