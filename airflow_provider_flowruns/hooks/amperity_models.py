"""Amperity's response bodies as the provider reads them (see ``core.models``): strict on the fields
the hooks use, lenient elsewhere. Imported by the hook only, never at DAG parse."""

from __future__ import annotations

from pydantic import Field

from airflow_provider_flowruns.core.models import Timestamp, VendorModel

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


class WatchedWorkflow(VendorModel):
    """A workflow in ``GET /workflow/runs`` as the watchers read it: the overview view's fields
    (``created_at`` is required by the spec; ``ended_at`` only once the run ended)."""

    id: str = Field(min_length=1)
    state: str
    created_at: Timestamp
    ended_at: Timestamp | None = None
    name: str | None = None
    type: str | None = None


class WatchedWorkflowPage(VendorModel):
    data: list[WatchedWorkflow]
    next_token: str | None = None
