"""Turning a settled run (a trigger event or a sync status) into the task's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsError, RunCancelled, RunFailed, RunTimedOut


def raise_for_event(event: Mapping[str, Any], *, vendor: str, accept: frozenset[str] = frozenset()) -> None:
    """Raise the exception a non-successful event means; return quietly for success (or ``accept``).

    The exception text carries the vendor's own status and error message, because that is what the
    on-call engineer reading the task log needs first.
    """
    status = event.get("status")
    if status == "success" or status in accept:
        return
    run_id = event.get("run_id")
    vendor_status = event.get("vendor_status")
    message = event.get("message") or ""
    where = f"{vendor} run {run_id}"
    if status == "failed":
        raise RunFailed(
            f"{where} failed ({vendor_status}): {message}", run_id=run_id, vendor_status=vendor_status
        )
    if status == "cancelled":
        raise RunCancelled(
            f"{where} was cancelled ({vendor_status}): {message}", run_id=run_id, vendor_status=vendor_status
        )
    if status == "timeout":
        raise RunTimedOut(f"{where} timed out: {message}", run_id=run_id, vendor_status=vendor_status)
    if status == "paused":
        raise RunFailed(
            f"{where} is paused ({vendor_status}) and this task was not asked to stop at a pause: {message}",
            run_id=run_id,
            vendor_status=vendor_status,
        )
    raise FlowRunsError(f"{where}: {message or 'unexpected event ' + repr(status)}")
