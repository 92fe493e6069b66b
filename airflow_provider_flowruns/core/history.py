"""How long this task's runs took before: the fallback source for adaptive polling.

Kept as one small XCom per successful try (the last ``MAX_HISTORY`` durations, newest first) and
read back with ``include_prior_dates=True``. XCom is the one per-task store that works the same
on the 3.1 floor and on 3.3 (task-instance history needs the metadata DB, which workers on
Airflow 3 cannot reach), survives deferral, and needs no extra setup from the user.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_provider_flowruns.core.schedule import MAX_HISTORY

log = logging.getLogger(__name__)

#: XCom key holding this task's recent vendor-run durations (real seconds, newest first).
HISTORY_XCOM_KEY = "flowruns_run_durations"


def clean_durations(values: Any) -> list[float]:
    """Positive finite numbers from an XCom value or vendor list; anything else is dropped."""
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes, dict)):
        return []
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    ][:MAX_HISTORY]


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
    return clean_durations(value)


def record_task_duration(context: Any, seconds: float) -> None:
    """Prepend ``seconds`` to this task's history XCom (best effort)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None or not (math.isfinite(seconds) and seconds > 0):
        return
    try:
        ti.xcom_push(key=HISTORY_XCOM_KEY, value=[round(seconds, 3), *task_durations(context)][:MAX_HISTORY])
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
