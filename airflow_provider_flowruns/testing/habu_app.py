"""An in-memory LiveRamp Clean Room (formerly Habu) API, mounted at ``/habu/v1``.

It reproduces what a provider can trip over: OAuth client credentials with camelCase token fields
and at most 2 tokens per 24 emulated hours, a shared limit of 20 run creations per emulated hour
(flow runs, question runs and replays; 429 without ``Retry-After``), two documented spellings of
the flow-run create call (path and body), flow runs that pause at a level and are resumed or
replayed, report pages whose values are all strings, question runs with partner stages, hostile
output file names, a streamed big file, and the vendor's two error shapes (``ReturnObject
{code, message}``, and Spring's ``{status, code, timestamp, message, details}`` on 401).

Polls are never refused but recorded per run: ``stats()`` shows ``polls_too_frequent`` (a run
polled again within 300 emulated seconds) and ``max_polls_per_run_hour``.

Credentials: ``POST /habu/v1/oauth/token`` with ``Authorization: Basic base64(habu-client:secret)``,
form ``grant_type=client_credentials``; the secret is ``FLOWRUNS_HABU_CLIENT_SECRET`` (default
``habu-secret``); tokens live ``FLOWRUNS_HABU_TOKEN_LIFETIME`` emulated seconds (default 86400).

Fixtures (clean room ``cr-acme``; every run is ``QUEUED`` for 60 emulated seconds first):

- ``flow-weekly``: levels Match (``Q-1001``, node ``6f1c1b7e-0001-4000-8000-000000000001``; needs
  partition parameters ``START_DATE``/``END_DATE``), Reach (``Q-1002``, ``...0002``; optional
  ``BRAND``; 1234 report rows with awkward ``note`` values), Overlap (``Q-1003``, ``...0003``; 2
  rows and two output files), 1800 emulated seconds per level.
- ``flow-fail``: Match and Reach; Reach fails, so the run ends ``FAILED``.
- ``flow-slow``: Match only, taking 6 emulated hours.
- Questions: ``crq-reach`` (60 s queued, 1800 s running, 2500 rows), ``crq-partner`` (through the
  ``PARTNER_*`` stages, 600 s each), ``crq-fail`` (ends ``FAILED``), ``crq-missing`` (stage
  ``MISSING_DATASETS``: create-run answers 412), ``crq-files`` (quick; hostile output names),
  ``crq-big`` (quick; ``big.bin`` of ``FLOWRUNS_HABU_BIG_FILE_MB`` MiB, default 64, streamed),
  ``crq-big-report`` (quick; ``FLOWRUNS_HABU_BIG_REPORT_ROWS`` result rows, default 2000, of about
  512 bytes as CSV each, computed page by page: benchmark 3's paginated report).
  Questions provisioned through the API become ``READY`` once both dataset calls were made and
  then behave like ``crq-reach``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.limits import WindowLimit
from airflow_provider_flowruns.testing.progression import Progression
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError, attachment, int_query

CLIENT_ID = "habu-client"
#: Overridable so secret-leak tests can use a sentinel value of their own.
CLIENT_SECRET = os.environ.get("FLOWRUNS_HABU_CLIENT_SECRET", "habu-secret")
TOKEN_LIFETIME = float(os.environ.get("FLOWRUNS_HABU_TOKEN_LIFETIME", 86400))
#: Read when a ``big.bin`` is served, so a test may patch it; the env var sets it for a process.
BIG_FILE_MB = int(os.environ.get("FLOWRUNS_HABU_BIG_FILE_MB", "64"))
#: Rows of ``crq-big-report``; read when a page is served, like :data:`BIG_FILE_MB`.
BIG_REPORT_ROWS = int(os.environ.get("FLOWRUNS_HABU_BIG_REPORT_ROWS", "2000"))

TOKENS_PER_DAY, TOKEN_WINDOW = 2, 86400.0
CREATES_PER_HOUR, CREATE_WINDOW = 20, 3600.0
#: The docs allow a status poll "up to every 5 minutes" and at most 20 per hour.
POLL_MIN_GAP, POLL_WINDOW = 300.0, 3600.0
QUEUED_SECONDS = 60.0
LEVEL_SECONDS = 1800.0
FLOW_LIST_LIMIT = 30
QUESTION_LIST_LIMIT, QUESTION_LIST_MAX = 30, 100
PAGE_LIMIT, PAGE_MAX = 500, 1000
STREAM_CHUNK = 64 * 1024

CLEANROOM_ID = "cr-acme"
ORGANIZATION_ID = "org-acme"
#: When the fixtures were "created": fixed, so fixture views are stable.
FIXTURES_CREATED_AT = 1735689600.0  # 2025-01-01T00:00:00Z
UNAUTHORIZED_MESSAGE = "Full authentication is required to access this resource"
FLOW_TERMINAL = frozenset({"COMPLETED", "FAILED"})
REPLAYABLE = frozenset({"COMPLETED", "PAUSED", "FAILED"})
QUESTION_STATUSES = (
    "QUEUED",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "PARTNER_QUEUED",
    "PARTNER_RUNNING",
    "PARTNER_COMPLETED",
    "PARTNER_FAILED",
    "ERROR",
    "PENDING_RETRY",
)
COUNTERS = (
    "tokens_minted",
    "token_refused",
    "runs_created",
    "creates_refused",
    "status_polls",
    "polls_too_frequent",
    "run_listings",
    "resumes",
    "replays",
    "report_pages",
    "downloads",
    "unauthorized",
)


# -- results: rows are computed from their index, never stored ---------------------------------------
@dataclass(frozen=True)
class ResultSet:
    """A node's or question's result: ``columns`` are (name, dataType); every value is a string."""

    columns: tuple[tuple[str, str], ...]
    rows: int
    row: Callable[[int], dict[str, str]]
    outputs: tuple[str, ...] = ()

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        return {
            "metadata": [{"fieldName": c, "dataType": t, "columnName": c} for c, t in self.columns],
            "stats": [self.row(i) for i in range(offset, min(offset + limit, self.rows))],
            "count": self.rows,
            "multipleOutputs": list(self.outputs),
        }


BRANDS = ("nike", "adidas", "puma", "reebok")
#: Values a CSV or JSON consumer must not mangle: commas, quotes, newlines, unicode, empty.
AWKWARD_NOTES = (
    "plain",
    "comma, inside",
    'say "hello"',
    "line one\nline two",
    "café ✓",
    "",
    'all of it: "a, b"\r\nnext ✓',
)


def _day(index: int) -> str:
    return date.fromordinal(date(2025, 1, 1).toordinal() + index % 365).isoformat()


def _reach_row(i: int) -> dict[str, str]:
    return {
        "brand": BRANDS[i % len(BRANDS)],
        "date": _day(i),
        "reach": str(1000 + (i * 7919) % 50000),
        "note": AWKWARD_NOTES[i % len(AWKWARD_NOTES)],
    }


MATCH_RESULT = ResultSet((("matched_ids", "LONG"),), 1, lambda i: {"matched_ids": "576"})
REACH_RESULT = ResultSet(
    (("brand", "STRING"), ("date", "DATE"), ("reach", "LONG"), ("note", "STRING")), 1234, _reach_row
)
OVERLAP_RESULT = ResultSet(
    (("segment", "STRING"), ("overlap", "LONG"), ("overlap_rate", "DOUBLE")),
    2,
    lambda i: [
        {"segment": "exposed", "overlap": "412", "overlap_rate": "0.7153"},
        {"segment": "unexposed", "overlap": "164", "overlap_rate": "0.2847"},
    ][i],
    ("overlap_summary.csv", "overlap_by_day.csv"),
)
QUESTION_REACH_RESULT = ResultSet(
    (("brand", "STRING"), ("day", "DATE"), ("reach", "LONG")),
    2500,
    lambda i: {"brand": BRANDS[i % len(BRANDS)], "day": _day(i), "reach": str(500 + (i * 104729) % 90000)},
    ("reach_by_day.csv", "reach_summary.csv"),
)
HOSTILE_OUTPUTS = ("../../escape.csv", "sub/dir/out.csv", "résumé ✓.csv", ".hidden")
FILES_RESULT = ResultSet(
    (("file", "STRING"), ("rows", "LONG")),
    len(HOSTILE_OUTPUTS),
    lambda i: {"file": HOSTILE_OUTPUTS[i], "rows": "5"},
    HOSTILE_OUTPUTS,
)
BIG_FILE = "big.bin"
BIG_RESULT = ResultSet((("file", "STRING"),), 1, lambda i: {"file": BIG_FILE}, (BIG_FILE,))
#: 400 characters of text per wide row (a description-like column), sliced at a row-dependent offset.
_WIDE_TEXT = ("Exposed households matched across partner datasets; segment detail follows. " * 12)[:800]


def _wide_row(i: int) -> dict[str, str]:
    """A report row of about 512 bytes as CSV; every value a string, as Habu sends them."""
    return {
        "row_id": str(i),
        "brand": BRANDS[i % len(BRANDS)],
        "date": _day(i),
        "segment": f"segment-{i % 97:02d}",
        "reach": str(1000 + (i * 7919) % 50000),
        "frequency": f"{1 + (i * 104729) % 9000 / 1000:.3f}",
        "detail": _WIDE_TEXT[i % 400 : i % 400 + 400],
    }


_WIDE_COLUMNS = (
    ("row_id", "LONG"),
    ("brand", "STRING"),
    ("date", "DATE"),
    ("segment", "STRING"),
    ("reach", "LONG"),
    ("frequency", "DOUBLE"),
    ("detail", "STRING"),
)


def file_bytes(name: str) -> bytes:
    """The content of a (non-big) output file: a small CSV that depends only on its name."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "row", "value"])
    for row in range(5):
        writer.writerow([name, row, (seed + row * 7919) % 100000])
    return buffer.getvalue().encode()


