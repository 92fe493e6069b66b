"""The Habu (LiveRamp Clean Room) bodies the provider relies on, as pydantic models.

Strict on the fields we use, lenient elsewhere (``VendorModel`` ignores unknown fields): an answer
we cannot recognise fails with the field's path as the vendor sent it (``response.recordStats[0].
records``), never as empty or guessed output. Every body may come wrapped as ``{"response": ...}``
(the example pages, seeds 000 and 001) or bare (the OpenAPI spec); :func:`unwrapped` takes the
wrapper off and says which prefix the named paths need.

Imported by the hook and the transfers at run time only, never at DAG parse (pydantic models cost
import time a DAG file should not pay; ``tests/test_parse_imports.py``).

Two report shapes, one table (``ReportPage.table``):

- the spec's ``QuestionRunResultData``: ``metadata`` (a list of ``{fieldName, columnName}``),
  ``stats`` (row objects), ``count``, ``multipleOutputs``;
- the example page's (seed 000): ``metadata: {facts, dimensions}`` and ``recordStats``, each record
  group ``{dimensions, records: [{key, value}]}`` is one row: its dimension values, then its facts.
  The seed only ever shows ``"dimensions": []``, so a group's dimensions are read two ways: a list
  of ``{key, value}`` (the shape its ``records`` have), or a plain list of values aligned with
  ``metadata.dimensions`` (the shape ``metadata`` suggests). Anything else, or a plain list of the
  wrong length, fails naming the group.

A report of zero rows is accepted only in a recognised shape that says so (an empty ``stats`` or
``recordStats`` list, or ``count: 0``); a body with neither list fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import Field, RootModel, model_validator

from airflow_provider_flowruns.core.errors import UnexpectedResponse
from airflow_provider_flowruns.core.models import Timestamp, VendorModel, read


def unwrapped(body: Any) -> tuple[Any, str]:
    """``(payload, prefix)``: the payload of a ``{"response": ...}`` wrapper (prefix ``response``)
    or the body itself (no prefix)."""
    if isinstance(body, dict) and len(body) == 1 and "response" in body:
        return body["response"], "response"
    return body, ""


def _at(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


# -- runs ----------------------------------------------------------------------------------------------
class RunStatusBody(VendorModel):
    """What a status read uses of ``FlowRunMetadata``/``QuestionRunMetadata`` (and ``/status``).

    Small on purpose: it is validated on every poll in the triggerer, and only these fields are
    looked at (the whole body still goes to ``RunStatus.raw`` untouched, not re-validated)."""

    status: str
    failureReason: str | None = None
    runMessage: str | None = None
    isRetryable: bool | None = None


class RunBody(RunStatusBody):
    """A flow run or question run as read by id or found in a listing: its id and status."""

    id: str = Field(min_length=1)
    name: str | None = None


class CreatedRun(VendorModel):
    """The answer to a create or a replay. The id is spelled three ways by the documents: ``id``
    (spec ``FlowRunMetadata``/``QuestionRunMetadata``), ``Id`` (seed 000's ``{"response":{"Id":
    "fr1234"}}``) and ``cleanRoomFlowRunID`` (the replay answer). One of them must be a non-empty
    string."""

    id: str | None = None
    Id: str | None = None
    cleanRoomFlowRunID: str | None = None

    @model_validator(mode="after")
    def _one_id(self) -> CreatedRun:
        if not (self.id or self.Id or self.cleanRoomFlowRunID):
            raise ValueError("no run id (expected a non-empty id, Id or cleanRoomFlowRunID)")
        return self

    @property
    def run_id(self) -> str:
        return str(self.id or self.Id or self.cleanRoomFlowRunID)


def created_run_id(body: Any, *, what: str) -> str:
    payload, prefix = unwrapped(body)
    return read(CreatedRun, payload, what=what, prefix=prefix).run_id


# -- provisioning answers ----------------------------------------------------------------------------------
class CreatedQuestion(VendorModel):
    """``POST /question``: ``{success, message, questionID}`` (the SDK also reads ``questionId``)."""

    questionID: str | None = None
    questionId: str | None = None

    @model_validator(mode="after")
    def _one_id(self) -> CreatedQuestion:
        if not (self.questionID or self.questionId):
            raise ValueError("no question id (expected a non-empty questionID)")
        return self


class IdentifiedObject(VendorModel):
    """A clean-room question (as provisioned or read): what we use is its ``id``."""

    id: str = Field(min_length=1)


class QuestionParameter(VendorModel):
    Name: str


class QuestionParameters(VendorModel):
    """``GET .../cleanroom-question-parameters``: PascalCase parameter records."""

    parameters: list[QuestionParameter]


class FlowRunParameterNode(VendorModel):
    nodeId: str


# -- report pages --------------------------------------------------------------------------------------------
class Column(VendorModel):
    fieldName: str | None = None
    columnName: str | None = None

    @property
    def name(self) -> str | None:
        return self.columnName or self.fieldName or None


class StatsPage(VendorModel):
    """The spec's ``QuestionRunResultData``. ``stats`` is required: a page without it is not this
    shape (an absent list is not an empty report)."""

    metadata: list[Column] = []
    stats: list[dict[str, Any]]
    count: int | None = None


class ResultOutputs(VendorModel):
    """The file names a question run's result data lists (``multipleOutputs``; absent = none)."""

    multipleOutputs: list[str | None] | None = None


