"""Amperity at DAG parse: the start-request check (see ``vendors``)."""

from __future__ import annotations

from datetime import timezone
from typing import Any, Literal, get_args

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.timestamps import parse_iso8601
from airflow_provider_flowruns.forms import AUTH_CHOICES, AmperityAuth

#: ``run_mode`` of a courier-group start (the type for signatures, the tuple for checks).
RunMode = Literal["source", "refresh", "full"]
RUN_MODES: tuple[RunMode, ...] = get_args(RunMode)
#: Connection extra ``auth``: a UI-issued token in the password (default) or OAuth client credentials
#: (declared with the connection form, which provider discovery reads without Airflow loaded).
AUTH_MODES = AUTH_CHOICES
__all__ = ["AUTH_MODES", "RUN_MODES", "AmperityAuth", "RunMode", "validate_start"]
#: Workflow ``type`` per config-id prefix: courier group, orchestration group, campaign.
CONFIG_PREFIXES = {
    "cg-": "courier.group/run",
    "og-": "amperity.orchestration.orchestration/run",
    "cc-": "campaign/run",
}


def validate_start(
    config_id: Any, run_mode: Any = None, range_from: Any = None, range_to: Any = None
) -> dict[str, Any]:
    """Check a start request before it is sent; returns the JSON body. Errors name the parameter."""
    if not isinstance(config_id, str) or not config_id.startswith(tuple(CONFIG_PREFIXES)):
        raise FlowRunsConfigError(
            f"config_id must be a courier group (cg-...), orchestration group (og-...) or campaign (cc-...) id, "
            f"got {config_id!r}"
        )
    body: dict[str, Any] = {"config_id": config_id}
    if run_mode is not None:
        if run_mode not in RUN_MODES:
            raise FlowRunsConfigError(f"run_mode must be one of {', '.join(RUN_MODES)}, got {run_mode!r}")
        if not config_id.startswith("cg-"):
            raise FlowRunsConfigError("run_mode applies to courier groups (cg-...) only")
        body["run_mode"] = run_mode
    if range_to is not None and range_from is None:
        raise FlowRunsConfigError("range_to needs range_from (the range is [range_from, range_to))")
    if range_from is not None:
        start = parse_iso8601(range_from, "range_from")
        body["range_from"] = start.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        if range_to is not None:
            end = parse_iso8601(range_to, "range_to")
            if end <= start:
                raise FlowRunsConfigError(f"range_to ({range_to}) must be after range_from ({range_from})")
            body["range_to"] = end.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return body