def big_file_chunks(size: int) -> Iterator[bytes]:
    """``big.bin``: ``size`` deterministic bytes in :data:`STREAM_CHUNK` pieces, never held whole."""
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(STREAM_CHUNK // 32))
    left = size
    while left > 0:
        piece = block[: min(left, STREAM_CHUNK)]
        left -= len(piece)
        yield piece


def big_file_size() -> int:
    return BIG_FILE_MB * 1024 * 1024


# -- flows --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamDef:
    name: str
    display_name: str
    field_type: str
    parameter_type: str
    required: bool
    index: int


@dataclass(frozen=True)
class NodeDef:
    id: str
    label: str
    display_id: str
    level: int
    title: str
    params: tuple[ParamDef, ...]
    result: ResultSet

    def param(self, name: str) -> ParamDef | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class FlowDef:
    id: str
    name: str
    nodes: tuple[NodeDef, ...]
    level_seconds: float = LEVEL_SECONDS
    fail_level: int | None = None
    fail_message: str = ""

    @property
    def levels(self) -> int:
        return max(n.level for n in self.nodes)

    def node(self, identifier: str) -> NodeDef | None:
        """A node by UUID or question display id, optionally with the ``_1`` instance suffix."""
        base = identifier[:-2] if identifier.endswith("_1") else identifier
        return next((n for n in self.nodes if base in (n.id, n.display_id)), None)


NODE_PREFIX = "6f1c1b7e-0001-4000-8000-00000000000"
DATE_RANGE = (
    ParamDef("START_DATE", "Start date", "DATE", "PARTITION_PARAMETER", True, 0),
    ParamDef("END_DATE", "End date", "DATE", "PARTITION_PARAMETER", True, 1),
)
MATCH = NodeDef(f"{NODE_PREFIX}1", "Match", "Q-1001", 1, "Match RampIDs", DATE_RANGE, MATCH_RESULT)
REACH = NodeDef(
    f"{NODE_PREFIX}2",
    "Reach",
    "Q-1002",
    2,
    "Reach by brand",
    (ParamDef("BRAND", "Brand", "STRING", "RUN_TIME_PARAMETER", False, 0),),
    REACH_RESULT,
)
OVERLAP = NodeDef(f"{NODE_PREFIX}3", "Overlap", "Q-1003", 3, "Audience overlap", (), OVERLAP_RESULT)
FLOWS = {
    f.id: f
    for f in (
        FlowDef("flow-weekly", "Weekly brand reach", (MATCH, REACH, OVERLAP)),
        FlowDef(
            "flow-fail",
            "Weekly brand reach (broken)",
            (MATCH, REACH),
            fail_level=2,
            fail_message="Node Reach failed: dataset BRAND_EXPOSURES is empty",
        ),
        FlowDef("flow-slow", "Full-year match", (MATCH,), level_seconds=6 * 3600.0),
    )
}


@dataclass
class Segment:
    """One stretch of execution: levels ``first``..``last`` back to back, after ``queued_for``."""

    started_at: float
    queued_for: float
    first: int
    last: int


@dataclass
class FlowRun:
    """A flow run; its status is computed from the clock, so nothing needs a background task.

    Levels below ``reused_below`` were taken from the parent run (replay); a create starts one
    segment and each resume appends one.
    """

    seq: int
    id: str
    name: str
    flow: FlowDef
    submitted_at: float
    parameters: dict[str, dict[str, str]]
    node_run_ids: dict[int, str]
    segments: list[Segment]
    reused_below: int = 1
    parent_id: str | None = None

    def _begins(self, segment: Segment, level: int) -> float:
        return segment.started_at + segment.queued_for + (level - segment.first) * self.flow.level_seconds

    def _ends(self, segment: Segment, level: int) -> float:
        return self._begins(segment, level) + self.flow.level_seconds

    def _failed_at(self) -> float | None:
        """When the failing level ends, if a segment runs it."""
        fail = self.flow.fail_level
        for segment in self.segments:
            if fail is not None and segment.first <= fail <= segment.last:
                return self._ends(segment, fail)
        return None

    def level_status(self, level: int, now: float) -> str:
        if level < self.reused_below:
            return "COMPLETED"
        segment = next((s for s in self.segments if s.first <= level <= s.last), None)
        if segment is None:
            return "NOT_STARTED"
        failed_at = self._failed_at()
        fail = self.flow.fail_level
        if fail is not None and level > fail and failed_at is not None and now >= failed_at:
            return "NOT_STARTED"
        if now < self._begins(segment, level):
            return "QUEUED"
        if now < self._ends(segment, level):
            return "RUNNING"
        return "FAILED" if level == fail else "COMPLETED"

    def status(self, now: float) -> str:
        segment = self.segments[-1]
        if now < segment.started_at + segment.queued_for:
            return "QUEUED"
        failed_at = self._failed_at()
        if failed_at is not None and now >= failed_at:
            return "FAILED"
        if now < self._ends(segment, segment.last):
            return "RUNNING"
        return "PAUSED" if segment.last < self.flow.levels else "COMPLETED"

    @property
    def paused_at(self) -> int:
        return self.segments[-1].last

    def executed_at(self, now: float) -> float | None:
        first = self.segments[0]
        start = first.started_at + first.queued_for
        return start if now >= start else None

    def completed_at(self, now: float) -> float | None:
        status = self.status(now)
        if status == "FAILED":
            return self._failed_at()
        if status == "COMPLETED":
            return self._ends(self.segments[-1], self.segments[-1].last)
        return None

    def run_message(self, now: float) -> str:
        status = self.status(now)
        if status == "PAUSED":
            return f"Paused at Level-{self.paused_at}"
        if status == "FAILED":
            return self.flow.fail_message
        return ""


# -- questions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuestionKind:
    """How runs of a question behave."""

    progression: Progression
    result: ResultSet
    failure: str | None = None


def _result(kind: QuestionKind) -> ResultSet:
    """A question kind's result; ``crq-big-report``'s row count is read when it is served."""
    if kind is BIG_REPORT_KIND:
        return dataclasses.replace(kind.result, rows=BIG_REPORT_ROWS)
    return kind.result


REACH_KIND = QuestionKind(
    Progression((("QUEUED", QUEUED_SECONDS), ("RUNNING", LEVEL_SECONDS)), "COMPLETED"), QUESTION_REACH_RESULT
)
PARTNER_KIND = QuestionKind(
    Progression(
        (
            ("QUEUED", 600.0),
            ("PARTNER_QUEUED", 600.0),
            ("PARTNER_RUNNING", 600.0),
            ("PARTNER_COMPLETED", 600.0),
        ),
        "COMPLETED",
    ),
    QUESTION_REACH_RESULT,
)
FAIL_KIND = QuestionKind(
    Progression((("QUEUED", QUEUED_SECONDS), ("RUNNING", LEVEL_SECONDS)), "FAILED"),
    QUESTION_REACH_RESULT,
    failure="Query failed: column BRAND_ID not found",
)
QUICK = Progression((("QUEUED", QUEUED_SECONDS), ("RUNNING", 60.0)), "COMPLETED")
FILES_KIND = QuestionKind(QUICK, FILES_RESULT)
BIG_KIND = QuestionKind(QUICK, BIG_RESULT)
#: Its row count is BIG_REPORT_ROWS at the time a page is served (see ``_result``).
BIG_REPORT_KIND = QuestionKind(QUICK, ResultSet(_WIDE_COLUMNS, 0, _wide_row))

#: PascalCase, as the question-parameters endpoint spells them.
QUESTION_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "Name": "START_DATE",
        "Index": 0,
        "DataType": "DATE",
        "ParameterType": "PARTITION_PARAMETER",
        "DisplayName": "Start date",
        "Description": "First day of exposures (inclusive)",
        "ExampleValue": "2025-01-01",
        "Format": "yyyy-MM-dd",
        "IsSynced": False,
        "HasConstraint": False,
        "ConstraintType": None,
        "AllowedValues": [],
        "DefaultValue": "",
        "partitionFieldConfig": {"type": "Range", "values": [], "rollingUnit": None, "isEnforced": False},
    },
    {
        "Name": "END_DATE",
        "Index": 1,
        "DataType": "DATE",
        "ParameterType": "PARTITION_PARAMETER",
        "DisplayName": "End date",
        "Description": "Last day of exposures (inclusive)",
        "ExampleValue": "2025-01-31",
        "Format": "yyyy-MM-dd",
        "IsSynced": False,
        "HasConstraint": False,
        "ConstraintType": None,
        "AllowedValues": [],
        "DefaultValue": "",
        "partitionFieldConfig": {"type": "Range", "values": [], "rollingUnit": None, "isEnforced": False},
    },
    {
        "Name": "BRAND",
        "Index": 2,
        "DataType": "STRING",
        "ParameterType": "RUNTIME_PARAMETER",
        "DisplayName": "Brand",
        "Description": "Brand to report on",
        "ExampleValue": "nike",
        "Format": "",
        "IsSynced": False,
        "HasConstraint": True,
        "ConstraintType": "DEFAULT_VALUE",
        "AllowedValues": [],
        "DefaultValue": "all",
        "partitionFieldConfig": None,
    },
)
REQUIRED_QUESTION_PARAMETERS = ("START_DATE", "END_DATE")