class KeyValue(VendorModel):
    key: str
    value: Any = Field(...)


class RecordGroup(VendorModel):
    dimensions: list[KeyValue] | list[str | int | float | bool | None] = []
    records: list[KeyValue]


class FactsAndDimensions(VendorModel):
    facts: list[str]
    dimensions: list[str] = []


class RecordStatsPage(VendorModel):
    """Seed 000's report page."""

    metadata: FactsAndDimensions
    recordStats: list[RecordGroup]


class ReportPage:
    """One result page of either shape, read once; ``columns`` and ``rows`` are the same table for
    the same data whichever shape carried it."""

    def __init__(self, body: Any, *, what: str) -> None:
        payload, self.prefix = unwrapped(body)
        if isinstance(payload, dict) and "recordStats" in payload:
            self._seed: RecordStatsPage | None = read(RecordStatsPage, payload, what=what, prefix=self.prefix)
            self._spec: StatsPage | None = None
        elif isinstance(payload, dict) and "stats" in payload:
            self._spec = read(StatsPage, payload, what=what, prefix=self.prefix)
            self._seed = None
        else:
            got = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
            raise UnexpectedResponse(
                f"{what}: unrecognised response: {self.prefix or '(body)'}: neither a 'stats' list "
                f"(QuestionRunResultData) nor a 'recordStats' list (the example report page); got {got}",
                status=200,
            )
        self.what = what

    @property
    def size(self) -> int:
        """Rows (record groups) on this page: what the next offset moves by."""
        if self._spec is not None:
            return len(self._spec.stats)
        assert self._seed is not None
        return len(self._seed.recordStats)

    @property
    def count(self) -> int | None:
        """The total the vendor announced (the spec shape only; the seed shape announces none)."""
        return self._spec.count if self._spec is not None else None

    @property
    def columns(self) -> list[str]:
        """The declared columns: the spec's metadata names, or the seed's dimensions then facts."""
        if self._spec is not None:
            return list(dict.fromkeys(n for c in self._spec.metadata if (n := c.name)))
        assert self._seed is not None
        meta = self._seed.metadata
        return list(dict.fromkeys([*meta.dimensions, *meta.facts]))

    def rows(self) -> Iterator[Mapping[str, Any]]:
        if self._spec is not None:
            yield from self._spec.stats
            return
        assert self._seed is not None
        names = self._seed.metadata.dimensions
        for i, group in enumerate(self._seed.recordStats):
            where = _at(self.prefix, f"recordStats[{i}]")
            row: dict[str, Any] = {}
            dims = group.dimensions
            if dims and not isinstance(dims[0], KeyValue):
                if len(dims) != len(names):
                    raise UnexpectedResponse(
                        f"{self.what}: unrecognised response: {where}.dimensions: {len(dims)} plain "
                        f"values for the {len(names)} dimensions in metadata.dimensions {names}",
                        status=200,
                    )
                row.update(zip(names, dims, strict=True))
            else:
                for kv in dims:
                    assert isinstance(kv, KeyValue)
                    row[kv.key] = kv.value
            for j, record in enumerate(group.records):
                if record.key in row:
                    raise UnexpectedResponse(
                        f"{self.what}: unrecognised response: {where}.records[{j}].key: "
                        f"{record.key!r} appears twice in one record group",
                        status=200,
                    )
                row[record.key] = record.value
            yield row


# -- listings the watchers read (triggers/watch.py) ----------------------------------------------------
class ListedRun(VendorModel):
    """A ``FlowRunMetadata`` / ``QuestionRunMetadata`` in a listing: the watcher needs its id, status
    and submission time (the spec declares all three; an answer without them cannot be watched)."""

    id: str = Field(min_length=1)
    status: str
    name: str | None = None
    submittedAt: Timestamp
    completedAt: Timestamp | None = None


class FlowRunList(VendorModel):
    """``GET .../cleanroom-flows/{flowId}/cleanroom-flow-runs``: ``{cleanRoomFlowRuns, count}``."""

    cleanRoomFlowRuns: list[ListedRun]
    count: int | None = None


class QuestionRunList(RootModel[list[ListedRun]]):
    """``GET /cleanroom-questions/{id}/cleanroom-question-runs``: a bare array (no count wrapper)."""
