"""Activepieces at DAG parse: the run-filter checks (see ``vendors``)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.timestamps import iso_utc

FAILED_STATUSES = (
    "FAILED",
    "TIMEOUT",
    "QUOTA_EXCEEDED",
    "MEMORY_LIMIT_EXCEEDED",
    "INTERNAL_ERROR",
    "LOG_SIZE_EXCEEDED",
)
ALL_STATUSES = ("QUEUED", "RUNNING", "PAUSED", "SUCCEEDED", "CANCELED", *FAILED_STATUSES)
CANCELLABLE = ("PAUSED", "QUEUED")
RETRY_STRATEGIES = ("FROM_FAILED_STEP", "ON_LATEST_VERSION")


def _as_tuple(value: Any, name: str) -> tuple[str, ...]:
    """A list parameter as a tuple of strings.

    A template renders a list to its text (``"['a', 'b']"``) unless the DAG renders native objects,
    so such text, a JSON list and ``"a,b"`` are all read as lists.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise FlowRunsConfigError(f"{name} is not a list: {value!r}")
        else:
            return tuple(part.strip() for part in text.split(",") if part.strip())
    if isinstance(value, Iterable) and not isinstance(value, (Mapping, str, bytes)):
        return tuple(str(v) for v in value if v not in (None, ""))
    raise FlowRunsConfigError(f"{name} must be a string or a list of strings, got {value!r}")


def _statuses(value: Any, name: str = "statuses") -> tuple[str, ...]:
    statuses = tuple(s.strip().upper() for s in _as_tuple(value, name))
    unknown = [s for s in statuses if s not in ALL_STATUSES]
    if unknown:
        raise FlowRunsConfigError(
            f"{name} has unknown Activepieces statuses {unknown}; known: {', '.join(ALL_STATUSES)} "
            "(a stopped run is CANCELED, with one L)"
        )
    return statuses


@dataclass(frozen=True)
class RunFilter:
    """The run filters Activepieces' list and bulk routes share, validated once.

    ``flow_run_ids`` wins over the other filters on the bulk routes (Activepieces ignores them then).
    ``tags`` and ``include_archived`` exist on the list route only, ``failed_step_message`` on bulk
    retry/archive only.
    """

    flow_run_ids: tuple[str, ...] = ()
    exclude_flow_run_ids: tuple[str, ...] = ()
    flow_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    failed_step_name: str | None = None
    failed_step_message: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    include_archived: bool = False

    @classmethod
    def build(
        cls,
        *,
        flow_run_ids: Any = None,
        exclude_flow_run_ids: Any = None,
        flow_ids: Any = None,
        statuses: Any = None,
        tags: Any = None,
        failed_step_name: str | None = None,
        failed_step_message: str | None = None,
        created_after: Any = None,
        created_before: Any = None,
        include_archived: bool = False,
    ) -> RunFilter:
        after = iso_utc(created_after, "created_after") if created_after not in (None, "") else None
        before = iso_utc(created_before, "created_before") if created_before not in (None, "") else None
        if after and before and after >= before:
            raise FlowRunsConfigError(f"created_after ({after}) must be before created_before ({before})")
        return cls(
            flow_run_ids=_as_tuple(flow_run_ids, "flow_run_ids"),
            exclude_flow_run_ids=_as_tuple(exclude_flow_run_ids, "exclude_flow_run_ids"),
            flow_ids=_as_tuple(flow_ids, "flow_ids"),
            statuses=_statuses(statuses),
            tags=_as_tuple(tags, "tags"),
            failed_step_name=failed_step_name or None,
            failed_step_message=failed_step_message or None,
            created_after=after,
            created_before=before,
            include_archived=bool(include_archived),
        )

    def query(self, project_id: str) -> list[tuple[str, str]]:
        """List-route query parameters; arrays as repeated keys, which Fastify reads as arrays."""
        params: list[tuple[str, str]] = [("projectId", project_id)]
        params += [("flowId", v) for v in self.flow_ids]
        params += [("status", v) for v in self.statuses]
        params += [("tags", v) for v in self.tags]
        params += [("flowRunIds", v) for v in self.flow_run_ids]
        for key, value in (
            ("failedStepName", self.failed_step_name),
            ("createdAfter", self.created_after),
            ("createdBefore", self.created_before),
        ):
            if value:
                params.append((key, value))
        if self.include_archived:
            params.append(("includeArchived", "true"))
        return params

    def body(self, project_id: str, *, bulk_retry_fields: bool = True) -> dict[str, Any]:
        """A bulk-route body (cancel takes no failed-step fields)."""
        body: dict[str, Any] = {"projectId": project_id}
        for key, value in (
            ("flowRunIds", list(self.flow_run_ids)),
            ("excludeFlowRunIds", list(self.exclude_flow_run_ids)),
            ("flowId", list(self.flow_ids)),
            ("status", list(self.statuses)),
            ("createdAfter", self.created_after),
            ("createdBefore", self.created_before),
        ):
            if value:
                body[key] = value
        if bulk_retry_fields:
            if self.failed_step_name:
                body["failedStepName"] = self.failed_step_name
            if self.failed_step_message:
                body["failedStepMessage"] = self.failed_step_message
        return body