@dataclass
class CleanRoomQuestion:
    id: str
    question_id: str
    name: str
    display_id: str
    kind: QuestionKind
    stage: str = "READY"
    created_at: float = FIXTURES_CREATED_AT
    is_editable: bool = False
    datasets_owned: bool = False
    datasets_configured: bool = False


def _fixture_questions() -> dict[str, CleanRoomQuestion]:
    specs = (
        ("crq-reach", "Reach by day", REACH_KIND, "READY"),
        ("crq-partner", "Partner reach by day", PARTNER_KIND, "READY"),
        ("crq-fail", "Reach by brand id", FAIL_KIND, "READY"),
        ("crq-missing", "Reach without datasets", REACH_KIND, "MISSING_DATASETS"),
        ("crq-files", "Exports with odd names", FILES_KIND, "READY"),
        ("crq-big", "Big export", BIG_KIND, "READY"),
        ("crq-big-report", "Big report", BIG_REPORT_KIND, "READY"),
    )
    return {
        crq: CleanRoomQuestion(crq, f"q-{crq[4:]}", name, f"CRQ-{2001 + i}", kind, stage)
        for i, (crq, name, kind, stage) in enumerate(specs)
    }


@dataclass
class QuestionRun:
    seq: int
    id: str
    question: CleanRoomQuestion
    name: str
    submitted_at: float
    parameters: dict[str, str]
    partition_parameters: list[dict[str, str]] = field(default_factory=list)

    def status(self, now: float) -> str:
        return self.question.kind.progression.status_at(now - self.submitted_at)

    def executed_at(self, now: float) -> float | None:
        start = self.submitted_at + self.question.kind.progression.steps[0][1]
        return start if now >= start else None

    def completed_at(self, now: float) -> float | None:
        end = self.submitted_at + self.question.kind.progression.duration
        return end if now >= end else None


