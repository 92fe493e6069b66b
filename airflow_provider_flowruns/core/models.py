"""Reading vendor response bodies with pydantic models: lenient where we do not look, strict where we do.

A vendor hook declares, per response it relies on, a model holding only the fields the provider uses
(``VendorModel``: unknown fields are ignored, so a vendor adding fields never breaks a task). ``read``
validates a decoded body against it and turns a mismatch into ``UnexpectedResponse`` whose message
names the field's path as the vendor sent it (``recordStats[0].records[1].value: Field required``):
a shape we cannot recognise fails the task there, it never turns into empty or guessed output.

pydantic is imported by hooks only (never on the DAG-parse path); Airflow's task SDK loads it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_flowruns.core.errors import UnexpectedResponse

M = TypeVar("M", bound=BaseModel)

#: At most this many field problems are named in one message (the rest are counted).
MAX_PROBLEMS = 5


class VendorModel(BaseModel):
    """Base of every vendor response model: unknown fields ignored, fields readable by alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("recordStats", 0, "records")`` -> ``recordStats[0].records`` (the body's own spelling)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def describe(exc: ValidationError, *, prefix: str = "") -> str:
    """The first few problems of ``exc`` as ``path: message`` joined with ``; ``."""
    problems = []
    for error in exc.errors(include_url=False)[:MAX_PROBLEMS]:
        path = field_path(tuple(error.get("loc", ())))
        if prefix:
            joint = "" if path.startswith("[") else "."  # response[0].id, response.id
            path = prefix if path == "(body)" else f"{prefix}{joint}{path}"
        problems.append(f"{path}: {error.get('msg', 'invalid')}")
    extra = exc.error_count() - len(problems)
    if extra > 0:
        problems.append(f"and {extra} more")
    return "; ".join(problems)


def read(model: type[M], body: Any, *, what: str, prefix: str = "") -> M:
    """Validate ``body`` as ``model`` or raise ``UnexpectedResponse`` naming the offending fields.

    :param what: who answered and about what (``"Habu flow run fr-1 report page"``), for the message.
    :param prefix: the path of ``body`` inside the vendor's whole answer (``"response"`` when a
        wrapper was taken off), so the named path is the one a person finds in the vendor's body.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise UnexpectedResponse(f"{what}: unrecognised response: {describe(exc, prefix=prefix)}") from None


def dump(instance: BaseModel) -> Mapping[str, Any]:
    """A model as the plain mapping the vendor sent (by alias), for XCom and storage."""
    return instance.model_dump(by_alias=True, exclude_none=False)


# -- Amperity (control plane 2024-04-01) ------------------------------------------------------------
# Fields are the ones the Amperity hook reads; everything else in a Workflow (principal_*, versions,
# warn_after_ms, ...) is ignored. Required where the spec requires them and we rely on them.


class AmperityError(VendorModel):
    """``error`` of a Workflow or task instance; ``attribution`` says who fixes it (customer/platform)."""

    message: str | None = None
    attribution: str | None = None


class AmperityTaskInstance(VendorModel):
    id: str
    state: str
    label: str | None = None
    error: AmperityError | None = None


class AmperityWorkflow(VendorModel):
    """The start, get (overview or verbose) and stop answers: a ``Workflow``."""

    id: str
    state: str
    name: str | None = None
    type: str | None = None
    error: AmperityError | None = None
    task_instances: list[AmperityTaskInstance] | None = None


class AmperityWorkflowSummary(VendorModel):
    """A listed Workflow: what matching a lost start's run needs (``created_at`` bounds the search)."""

    id: str
    state: str
    created_at: str
    type: str | None = None


class AmperityWorkflowPage(VendorModel):
    """``GET /workflow/runs``: ``{data, next_token, total}``; no ``next_token`` on the last page."""

    data: list[AmperityWorkflowSummary]
    next_token: str | None = None


class AmperityToken(VendorModel):
    """``POST /v0/oauth2/token``: RFC 6749's ``access_token``/``expires_in``/``token_type``."""

    access_token: str = Field(min_length=1)
    expires_in: float | None = Field(default=None, gt=0)
    #: We send the token as ``Bearer``; any other type would be refused on every call.
    token_type: str | None = None


class AmperityErrorBody(VendorModel):
    """``ErrorResponse``: the spec allows only ``status``/``message``; the docs add the ids."""

    status: int | None = None
    message: str | None = None
    request_id: str | None = None
    trace_id: str | None = None


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
