"""Activepieces's response bodies as the provider reads them (see ``core.models``): strict on the fields
the hooks use, lenient elsewhere. Imported by the hook only, never at DAG parse."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_provider_flowruns.core.models import Timestamp, VendorModel

# -- Activepieces (flow runs) -----------------------------------------------------------------------
# camelCase on the wire, snake_case here (aliases), so a named path is the vendor's spelling.


class ActivepiecesFailedStep(VendorModel):
    name: str
    display_name: str | None = Field(default=None, alias="displayName")


class ActivepiecesPauseMetadata(VendorModel):
    """``DELAY`` (``resumeDateTime``) or ``WEBHOOK`` (``requestId``; a waitpoint id where a server names one)."""

    type: str
    request_id: str | None = Field(default=None, alias="requestId")
    waitpoint_id: str | None = Field(default=None, alias="waitpointId")
    resume_date_time: str | None = Field(default=None, alias="resumeDateTime")


class ActivepiecesFlowRun(VendorModel):
    """A ``FlowRun`` (get, retry; list items without ``steps``). Both failed-step spellings: current
    ``failedStep{name,displayName}`` and the older schema's ``failedStepName``. Step data is kept as
    sent (it is the flow's own data); the transfer checks the steps it writes."""

    id: str
    status: str
    flow_id: str | None = Field(default=None, alias="flowId")
    failed_step: ActivepiecesFailedStep | None = Field(default=None, alias="failedStep")
    failed_step_name: str | None = Field(default=None, alias="failedStepName")
    termination_reason: str | None = Field(default=None, alias="terminationReason")
    pause_metadata: ActivepiecesPauseMetadata | None = Field(default=None, alias="pauseMetadata")
    steps: dict[str, Any] | None = None
    steps_data_truncated: bool | None = Field(default=None, alias="stepsDataTruncated")


class ActivepiecesSeekPage(VendorModel):
    """``GET /v1/flow-runs``: ``{data, next, previous}``; ``next`` null on the last page."""

    data: list[ActivepiecesFlowRun]
    next: str | None = None


class ActivepiecesStepOutput(VendorModel):
    """One entry of a run's ``steps`` as the step-outputs transfer writes it: ``output`` must be
    there (null is the vendor's own value and is written as such; a missing one is not guessed)."""

    output: Any


class WatchedFlowRun(VendorModel):
    """A run in ``GET /v1/flow-runs`` as the watchers read it (``created`` and ``finishTime`` are
    ISO strings in the source's ``FlowRun``)."""

    id: str = Field(min_length=1)
    status: str
    created: Timestamp
    finish_time: Timestamp | None = Field(default=None, alias="finishTime")
    flow_id: str | None = Field(default=None, alias="flowId")


class WatchedSeekPage(VendorModel):
    data: list[WatchedFlowRun]
    next: str | None = None
