"""The Tableflow bodies the provider reads, as pydantic models (see ``core.models``).

Strict on the fields the provider relies on (a run's ``id`` and ``status``, an extraction's
``data.tables``, a list page's ``flow_runs``), lenient everywhere else: unknown fields are ignored,
and the fields vendor-apis.md §4.2 calls unverified (``steps``, ``input_files``, ``flow_attempts``,
``current_attempt``, seeds/004 names them without an example) accept any JSON shape of the kind the
page names (``steps`` and ``flow_attempts`` arrays, ``input_files`` and ``drive_files`` objects).
Where the provider looks inside one (a step's extraction id) it checks that value and names its
path when it is not what it needs.

Imported by the Tableflow hook only, never at DAG parse.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from airflow_provider_flowruns.core.errors import UnexpectedResponse
from airflow_provider_flowruns.core.models import Timestamp, VendorModel

#: Where a step execution may name the extraction it produced. No public page documents it
#: (vendor-apis.md §4.2, "a guess: per-step results with extraction IDs"): these are the two
#: spellings we look for, the step's own field and its ``outputs`` object.
EXTRACTION_ID_PATHS = ("steps[].extraction_id", "steps[].outputs.extraction_id")


class HistoryEntry(VendorModel):
    status: str | None = None
    time: float | None = None
    message: str | None = None


class RunStatusBody(VendorModel):
    """What one poll reads (``parse_status``): kept to three fields so a poll stays cheap."""

    status: str
    error: str | None = None
    status_history: list[HistoryEntry] | None = None


class RunCreated(VendorModel):
    """The answer to an upload (or a run found again): all the provider needs is the id."""

    id: str


class StepExecution(VendorModel):
    """One entry of a run's ``steps`` (seeds/004: "the step ID, status, timing, and any outputs or
    errors"; field names beyond that are unknown, so every one is optional)."""

    id: str | None = None
    step_id: str | None = None
    title: str | None = None
    type: str | None = None
    status: str | None = None
    error: Any = None
    extraction_id: str | None = None
    outputs: Any = None


class FlowRunBody(VendorModel):
    """A run as ``GET /v2/flows/runs/{id}`` answers it (seeds/004), for collecting its results."""

    id: str
    status: str
    flow_id: str | None = None
    error: str | None = None
    status_history: list[HistoryEntry] | None = None
    metadata: dict[str, Any] | None = None
    drive_files: dict[str, Any] | None = None
    input_files: dict[str, Any] | list[Any] | None = None
    flow_attempts: list[Any] | int | None = None
    current_attempt: int | None = None
    steps: list[StepExecution] | None = None


class FlowFileField(VendorModel):
    key: str
    required: bool = False


class FileInputConfig(VendorModel):
    file_fields: list[FlowFileField] = []


class FlowBody(VendorModel):
    """One entry of ``GET /v2/flows``: its id and the file fields an upload is checked against."""

    id: str
    file_input_config: FileInputConfig | None = None


class FlowList(RootModel[list[FlowBody]]):
    pass


class RunListItem(VendorModel):
    id: str
    metadata: dict[str, Any] | None = None


class RunList(RootModel[list[RunListItem]]):
    """``GET /v2/flows/{id}/runs``: a bare list of runs."""


class Pagination(VendorModel):
    total: int | None = None
    next_offset: int | None = None


class FlowRunsPage(VendorModel):
    """``GET /v2/flows/runs``: ``{"flow_runs": [...], "pagination": {...}}`` (vendor-apis.md §4.2)."""

    flow_runs: list[RunListItem]
    pagination: Pagination | None = None


class ExtractionData(VendorModel):
    tables: dict[str, Any]


class ExtractionBody(VendorModel):
    """``GET /v2/extractions/{id}``: the table keys to download, and what the original is called."""

    id: str
    status: str
    file_name: str | None = None
    data: ExtractionData


def extraction_ids(run: FlowRunBody) -> list[str]:
    """The extraction ids the run's steps name, in order, each once (see :data:`EXTRACTION_ID_PATHS`).

    An ``outputs.extraction_id`` that is not a string fails naming its path: a value we would have
    to guess about is never skipped quietly.
    """
    found: list[str] = []
    for i, step in enumerate(run.steps or []):
        candidates = [step.extraction_id]
        if isinstance(step.outputs, dict) and "extraction_id" in step.outputs:
            value = step.outputs["extraction_id"]
            if value is not None and not isinstance(value, str):
                raise UnexpectedResponse(
                    f"Tableflow run {run.id}: steps[{i}].outputs.extraction_id: expected a string, "
                    f"got {type(value).__name__}",
                    status=200,
                )
            candidates.append(value)
        for value in candidates:
            if value and value not in found:
                found.append(value)
    return found


class WatchedRun(VendorModel):
    """A run in ``GET /v2/flows/runs`` as the watchers read it (timestamps are Unix seconds)."""

    id: str = Field(min_length=1)
    status: str
    flow_id: str | None = None
    name: str | None = None
    created_at: Timestamp
    end_time: Timestamp | None = None


class WatchedRunsPage(VendorModel):
    flow_runs: list[WatchedRun]
    pagination: Pagination | None = None