# -- helpers ------------------------------------------------------------------------------------------
def iso(ts: float) -> str:
    """``2025-01-01T00:00:00.000+00:00``, the form of the documented ``expiresAt``."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


class _Unauthenticated(Exception):
    """No valid bearer token; rendered in Spring's own 401 shape by :class:`_route_class`."""


def _route_class(emulator: HabuEmulator) -> type[APIRoute]:
    """Routes that answer a missing or bad bearer token with the observed 401 body.

    That body names the request path, which the shared ``VendorError`` handler cannot see.
    """

    class HabuRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    response: Response = await handler(request)
                    return response
                except _Unauthenticated:
                    return emulator.unauthorized_response(request)

            return guarded

    return HabuRoute


async def _json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise VendorError(400, "Request body is required")
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise VendorError(400, "Malformed JSON request body")


async def _json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = await _json_body(request, required=required)
    if not isinstance(body, dict):
        raise VendorError(400, "Request body must be a JSON object")
    return body


def _date(value: str, name: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise VendorError(400, f"{name} must be a date in yyyy-MM-dd form (got {value!r})")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise VendorError(400, f"{name} is not a valid date: {value!r}")


def _check_date_range(values: Mapping[str, str], where: str) -> None:
    if "START_DATE" not in values or "END_DATE" not in values:
        return
    if _date(values["END_DATE"], "END_DATE") < _date(values["START_DATE"], "START_DATE"):
        raise VendorError(400, f"END_DATE is before START_DATE{where}")


def _scalar(value: Any, name: str) -> str:
    """A parameter value as the API echoes it: always a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise VendorError(400, f"Parameter {name} must be a string or a number")


def _level(body: Mapping[str, Any], spec_key: str, seed_key: str, levels: int) -> int | None:
    """A level from ``spec_key`` (``"Level-N"``) or ``seed_key`` (an int, or ``"Level-N"``)."""
    for key, ints_ok in ((spec_key, False), (seed_key, True)):
        value = body.get(key)
        if value is None or value == "":
            continue
        if ints_ok and isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (match := re.fullmatch(r"Level-(\d+)", value)):
            number = int(match[1])
        else:
            expected = "'Level-N' or an integer" if ints_ok else "'Level-N'"
            raise VendorError(400, f"{key} must be {expected} (got {value!r})")
        if not 1 <= number <= levels:
            raise VendorError(400, f"{key} Level-{number} is beyond the flow's {levels} levels")
        return number
    return None


class HabuEmulator(VendorEmulator):
    name = "habu"

    def __init__(self, clock: EmulatorClock) -> None:
        super().__init__(clock)
        self.token_lifetime = TOKEN_LIFETIME
        self.flows = dict(FLOWS)
        self.questions = _fixture_questions()
        self.base_questions: dict[str, str] = {}
        self.flow_runs: dict[str, FlowRun] = {}
        self.question_runs: dict[str, QuestionRun] = {}
        self.tokens: dict[str, float] = {}
        self.token_limits: dict[str, WindowLimit] = {}
        #: One budget for flow-run creates, question-run creates and replays.
        self.create_limit = WindowLimit(clock, CREATES_PER_HOUR, CREATE_WINDOW)
        self._polls: dict[str, deque[float]] = {}
        self.max_polls_per_run_hour = 0
        self._seq = 0

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.questions = _fixture_questions()
            self.base_questions.clear()
            self.flow_runs.clear()
            self.question_runs.clear()
            self.tokens.clear()
            self.token_limits.clear()
            self.create_limit = WindowLimit(self.clock, self.create_limit.limit, CREATE_WINDOW)
            self._polls.clear()
            self.max_polls_per_run_hour = 0
            self._seq = 0

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, self.clock.now())

    def stats(self) -> dict[str, Any]:
        # Counters start at 0 so tests can assert "no 429s" without a KeyError; minted token
        # values are listed so tests can prove they never leak into Airflow's logs or XCom.
        return {
            **dict.fromkeys(COUNTERS, 0),
            **self.counters,
            "max_polls_per_run_hour": self.max_polls_per_run_hour,
            "max_creates_in_an_hour": self.create_limit.peak,
            "flow_runs": len(self.flow_runs),
            "question_runs": len(self.question_runs),
            "minted_tokens": sorted(self.tokens),
        }

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        if status == 415:  # Spring's own answer, before the API's handlers see the request
            return {"status": "UNSUPPORTED_MEDIA_TYPE", "message": message}
        if code is None:
            try:
                code = HTTPStatus(status).name
            except ValueError:
                code = "ERROR"
        return {"code": code, "message": message}

    def unauthorized_response(self, request: Request) -> JSONResponse:
        self.counters["unauthorized"] += 1
        path = request.url.path
        mount = f"/{self.name}"
        if path.startswith(mount + "/"):
            path = path[len(mount) :]
        moment = datetime.fromtimestamp(self.clock.now(), timezone.utc)
        body = {
            "status": "UNAUTHORIZED",
            "code": 401,
            "timestamp": moment.strftime("%d-%m-%Y %H:%M:%S"),
            "message": UNAUTHORIZED_MESSAGE,
            "details": f"uri={path}",
        }
        return JSONResponse(body, status_code=401)

    # -- auth ----------------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Unauthenticated
        expires_at = self.tokens.get(token)
        if expires_at is None or expires_at <= self.clock.now():
            raise _Unauthenticated

    async def _mint(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise VendorError(415, f"Content-Type '{content_type or 'none'}' is not supported")
        header = request.headers.get("authorization", "")
        if not header.strip():
            raise VendorError(400, "Missing Authorization header: send Basic client credentials")
        scheme, _, encoded = header.partition(" ")
        try:
            if scheme.lower() != "basic":
                raise ValueError(scheme)
            client, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            if not sep:
                raise ValueError("no colon")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise VendorError(400, "Malformed Authorization header: expected Basic base64(client:secret)")
        if client != CLIENT_ID or secret != CLIENT_SECRET:
            self.counters["unauthorized"] += 1
            raise VendorError(401, "Bad client credentials")
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            raise VendorError(400, "grant_type must be client_credentials")
        with self.lock:
            limit = self.token_limits.setdefault(
                client, WindowLimit(self.clock, TOKENS_PER_DAY, TOKEN_WINDOW)
            )
        if limit.hit() is not None:
            self.counters["token_refused"] += 1
            raise VendorError(
                429,
                f"Token issuance limit reached: {TOKENS_PER_DAY} tokens per 24 hours",
                code="TOO_MANY_REQUESTS",
            )
        value = secrets.token_urlsafe(32)
        lifetime = self.token_lifetime
        expires_at = self.clock.now() + lifetime
        with self.lock:
            self.tokens[value] = expires_at
            self.counters["tokens_minted"] += 1
        return {
            "accessToken": value,
            "tokenType": "Bearer",
            "expiresIn": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "expiresAt": iso(expires_at),
        }

    # -- shared bookkeeping ----------------------------------------------------------------------------
    def _take_create_slot(self) -> None:
        """Counts against the shared hourly budget; 429 without ``Retry-After`` when spent."""
        if self.create_limit.hit() is not None:
            self.counters["creates_refused"] += 1
            raise VendorError(
                429,
                f"Run creation limit reached: {self.create_limit.limit} run creations per hour "
                "(flow runs, question runs and replays)",
                code="TOO_MANY_REQUESTS",
            )

    def _record_poll(self, run_id: str) -> None:
        now = self.clock.now()
        with self.lock:
            self.counters["status_polls"] += 1
            polls = self._polls.setdefault(run_id, deque())
            if polls and now - polls[-1] < POLL_MIN_GAP:
                self.counters["polls_too_frequent"] += 1
            polls.append(now)
            while polls[0] <= now - POLL_WINDOW:
                polls.popleft()
            self.max_polls_per_run_hour = max(self.max_polls_per_run_hour, len(polls))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- flow lookups --------------------------------------------------------------------------------
    @staticmethod
    def _cleanroom(cid: str) -> None:
        if cid != CLEANROOM_ID:
            raise VendorError(404, f"Clean room {cid} not found", code="NOT_FOUND")

    def _flow(self, cid: str, flow_id: str) -> FlowDef:
        self._cleanroom(cid)
        flow = self.flows.get(flow_id)
        if flow is None:
            raise VendorError(404, f"Clean room flow {flow_id} not found", code="NOT_FOUND")
        return flow

    def _flow_run(self, cid: str, run_id: str, flow_id: str | None = None) -> FlowRun:
        self._cleanroom(cid)
        run = self.flow_runs.get(run_id)
        if run is None or (flow_id is not None and run.flow.id != flow_id):
            raise VendorError(404, f"Flow run {run_id} not found", code="NOT_FOUND")
        return run

    def _run_node(self, run: FlowRun, identifier: str) -> NodeDef:
        node = run.flow.node(identifier)
        if node is None:
            raise VendorError(404, f"Node {identifier} not found in flow {run.flow.id}", code="NOT_FOUND")
        status = run.level_status(node.level, self.clock.now())
        if status != "COMPLETED":
            raise VendorError(
                400,
                f"Node {node.label} of flow run {run.id} has no results (status {status})",
                code="NODE_NOT_READY",
            )
        return node

    # -- flow creation -------------------------------------------------------------------------------
    @staticmethod
    def _add_parameters(
        flow: FlowDef, into: dict[str, dict[str, str]], entries: Any, key: str, id_key: str
    ) -> None:
        """Merge one body shape's node entries into ``into`` (node id -> name -> value)."""
        if entries is None:
            return
        if not isinstance(entries, list):
            raise VendorError(400, f"{key} must be a list")
        for entry in entries:
            if not isinstance(entry, dict):
                raise VendorError(400, f"Each entry of {key} must be an object")
            identifier = entry.get(id_key)
            if not isinstance(identifier, str) or not identifier:
                raise VendorError(400, f"Each entry of {key} needs {id_key}")
            node = flow.node(identifier)
            if node is None:
                raise VendorError(400, f"Unknown node {identifier!r} in flow {flow.id}")
            values = entry.get("parameters") or {}
            if not isinstance(values, dict):
                raise VendorError(400, f"parameters of node {identifier} must be an object")
            merged = into.setdefault(node.id, {})
            for name, raw in values.items():
                param = node.param(name)
                if param is None:
                    known = ", ".join(p.name for p in node.params) or "none"
                    raise VendorError(
                        400, f"Unknown parameter {name!r} for node {node.label} ({node.id}); known: {known}"
                    )
                value = _scalar(raw.get("value") if isinstance(raw, dict) else raw, name)
                if param.field_type == "DATE":
                    _date(value, name)
                merged[name] = value

    def _parameters(
        self, flow: FlowDef, body: Mapping[str, Any], base: Mapping[str, Mapping[str, str]] | None = None
    ) -> dict[str, dict[str, str]]:
        given: dict[str, dict[str, str]] = {k: dict(v) for k, v in (base or {}).items()}
        self._add_parameters(flow, given, body.get("nodes"), "nodes", "nodeIdentifier")
        self._add_parameters(flow, given, body.get("flowRunParameters"), "flowRunParameters", "nodeId")
        for node in flow.nodes:
            values = given.get(node.id, {})
            missing = [p.name for p in node.params if p.required and p.name not in values]
            if missing:
                raise VendorError(
                    400,
                    f"Missing required partition parameters for node {node.label} ({node.id}): "
                    + ", ".join(missing),
                )
            _check_date_range(values, f" for node {node.label}")
        return {n.id: given[n.id] for n in flow.nodes if given.get(n.id)}

    @staticmethod
    def _name(body: Mapping[str, Any], default: str | None = None) -> str:
        name = body.get("name")
        if name is None and default is not None:
            return default
        if not isinstance(name, str) or not name.strip():
            raise VendorError(400, "name is required")
        return name

    def _add_flow_run(
        self,
        flow: FlowDef,
        name: str,
        parameters: dict[str, dict[str, str]],
        start: int,
        pause: int | None,
        parent: FlowRun | None = None,
    ) -> FlowRun:
        self._take_create_slot()
        now = self.clock.now()
        last = pause if pause is not None else flow.levels
        node_run_ids = {
            level: parent.node_run_ids[level] if parent and level < start else str(uuid.uuid4())
            for level in range(1, flow.levels + 1)
        }
        with self.lock:
            run = FlowRun(
                seq=self._next_seq(),
                id=_new_id("fr"),
                name=name,
                flow=flow,
                submitted_at=now,
                parameters=parameters,
                node_run_ids=node_run_ids,
                segments=[Segment(now, QUEUED_SECONDS, start, last)],
                reused_below=start,
                parent_id=parent.id if parent else None,
            )
            self.flow_runs[run.id] = run
            self.counters["runs_created"] += 1
        return run

    async def _create_flow_run(self, cid: str, flow_id: str, request: Request) -> FlowRun:
        flow = self._flow(cid, flow_id)
        body = await _json_object(request)
        name = self._name(body)
        parameters = self._parameters(flow, body)
        start = _level(body, "startLevelID", "startLevelId", flow.levels) or 1
        if start != 1:
            raise VendorError(400, "A new flow run starts at Level-1; replay a run to reuse its levels")
        pause = _level(body, "pauseLevelID", "pauseLevelId", flow.levels)
        return self._add_flow_run(flow, name, parameters, start, pause)

    def _flow_run_view(self, run: FlowRun) -> dict[str, Any]:
        now = self.clock.now()
        view: dict[str, Any] = {
            "id": run.id,
            "name": run.name,
            "status": run.status(now),
            "submittedAt": iso(run.submitted_at),
            "executedAt": _iso_or_none(run.executed_at(now)),
            "completedAt": _iso_or_none(run.completed_at(now)),
            "flowRunParameters": [
                {"nodeId": node_id, "parameters": dict(values)} for node_id, values in run.parameters.items()
            ],
            "runMessage": run.run_message(now),
        }
        if run.parent_id is not None:
            view["parentFlowRunId"] = run.parent_id
        return view

    # -- resume and replay ---------------------------------------------------------------------------
    async def _resume(self, cid: str, run_id: str, request: Request) -> None:
        run = self._flow_run(cid, run_id)
        body = await _json_object(request, required=False)
        pause = _level(body, "pauseLevelID", "pauseLevelId", run.flow.levels)
        now = self.clock.now()
        with self.lock:
            status = run.status(now)
            if status != "PAUSED":
                raise VendorError(409, f"Flow run {run.id} is not paused (status {status})", code="CONFLICT")
            paused_at = run.paused_at
            if pause is not None and pause <= paused_at:
                raise VendorError(
                    400, f"pauseLevelID Level-{pause} must be after the level paused at (Level-{paused_at})"
                )
            run.segments.append(Segment(now, 0.0, paused_at + 1, pause or run.flow.levels))
            self.counters["resumes"] += 1

    async def _replay(self, cid: str, run_id: str, request: Request) -> FlowRun:
        parent = self._flow_run(cid, run_id)
        flow = parent.flow
        body = await _json_object(request, required=False)
        now = self.clock.now()
        status = parent.status(now)
        if status not in REPLAYABLE:
            raise VendorError(
                409, f"Flow run {parent.id} cannot be replayed (status {status})", code="CONFLICT"
            )
        name = self._name(body, default=f"{parent.name} (replay)")
        default_start = parent.paused_at + 1 if status == "PAUSED" else 1
        start = _level(body, "startLevelID", "startLevelId", flow.levels) or default_start
        for level in range(1, start):
            if parent.level_status(level, now) != "COMPLETED":
                raise VendorError(
                    400, f"Cannot reuse Level-{level}: it did not complete in flow run {parent.id}"
                )
        pause = _level(body, "pauseLevelID", "pauseLevelId", flow.levels)
        if pause is not None and pause < start:
            raise VendorError(400, f"pauseLevelID Level-{pause} is before startLevelID Level-{start}")
        parameters = self._parameters(flow, body, base=parent.parameters)
        run = self._add_flow_run(flow, name, parameters, start, pause, parent=parent)
        self.counters["replays"] += 1
        return run

    def _output_nodes(self, run: FlowRun) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [
            {
                "node": {
                    "id": node.id,
                    "flowId": run.flow.id,
                    "label": node.label,
                    "nodeType": "QUESTION",
                    "referenceId": f"q-{node.display_id[2:]}",
                    "positionX": 200 * node.level,
                    "positionY": 100,
                    "level": node.level,
                    "title": node.title,
                    "cleanroomQuestionId": f"crq-node-{node.display_id[2:]}",
                },
                "runStatus": run.level_status(node.level, now),
                "runID": run.node_run_ids[node.level],
            }
            for node in run.flow.nodes
        ]

    # -- questions -----------------------------------------------------------------------------------
    def _question(self, crq: str) -> CleanRoomQuestion:
        question = self.questions.get(crq)
        if question is None:
            raise VendorError(404, f"Clean room question {crq} not found", code="NOT_FOUND")
        return question

    def _question_run(self, run_id: str) -> QuestionRun:
        run = self.question_runs.get(run_id)
        if run is None:
            raise VendorError(404, f"Question run {run_id} not found", code="NOT_FOUND")
        return run

    def _completed_question_run(self, run_id: str) -> QuestionRun:
        run = self._question_run(run_id)
        status = run.status(self.clock.now())
        if status != "COMPLETED":
            raise VendorError(
                400, f"Question run {run.id} is not completed (status {status})", code="RUN_NOT_COMPLETED"
            )
        return run

    def _question_view(self, q: CleanRoomQuestion) -> dict[str, Any]:
        return {
            "id": q.id,
            "name": q.name,
            "displayId": q.display_id,
            "questionType": "ANALYTICAL",
            "category": "measurement",
            "createdOn": iso(q.created_at),
            "status": q.stage,
            "stage": q.stage,
            "dataTypes": {"Generic": "Generic"},
            "parameters": {p["Name"]: p["DataType"] for p in QUESTION_PARAMETERS},
            "dimension": {c: c for c, _ in q.kind.result.columns[:-1]},
            "metrics": {c: c for c, _ in q.kind.result.columns[-1:]},
            "cleanroomId": CLEANROOM_ID,
            "ownerOrganizationId": ORGANIZATION_ID,
            "customerQueryTemplate": "select brand, day, count(distinct rampid) as reach from @exposures group by 1, 2",
        }

    def _question_response(self, q: CleanRoomQuestion) -> dict[str, Any]:
        """``CleanRoomQuestionResponse``, what provisioning answers."""
        runs = [r for r in self.question_runs.values() if r.question is q]
        latest = max(runs, key=lambda r: r.seq, default=None)
        now = self.clock.now()
        return {
            "id": q.id,
            "cleanRoomId": CLEANROOM_ID,
            "ownerOrganizationId": ORGANIZATION_ID,
            "questionId": q.question_id,
            "title": q.name,
            "category": "measurement",
            "stage": q.stage,
            "status": "ACTIVE",
            "latestRun": {
                "runId": latest.id if latest else "",
                "status": latest.status(now) if latest else "RUN_STATUS_UNKNOWN",
                "startTimestamp": iso(latest.submitted_at if latest else 0.0),
                "endTimestamp": iso((latest.completed_at(now) or 0.0) if latest else 0.0),
            },
            "datasetCount": 1,
            "runCount": len(runs),
            "isEditable": q.is_editable,
            "questionStatus": "IS_STAGE",
            "questionVersion": 1,
            "displayId": q.display_id,
            "description": "",
        }

    async def _create_question_run(self, crq: str, request: Request) -> QuestionRun:
        question = self._question(crq)
        if question.stage != "READY":
            raise VendorError(
                412,
                f"Clean room question {crq} is not READY (stage {question.stage})",
                code="PRECONDITION_FAILED",
            )
        body = await _json_object(request)
        if "name" not in body and isinstance(body.get("response"), dict):
            body = body["response"]  # the docs' example wraps the request like a response
        name = self._name(body)
        raw = body.get("parameters") or {}
        if not isinstance(raw, dict):
            raise VendorError(400, "parameters must be an object")
        known = {p["Name"]: p for p in QUESTION_PARAMETERS}
        parameters: dict[str, str] = {}
        for key, value in raw.items():
            if key not in known:
                raise VendorError(400, f"Unknown parameter {key!r}; known: {', '.join(known)}")
            parameters[key] = _scalar(value, key)
            if known[key]["DataType"] == "DATE":
                _date(parameters[key], key)
        missing = [p for p in REQUIRED_QUESTION_PARAMETERS if p not in parameters]
        if missing:
            raise VendorError(400, f"Missing required partition parameters: {', '.join(missing)}")
        _check_date_range(parameters, "")
        self._take_create_slot()
        partition = [
            {"name": p["Name"], "value": parameters[p["Name"]], "dataType": p["DataType"]}
            for p in QUESTION_PARAMETERS
            if p["ParameterType"] == "PARTITION_PARAMETER"
        ]
        with self.lock:
            run = QuestionRun(
                seq=self._next_seq(),
                id=_new_id("qr"),
                question=question,
                name=name,
                submitted_at=self.clock.now(),
                parameters=parameters,
                partition_parameters=partition,
            )
            self.question_runs[run.id] = run
            self.counters["runs_created"] += 1
        return run

    def _question_run_view(self, run: QuestionRun) -> dict[str, Any]:
        now = self.clock.now()
        status = run.status(now)
        failed = status == "FAILED"
        return {
            "id": run.id,
            "name": run.name,
            "status": status,
            "submittedAt": iso(run.submitted_at),
            "executedAt": _iso_or_none(run.executed_at(now)),
            "completedAt": _iso_or_none(run.completed_at(now)),
            "parameters": dict(run.parameters),
            "partitionParameters": [dict(p) for p in run.partition_parameters],
            "runMetadata": None,
            "failureReason": run.question.kind.failure if failed else None,
            "isRetryable": False,
            "runMessage": (run.question.kind.failure or "") if failed else "",
            "questionVersion": 1,
        }

    def _list_question_runs(self, crq: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        question = self._question(crq)
        status = params.get("status") or params.get("questionRunStatus") or None
        if status is not None and status not in QUESTION_STATUSES:
            raise VendorError(400, f"status must be one of {', '.join(QUESTION_STATUSES)}")
        start = _date(params["startDate"], "startDate") if params.get("startDate") else None
        end = _date(params["endDate"], "endDate") if params.get("endDate") else None
        limit = int_query(params, "limit", QUESTION_LIST_LIMIT, 1, QUESTION_LIST_MAX)
        offset = int_query(params, "offset", 0, 0)
        now = self.clock.now()

        def matches(run: QuestionRun) -> bool:
            day = datetime.fromtimestamp(run.submitted_at, timezone.utc).date()
            return (
                run.question is question
                and (status is None or run.status(now) == status)
                and (start is None or day >= start)
                and (end is None or day <= end)
            )

        runs = sorted(filter(matches, list(self.question_runs.values())), key=lambda r: r.seq, reverse=True)
        return [self._question_run_view(r) for r in runs[offset : offset + limit]]

    # -- files ---------------------------------------------------------------------------------------
    def _file(self, result: ResultSet, file_name: str, owner: str) -> Response:
        if file_name not in result.outputs:
            raise VendorError(404, f"File {file_name!r} not found for {owner}", code="NOT_FOUND")
        self.counters["downloads"] += 1
        if file_name == BIG_FILE:
            size = big_file_size()
            return StreamingResponse(
                big_file_chunks(size),
                media_type="application/octet-stream",
                headers={"content-length": str(size), "content-disposition": attachment(file_name)},
            )
        return Response(
            file_bytes(file_name),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": attachment(file_name)},
        )

    def _page(self, result: ResultSet, params: Mapping[str, str]) -> dict[str, Any]:
        limit = int_query(params, "limit", PAGE_LIMIT, 1, PAGE_MAX)
        offset = int_query(params, "offset", 0, 0)
        self.counters["report_pages"] += 1
        return result.page(offset, limit)

    # -- routes --------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v1", route_class=_route_class(self))
        flows = "/cleanrooms/{cid}/cleanroom-flows/{flow_id}"
        runs = "/cleanrooms/{cid}/cleanroom-flow-runs/{run_id}"

        @router.get("/health")
        async def health() -> dict[str, Any]:
            return {
                "status": "UP",
                "statusCode": 200,
                "description": "External API is available",
                "version": "v1.0.0",
            }

        @router.post("/oauth/token")
        async def token(request: Request) -> dict[str, Any]:
            return await self._mint(request)

        # flows
        @router.get(flows + "/flow-run-parameters")
        async def flow_run_parameters(cid: str, flow_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            flow = self._flow(cid, flow_id)
            return {
                "flowRunParameters": [
                    {
                        "nodeId": node.id,
                        "nodeQuestionName": node.title,
                        "parameterMetadataList": [
                            {
                                "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{node.id}/{p.name}")),
                                "name": p.name,
                                "displayName": p.display_name,
                                "index": p.index,
                                "fieldType": p.field_type,
                                "parameterType": p.parameter_type,
                            }
                            for p in node.params
                        ],
                    }
                    for node in flow.nodes
                ]
            }

        @router.post(flows + "/cleanroom-flow-runs")
        async def create_flow_run(cid: str, flow_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            return self._flow_run_view(await self._create_flow_run(cid, flow_id, request))

        @router.post(flows + "/clean-room-flow-runs")
        async def create_flow_run_seed_path(cid: str, flow_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = await self._create_flow_run(cid, flow_id, request)
            return {"response": {"Id": run.id}}

        @router.get(flows + "/cleanroom-flow-runs")
        async def list_flow_runs(cid: str, flow_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            flow = self._flow(cid, flow_id)
            self.counters["run_listings"] += 1  # watchers' and reconciliations' list calls
            params = request.query_params
            search = (params.get("search") or "").lower()
            limit = int_query(params, "limit", FLOW_LIST_LIMIT, 1)
            offset = int_query(params, "offset", 0, 0)
            matching = sorted(
                (r for r in list(self.flow_runs.values()) if r.flow is flow and search in r.name.lower()),
                key=lambda r: r.seq,
                reverse=True,
            )
            return {
                "cleanRoomFlowRuns": [self._flow_run_view(r) for r in matching[offset : offset + limit]],
                "count": len(matching),
            }

        @router.get(flows + "/clean-room-flow-runs/{run_id}")
        async def get_flow_run_seed_path(
            cid: str, flow_id: str, run_id: str, request: Request
        ) -> dict[str, Any]:
            self._authorize(request)
            run = self._flow_run(cid, run_id, flow_id)
            self._record_poll(run.id)
            return {"response": self._flow_run_view(run)}

        @router.get(runs)
        async def get_flow_run(cid: str, run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._flow_run(cid, run_id)
            self._record_poll(run.id)
            return self._flow_run_view(run)

        @router.get(runs + "/status")
        async def flow_run_status(cid: str, run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._flow_run(cid, run_id)
            self._record_poll(run.id)
            return {"status": run.status(self.clock.now())}

        @router.post(runs + "/resume-flow-run")
        async def resume(cid: str, run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            await self._resume(cid, run_id, request)
            return {"success": True}

        @router.post(runs + "/replay-flow-run")
        async def replay(cid: str, run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = await self._replay(cid, run_id, request)
            return {"success": True, "cleanRoomFlowRunID": run.id}

        @router.get(runs + "/output-nodes")
        async def output_nodes(cid: str, run_id: str, request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            return self._output_nodes(self._flow_run(cid, run_id))

        @router.get(runs + "/report")
        async def report(cid: str, run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._flow_run(cid, run_id)
            identifier = request.query_params.get("node")
            if not identifier:
                raise VendorError(400, "Query parameter 'node' is required")
            return self._page(self._run_node(run, identifier).result, request.query_params)

        @router.get(runs + "/node/{node_identifier}/download/{file_name:path}")
        async def node_file(
            cid: str, run_id: str, node_identifier: str, file_name: str, request: Request
        ) -> Response:
            self._authorize(request)
            run = self._flow_run(cid, run_id)
            node = self._run_node(run, node_identifier)
            return self._file(node.result, file_name, f"node {node.label} of flow run {run.id}")

        # questions and provisioning
        @router.post("/question")
        async def create_question(request: Request) -> dict[str, Any]:
            self._authorize(request)
            cid = request.query_params.get("cleanRoomID") or request.query_params.get("cleanRoomId")
            if cid:
                self._cleanroom(cid)
            body = await _json_object(request)
            details = body.get("questionDetails")
            if not isinstance(details, dict):
                raise VendorError(400, "questionDetails is required")
            title = details.get("title")
            question_id = f"q-{uuid.uuid4().hex[:12]}"
            with self.lock:
                self.base_questions[question_id] = title if isinstance(title, str) and title else question_id
            return {"success": True, "message": "Question created successfully", "questionID": question_id}

        @router.post("/cleanrooms/{cid}/cleanroom-questions")
        async def provision_question(cid: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            self._cleanroom(cid)
            params = request.query_params
            question_id = params.get("questionId") or params.get("questionID")
            if not question_id:
                raise VendorError(400, "questionId is required")
            title = self.base_questions.get(question_id)
            if title is None:
                raise VendorError(404, f"Question {question_id} not found", code="NOT_FOUND")
            crq = f"crq-{uuid.uuid4().hex[:12]}"
            with self.lock:
                question = CleanRoomQuestion(
                    crq,
                    question_id,
                    title,
                    f"CRQ-{3000 + len(self.questions)}",
                    REACH_KIND,
                    stage="MISSING_DATASETS",
                    created_at=self.clock.now(),
                    is_editable=params.get("isEditable", "").lower() == "true",
                )
                self.questions[crq] = question
            return self._question_response(question)

        @router.post("/cleanroom-questions/{crq}/datasets-ownership")
        async def datasets_ownership(crq: str, request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            return await self._assign(crq, request, "owned")

        @router.post("/cleanroom-questions/{crq}/datasets")
        async def datasets(crq: str, request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            return await self._assign(crq, request, "configured")

        @router.get("/cleanroom-questions/{crq}")
        async def get_question(crq: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            return self._question_view(self._question(crq))

        @router.get("/cleanroom-questions/{crq}/cleanroom-question-parameters")
        async def question_parameters(crq: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            question = self._question(crq)
            return {
                "name": question.name,
                "displayId": question.display_id,
                "parameters": copy.deepcopy(list(QUESTION_PARAMETERS)),
            }

        @router.post("/cleanroom-questions/{crq}/create-run")
        async def create_question_run(crq: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            return self._question_run_view(await self._create_question_run(crq, request))

        @router.get("/cleanroom-questions/{crq}/cleanroom-question-runs")
        async def list_question_runs(crq: str, request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            self.counters["run_listings"] += 1
            return self._list_question_runs(crq, request.query_params)

        @router.get("/cleanroom-question-runs/{run_id}")
        async def get_question_run(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._question_run(run_id)
            self._record_poll(run.id)
            return self._question_run_view(run)

        @router.delete("/cleanroom-question-runs/{run_id}")
        async def delete_question_run(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._question_run(run_id)
            with self.lock:
                self.question_runs.pop(run.id, None)
            return {"success": True}

        @router.get("/cleanroom-question-runs/{run_id}/data")
        async def question_data(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = self._completed_question_run(run_id)
            return self._page(_result(run.question.kind), request.query_params)

        @router.get("/cleanroom-question-runs/{run_id}/data/count")
        async def question_data_count(run_id: str, request: Request) -> int:
            self._authorize(request)
            return _result(self._completed_question_run(run_id).question.kind).rows

        @router.get("/cleanroom-question-runs/{run_id}/download/{file_name:path}")
        async def question_file(run_id: str, file_name: str, request: Request) -> Response:
            self._authorize(request)
            run = self._completed_question_run(run_id)
            return self._file(run.question.kind.result, file_name, f"question run {run.id}")

        known = [r for r in router.routes if isinstance(r, APIRoute)]

        @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def unknown(path: str, request: Request) -> None:
            """Unknown routes and methods still answer in the vendor's error shape."""
            full = f"/v1/{path}"
            if any(r.path_regex.match(full) for r in known):
                raise VendorError(
                    405, f"Method {request.method} not allowed on {full}", code="METHOD_NOT_ALLOWED"
                )
            self._authorize(request)
            raise VendorError(404, f"No such endpoint: {full}", code="NOT_FOUND")

        return router

    async def _assign(self, crq: str, request: Request, step: str) -> list[dict[str, Any]]:
        """Dataset ownership or configuration; a question is READY once both were done."""
        question = self._question(crq)
        body = await _json_body(request)
        if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
            raise VendorError(400, "Request body must be a JSON array of objects")
        with self.lock:
            if step == "owned":
                question.datasets_owned = True
            else:
                question.datasets_configured = True
            if (
                question.datasets_owned
                and question.datasets_configured
                and question.stage == "MISSING_DATASETS"
            ):
                question.stage = "READY"
        return [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{crq}/{step}/{i}")),
                "status": "ASSIGNED" if step == "owned" else "CONFIGURED",
                "ownership": "OWNER",
                "organizationId": entry.get("organizationId", ORGANIZATION_ID),
                "macro": entry.get("macro", ""),
                "datasetId": entry.get("datasetId", ""),
                "fields": entry.get("fields", []),
            }
            for i, entry in enumerate(body)
        ]
