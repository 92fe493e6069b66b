"""ISO-8601 timestamps in and out of vendor APIs.

Vendors filter runs by creation time with ISO strings; users hand us strings (often rendered from
templates such as ``{{ ts }}``) or datetimes. Parsing once here keeps "naive means UTC" and the
error wording the same for every vendor.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError


def parse_iso8601(value: Any, name: str) -> datetime:
    """Parse an ISO-8601 timestamp or a datetime (``Z`` allowed; naive means UTC).

    The error names the parameter, because the value usually came from a template.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        if not isinstance(value, str) or not value.strip():
            raise FlowRunsConfigError(f"{name} must be an ISO-8601 timestamp string, got {value!r}")
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FlowRunsConfigError(f"{name} is not an ISO-8601 timestamp: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def iso_utc(value: Any, name: str) -> str:
    """``value`` as UTC with milliseconds and ``Z`` (``2026-11-23T00:00:00.000Z``), the form
    JavaScript servers produce and compare lexically."""
    moment = parse_iso8601(value, name).astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
