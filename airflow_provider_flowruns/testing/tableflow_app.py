"""An in-memory TableFlow API v2 (document-extraction "flows"), mounted at ``/tableflow/v2``.

It reproduces what a provider can trip over: multipart uploads whose part names come from the
flow's ``file_input_config`` (``key`` or ``key_1``, ``key_2``, ... for several files), required
fields, a per-field size limit, the ``{"error", "message"}`` error body, runs that stop in
``review`` (not terminal, and no API resumes them), runs that fail after a retry, offset pagination
with ``next_offset``, and extraction results read as JSON pages or streamed as CSV.

Credentials: ``Authorization: Bearer tableflow-key`` (``FLOWRUNS_TABLEFLOW_API_KEY`` overrides).

Seeded flows (see :data:`FLOWS`) choose a run's fate, so tests need no control routes:
``flow_invoices`` and ``flow_po_match`` complete after 10 emulated seconds; ``flow_review`` waits in
``review`` for 60 more and is then approved; ``flow_broken`` names a template that does not exist,
so its extraction fails, the run is retried once and ends ``failed``; ``flow_inactive`` is hidden.

Uploaded bytes are never kept (only name, size and sha256), so tests can push large files; the
``line_items`` table has 25 rows unless the run's ``metadata`` carries an integer ``rows``. Rows are
computed from their index on demand, so even a million-row table costs no memory.

A run looks like the documented one (seeds/004): ``duration`` is always a number (milliseconds so
far while processing), and a flow with a reconciliation step exports its result to ``drive_files``
(``{"reconciliation": {"file_id", "mime_type", "sheets"}}``) once completed. ``flow_attempts``,
``current_attempt``, ``input_files`` and ``steps`` are named by that page without an example, so
their inner shapes here follow its words and are otherwise this project's guess: ``flow_attempts``
is an array with one entry per attempt carrying that attempt's step executions, ``current_attempt``
an integer, ``input_files`` a map from the part name (``invoice`` or ``invoice_2``) to the file
uploaded under it (name, type, size), and ``steps`` one entry per step execution (per attempt, and
per file of a multi-file field) with its id, status, timing, ``outputs`` and ``error``. A completed
extraction step's ``outputs`` carries the ``extraction_id`` that links a run to its results, which
no documented field does.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import mimetypes
import os
import re
import secrets
import string
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError, attachment, int_query

#: How Tableflow names a parameter in its 400 messages.
TABLEFLOW_PARAM = "The parameter '{name}'"

#: Overridable so secret-leak tests can use a sentinel value of their own.
API_KEY = os.environ.get("FLOWRUNS_TABLEFLOW_API_KEY", "tableflow-key")
WORKSPACE_ID = "uT2bJNWN75YPU95r"
#: When the seeded flows were "created": a fixed time keeps ``GET /v2/flows`` byte-for-byte stable.
FLOWS_CREATED_AT = 1682366228

MAX_FILE_SIZE = 10 * 1024 * 1024
#: A run spends this long in ``processing`` (split between its attempts when it is retried).
PROCESSING_SECONDS = 10
REVIEW_SECONDS = 60
MAX_ATTEMPTS = 2
DEFAULT_ROWS = 25
#: Upper bound for ``metadata.rows``; rows are computed on demand, so this only guards typos.
MAX_ROWS = 10_000_000
#: Every 7th line item fails validation, so filters always have something to separate.
INVALID_EVERY = 7
#: Includes a comma and quotes so CSV consumers must parse, not split.
DESCRIPTIONS = ('Paper, A4 "premium" (box)', "Consulting hours", "Toner cartridge", "Shipping")
QUANTITY_CYCLE, PRICE_CYCLE = 5, 8
#: A line item's values depend only on its index modulo this.
ROW_CYCLE = math.lcm(len(DESCRIPTIONS), QUANTITY_CYCLE, PRICE_CYCLE, INVALID_EVERY)
#: Rows embedded per table in ``GET /v2/extractions/{id}``; the rest are paged through ``/rows``.
EMBEDDED_ROWS = 100
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
CSV_ROW_CAP = 500_000
UPLOAD_CHUNK = 1 << 20
#: Bytes per write when streaming CSVs and originals: one thread hop per row would be far too slow.
STREAM_CHUNK = 64 * 1024

STATUSES = ("processing", "review", "completed", "failed")
TERMINAL = frozenset({"completed", "failed"})
COUNTERS = ("runs_created", "status_polls", "downloads", "bytes_received")
ERROR_TITLES = {
    400: "Invalid parameters",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    413: "File too large",
}

RowFilter = Literal["all", "valid", "invalid"]
#: The two endpoints spell the invalid-rows filter differently; each accepts only its own spelling.
ROW_FILTERS: dict[str, RowFilter] = {"all": "all", "valid": "valid", "error": "invalid"}
DOWNLOAD_FILTERS: dict[str, RowFilter] = {"all": "all", "valid": "valid", "invalid": "invalid"}
StepOutcome = Literal["completed", "failed", "skipped"]


# -- flow and template definitions -------------------------------------------------------------------
@dataclass(frozen=True)
class FileField:
    key: str
    name: str
    required: bool
    file_types: tuple[str, ...] = ("pdf", "image")
    max_file_size: int = MAX_FILE_SIZE


@dataclass(frozen=True)
class StepDef:
    id: str
    title: str
    description: str
    type: Literal["extraction", "reconciliation"]
    order: int
    config: Mapping[str, str]

    @property
    def file_key(self) -> str | None:
        return self.config.get("file_key")


@dataclass(frozen=True)
class FlowDef:
    """A seeded flow; ``review`` makes every run wait for a (simulated) human before completing."""

    id: str
    name: str
    description: str
    file_fields: tuple[FileField, ...]
    steps: tuple[StepDef, ...]
    active: bool = True
    review: bool = False

    def field(self, key: str) -> FileField | None:
        return next((f for f in self.file_fields if f.key == key), None)


@dataclass(frozen=True)
class Column:
    key: str
    name: str
    type: str


@dataclass(frozen=True)
class TableDef:
    key: str
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    #: Header fields; the first is the document number, the second its date (see ``_field_values``).
    fields: tuple[Column, ...]
    tables: tuple[TableDef, ...]


LINE_ITEMS = TableDef(
    "line_items",
    "Line Items",
    (
        Column("description", "Description", "text"),
        Column("quantity", "Quantity", "number"),
        Column("unit_price", "Unit Price", "currency"),
        Column("amount", "Amount", "currency"),
    ),
)
TOTALS = TableDef(
    "totals",
    "Totals",
    (
        Column("line_count", "Line Count", "number"),
        Column("subtotal", "Subtotal", "currency"),
        Column("tax", "Tax", "currency"),
        Column("total", "Total", "currency"),
    ),
)
TEMPLATES = {
    t.id: t
    for t in (
        Template(
            "tpl_invoice",
            "Invoice",
            (
                Column("invoice_number", "Invoice Number", "text"),
                Column("invoice_date", "Invoice Date", "date"),
                Column("vendor_name", "Vendor Name", "text"),
                Column("total_amount", "Total Amount", "currency"),
            ),
            (LINE_ITEMS, TOTALS),
        ),
        Template(
            "tpl_purchase_order",
            "Purchase Order",
            (
                Column("po_number", "PO Number", "text"),
                Column("order_date", "Order Date", "date"),
                Column("vendor_name", "Vendor Name", "text"),
                Column("total_amount", "Total Amount", "currency"),
            ),
            (LINE_ITEMS, TOTALS),
        ),
    )
}


def _extract(step_id: str, title: str, template_id: str, file_key: str, order: int) -> StepDef:
    return StepDef(
        step_id,
        title,
        f"Extract fields and line items from the {file_key.replace('_', ' ')}",
        "extraction",
        order,
        {"template_id": template_id, "file_key": file_key},
    )


_INVOICE = FileField("invoice", "Invoice", True)
_EXTRACT_INVOICE = _extract("step_1", "Extract Invoice", "tpl_invoice", "invoice", 1)

FLOWS: tuple[FlowDef, ...] = (
    FlowDef(
        "flow_invoices",
        "Invoice extraction",
        "Extract header fields and line items from invoices",
        (_INVOICE,),
        (_EXTRACT_INVOICE,),
    ),
    FlowDef(
        "flow_po_match",
        "PO to Invoice Reconciliation",
        "Match purchase orders with invoices and verify totals",
        (FileField("purchase_order", "Purchase Order", True), FileField("invoice", "Invoice", False)),
        (
            _extract("step_1", "Extract Purchase Order", "tpl_purchase_order", "purchase_order", 1),
            _extract("step_2", "Extract Invoice", "tpl_invoice", "invoice", 2),
            StepDef(
                "step_3",
                "Reconcile Documents",
                "Compare purchase order and invoice line items",
                "reconciliation",
                3,
                {
                    "source_step_id_1": "step_1",
                    "source_step_id_2": "step_2",
                    "table_key_1": "line_items",
                    "table_key_2": "line_items",
                },
            ),
        ),
    ),
    FlowDef(
        "flow_review",
        "Needs review",
        "Invoice extraction whose results a person approves in the Tableflow UI",
        (_INVOICE,),
        (_EXTRACT_INVOICE,),
        review=True,
    ),
    FlowDef(
        "flow_broken",
        "Broken template",
        "Invoice extraction pointing at a template that was deleted",
        (_INVOICE,),
        (_extract("step_1", "Extract Invoice", "tpl_deleted", "invoice", 1),),
    ),
    FlowDef(
        "flow_inactive",
        "Retired invoice flow",
        "Deactivated; not listed and cannot be run",
        (_INVOICE,),
        (_EXTRACT_INVOICE,),
        active=False,
    ),
)


# -- runs ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadedFile:
    """What is kept of an upload: never its bytes."""

    key: str  # the flow's file field
    part: str  # the multipart name it came in (``invoice`` or ``invoice_2``)
    file_name: str
    content_type: str | None
    size: int
    sha256: str

    def file_type(self) -> dict[str, str]:
        extension = os.path.splitext(self.file_name)[1].lstrip(".").lower()
        mime = mimetypes.guess_type(self.file_name)[0] or self.content_type or "application/octet-stream"
        if mime.startswith("image/"):
            kind = "image"
        elif extension in ("csv", "tsv", "xls", "xlsx"):
            kind = "spreadsheet"
        else:
            kind = "document"
        return {"key": kind, "extension": extension, "mime_type": mime}


@dataclass(frozen=True)
class Event:
    """One ``status_history`` entry, planned at creation and shown once the clock reaches it."""

    at: int
    status: str
    message: str


@dataclass(frozen=True)
class StepRun:
    """One execution of a step: per attempt, and per file when a field carries several."""

    step: StepDef
    attempt: int
    start: int
    end: int
    outcome: StepOutcome
    file: UploadedFile | None = None
    error: str | None = None
    extraction_id: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One try at the whole flow; a failed attempt is followed by the next at ``end``."""

    number: int
    start: int
    end: int


@dataclass
class TableflowRun:
    """A flow run whose whole future is planned when it is created; views read it off the clock."""

    seq: int
    id: str
    flow: FlowDef
    name: str | None
    created_at: int
    metadata: dict[str, Any]
    files: tuple[UploadedFile, ...]
    events: tuple[Event, ...]
    attempts: tuple[Attempt, ...]
    step_runs: tuple[StepRun, ...]
    error: str | None

    def history(self, now: float) -> list[Event]:
        return [e for e in self.events if e.at <= now]

    def status(self, now: float) -> str:
        return self.history(now)[-1].status

    def ended_at(self, now: float) -> int | None:
        last = self.history(now)[-1]
        return last.at if last.status in TERMINAL else None

    def attempt(self, now: float) -> int:
        return max(a.number for a in self.attempts if a.start <= now)


@dataclass
class Extraction:
    """The result of one completed extraction step; rows are computed from their index."""

    id: str
    run_id: str
    step_id: str
    template: Template
    file: UploadedFile
    created_at: int
    ready_at: int
    rows: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def row_count(self, table: TableDef) -> int:
        return self.rows if table.key == LINE_ITEMS.key else 1

    def row_cycle(self, table: TableDef) -> int | None:
        return ROW_CYCLE if table.key == LINE_ITEMS.key else None

    def invalid_every(self, table: TableDef) -> int | None:
        return INVALID_EVERY if table.key == LINE_ITEMS.key else None

    def count(self, table: TableDef, which: RowFilter) -> int:
        return _filtered_count(self.row_count(table), self.invalid_every(table), which)

    def indices(self, table: TableDef, which: RowFilter, start: int, stop: int) -> Iterator[int]:
        """Row indices ``start`` to ``stop`` of the filtered view, without scanning the rows before."""
        every = self.invalid_every(table)
        for k in range(start, min(stop, self.count(table, which))):
            yield _nth_index(k, every, which)

    def row(self, table: TableDef, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values, validations) of row ``index``; money is in cents, formatted by the caller."""
        if table.key == TOTALS.key:
            subtotal = _subtotal_cents(self.rows)
            tax = round(subtotal * 0.08)
            totals = {"line_count": self.rows, "subtotal": subtotal, "tax": tax, "total": subtotal + tax}
            return totals, {}
        quantity, unit = _quantity(index), _unit_cents(index)
        invalid = (index + 1) % INVALID_EVERY == 0
        amount = quantity * unit + (100 if invalid else 0)
        values = {
            "description": DESCRIPTIONS[index % len(DESCRIPTIONS)],
            "quantity": quantity,
            "unit_price": unit,
            "amount": amount,
        }
        validations: dict[str, Any] = {}
        if invalid:
            validations["amount"] = {
                "valid": False,
                "message": f"Amount {_money(amount)} does not equal quantity x unit price "
                f"({_money(quantity * unit)})",
            }
        return values, validations


def _money(cents: int) -> str:
    return f"{cents / 100:.2f}"


def _filtered_count(total: int, every: int | None, which: RowFilter) -> int:
    invalid = total // every if every else 0
    return {"all": total, "valid": total - invalid, "invalid": invalid}[which]


def _nth_index(k: int, every: int | None, which: RowFilter) -> int:
    """Index of the k-th row in a view; invalid rows are indices every-1, 2*every-1, ..."""
    if which == "all" or every is None:
        return k
    if which == "invalid":
        return every * k + every - 1
    return k + k // (every - 1)


def _line_cents(index: int) -> int:
    return _quantity(index) * _unit_cents(index)


def _quantity(index: int) -> int:
    return 1 + index % QUANTITY_CYCLE


def _unit_cents(index: int) -> int:
    return 250 + 125 * (index % PRICE_CYCLE)


_AMOUNT_CYCLE = math.lcm(QUANTITY_CYCLE, PRICE_CYCLE)
_AMOUNT_CYCLE_SUM = sum(_line_cents(i) for i in range(_AMOUNT_CYCLE))


def _subtotal_cents(rows: int) -> int:
    """Sum of the correct line amounts, in O(1) so a totals row of a huge table is instant."""
    full, rest = divmod(rows, _AMOUNT_CYCLE)
    return full * _AMOUNT_CYCLE_SUM + sum(_line_cents(i) for i in range(rest))


def _random_id(length: int = 16) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _plan(
    flow: FlowDef, t0: int, files: Sequence[UploadedFile]
) -> tuple[tuple[Event, ...], tuple[Attempt, ...], tuple[StepRun, ...], str | None]:
    """Decide a run's whole timeline at creation: events, attempts, step executions and error.

    A step whose template is missing fails its attempt; a failed attempt is retried until
    :data:`MAX_ATTEMPTS`. Steps share an attempt's time one after another; an extraction step runs
    once per uploaded file of its field and is ``skipped`` when an optional field has none.
    """
    by_key: dict[str, list[UploadedFile]] = defaultdict(list)
    for uploaded in files:
        by_key[uploaded.key].append(uploaded)
    broken = next(
        (
            s
            for s in flow.steps
            if s.type == "extraction"
            and by_key.get(s.file_key or "")
            and s.config["template_id"] not in TEMPLATES
        ),
        None,
    )
    count = MAX_ATTEMPTS if broken else 1
    span = PROCESSING_SECONDS // count
    attempts, step_runs = [], []
    for number in range(1, count + 1):
        start = t0 + (number - 1) * span
        attempts.append(Attempt(number, start, start + span))
        failed = False
        for i, step in enumerate(flow.steps):
            begin = start + round(span * i / len(flow.steps))
            end = start + round(span * (i + 1) / len(flow.steps))
            if step.type != "extraction":
                step_runs.append(StepRun(step, number, begin, end, "skipped" if failed else "completed"))
                continue
            inputs: list[UploadedFile | None] = [*by_key.get(step.file_key or "", [])] or [None]
            for upload in inputs:
                if failed or upload is None:
                    step_runs.append(StepRun(step, number, begin, end, "skipped", upload))
                elif step is broken:
                    step_runs.append(
                        StepRun(step, number, begin, end, "failed", upload, "Template not found")
                    )
                else:
                    ext_id = f"ext_{_random_id()}"
                    step_runs.append(StepRun(step, number, begin, end, "completed", upload, None, ext_id))
            failed = failed or step is broken

    events = [Event(t0, "processing", "Flow started via api")]
    done = t0 + PROCESSING_SECONDS
    error = None
    if broken:
        error = f"Extraction step '{broken.title}' failed: Template not found"
        for a in attempts[:-1]:
            events.append(
                Event(
                    a.end,
                    "processing",
                    f"Attempt {a.number} failed: {error}; retrying (attempt {a.number + 1} of {count})",
                )
            )
        events.append(Event(done, "failed", error))
    elif flow.review:
        events.append(Event(done, "review", "Awaiting review"))
        events.append(Event(done + REVIEW_SECONDS, "completed", "Review approved"))
    else:
        events.append(Event(done, "completed", "Flow completed successfully"))
    return tuple(events), tuple(attempts), tuple(step_runs), error


def _json_object(text: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise VendorError(400, f"The parameter '{part}' is not valid JSON: {exc}")
    if not isinstance(value, dict):
        raise VendorError(400, f"The parameter '{part}' must be a JSON object")
    return value


class TableflowEmulator(VendorEmulator):
    name = "tableflow"

    def __init__(self, clock: EmulatorClock) -> None:
        super().__init__(clock)
        self.flows = {f.id: f for f in FLOWS}
        self.runs: dict[str, TableflowRun] = {}
        self.extractions: dict[str, Extraction] = {}
        self._seq = 0
        #: When set, replaces every field's ``max_file_size`` (listed and enforced), so a test can
        #: hit the limit with a small file.
        self.max_file_size: int | None = None
        self.csv_row_cap = CSV_ROW_CAP

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.runs.clear()
            self.extractions.clear()
            self._seq = 0

    def stats(self) -> dict[str, Any]:
        # Counters start at 0 so tests can assert "nothing downloaded" without a KeyError.
        return {**dict.fromkeys(COUNTERS, 0), **self.counters, "runs": len(self.runs)}

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        title = code or ERROR_TITLES.get(status)
        if title is None:
            try:
                title = HTTPStatus(status).phrase
            except ValueError:
                title = "Error"
        return {"error": title, "message": message}

    # -- lookups -------------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise VendorError(401, "Missing API key: send 'Authorization: Bearer <API key>'")
        if token.strip() != API_KEY:
            raise VendorError(401, "Invalid API key")

    def _flow(self, flow_id: str) -> FlowDef:
        """Inactive flows answer 404 like missing ones: the API only ever shows active flows."""
        flow = self.flows.get(flow_id)
        if flow is None or not flow.active:
            raise VendorError(404, f"Flow '{flow_id}' not found")
        return flow

    def _run(self, run_id: str) -> TableflowRun:
        run = self.runs.get(run_id)
        if run is None:
            raise VendorError(404, f"Flow run '{run_id}' not found")
        return run

    def _extraction(self, extraction_id: str) -> Extraction:
        """An extraction exists once its step completed; before that its id is not even shown."""
        extraction = self.extractions.get(extraction_id)
        if extraction is None or extraction.ready_at > self.clock.now():
            raise VendorError(404, f"Extraction '{extraction_id}' not found")
        return extraction

    def _table(self, extraction: Extraction, key: str) -> TableDef:
        table = next((t for t in extraction.template.tables if t.key == key), None)
        if table is None:
            raise VendorError(404, f"Table '{key}' not found in extraction '{extraction.id}'")
        return table

    def _file_limit(self, file_field: FileField) -> int:
        return self.max_file_size if self.max_file_size is not None else file_field.max_file_size

    # -- upload --------------------------------------------------------------------------------------
    def _part_field(self, flow: FlowDef, part: str) -> FileField | None:
        """The file field a part name belongs to: ``key`` itself or ``key_<n>``."""
        found = flow.field(part)
        if found is not None:
            return found
        match = re.fullmatch(r"(.+)_(\d+)", part)
        return flow.field(match[1]) if match else None

    async def _receive(self, upload: UploadFile, part: str, limit: int) -> tuple[int, str]:
        """Size and sha256 of an upload, one chunk at a time; stops as soon as it is too big."""
        digest, size = hashlib.sha256(), 0
        while chunk := await upload.read(UPLOAD_CHUNK):
            size += len(chunk)
            self.counters["bytes_received"] += len(chunk)
            if size > limit:
                raise VendorError(
                    413, f"File '{part}' ({upload.filename}) exceeds the maximum file size of {limit} bytes"
                )
            digest.update(chunk)
        return size, digest.hexdigest()

    async def _read_parts(self, flow: FlowDef, request: Request) -> tuple[list[UploadedFile], dict[str, str]]:
        """(files, text parts) of the multipart body; unknown file parts and oversize files fail."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise VendorError(400, "The request must be multipart/form-data")
        files: list[UploadedFile] = []
        texts: dict[str, str] = {}
        try:
            async with request.form() as form:
                for part, value in form.multi_items():
                    if isinstance(value, str):
                        texts[part] = value
                        continue
                    file_field = self._part_field(flow, part)
                    if file_field is None:
                        takes = ", ".join(f.key for f in flow.file_fields)
                        raise VendorError(400, f"Unknown file part '{part}': flow '{flow.id}' takes {takes}")
                    size, sha256 = await self._receive(value, part, self._file_limit(file_field))
                    file_name = value.filename or part
                    files.append(
                        UploadedFile(file_field.key, part, file_name, value.content_type, size, sha256)
                    )
        except HTTPException as exc:  # Starlette's own multipart parse errors
            raise VendorError(400, f"Malformed multipart body: {exc.detail}")
        return files, texts

    def _options(
        self, flow: FlowDef, texts: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """(run metadata, per-file-key metadata) from the text parts; any other text part fails.

        Unknown text parts are refused rather than ignored so a misspelt ``metdata`` surfaces in a
        test instead of silently losing the provider's correlation key.
        """
        keys = {f.key for f in flow.file_fields}
        metadata: dict[str, Any] = {}
        file_metadata: dict[str, dict[str, Any]] = {}
        for part, text in texts.items():
            base, _, suffix = part.rpartition("_")
            if part == "metadata":
                metadata = _json_object(text, part)
            elif suffix == "metadata" and base in keys:
                file_metadata[base] = _json_object(text, part)
            elif part == "name" or (suffix == "guidance" and base in keys):
                continue
            elif self._part_field(flow, part) is not None:
                raise VendorError(400, f"The parameter '{part}' must be a file upload")
            else:
                raise VendorError(400, f"Unknown parameter '{part}'")
        return metadata, file_metadata

    async def _start(self, flow: FlowDef, request: Request) -> TableflowRun:
        files, texts = await self._read_parts(flow, request)
        metadata, file_metadata = self._options(flow, texts)
        uploaded = {f.key for f in files}
        for file_field in flow.file_fields:
            if file_field.required and file_field.key not in uploaded:
                raise VendorError(400, f"The file field '{file_field.key}' is required")
        rows = metadata.get("rows", DEFAULT_ROWS)
        if not isinstance(rows, int) or isinstance(rows, bool):
            rows = DEFAULT_ROWS
        elif not 0 <= rows <= MAX_ROWS:
            raise VendorError(400, f"metadata.rows must be between 0 and {MAX_ROWS}")

        t0 = int(self.clock.now())  # whole seconds, as the API reports them
        events, attempts, step_runs, error = _plan(flow, t0, files)
        with self.lock:
            self._seq += 1
            run = TableflowRun(
                seq=self._seq,
                id=_random_id(),
                flow=flow,
                name=texts.get("name"),
                created_at=t0,
                metadata=metadata,
                files=tuple(files),
                events=events,
                attempts=attempts,
                step_runs=step_runs,
                error=error,
            )
            self.runs[run.id] = run
            for s in step_runs:
                if s.extraction_id is not None and s.file is not None:
                    self.extractions[s.extraction_id] = Extraction(
                        id=s.extraction_id,
                        run_id=run.id,
                        step_id=s.step.id,
                        template=TEMPLATES[s.step.config["template_id"]],
                        file=s.file,
                        created_at=s.start,
                        ready_at=s.end,
                        rows=rows,
                        metadata=file_metadata.get(s.file.key, {}),
                    )
            self.counters["runs_created"] += 1
        return run

    # -- views ---------------------------------------------------------------------------------------
    def _flow_view(self, flow: FlowDef) -> dict[str, Any]:
        return {
            "id": flow.id,
            "workspace_id": WORKSPACE_ID,
            "name": flow.name,
            "description": flow.description,
            "file_input_config": {
                "file_fields": [
                    {
                        "key": f.key,
                        "name": f.name,
                        "required": f.required,
                        "file_types": list(f.file_types),
                        "max_file_size": self._file_limit(f),
                    }
                    for f in flow.file_fields
                ]
            },
            "steps": [
                {
                    "id": s.id,
                    "title": s.title,
                    "description": s.description,
                    "type": s.type,
                    "order": s.order,
                    "config": dict(s.config),
                }
                for s in flow.steps
            ],
            "active": flow.active,
            "created_at": FLOWS_CREATED_AT,
            "updated_at": FLOWS_CREATED_AT,
        }

    @staticmethod
    def _step_view(s: StepRun, now: float) -> dict[str, Any]:
        started, ended = s.start <= now, s.end <= now
        return {
            "id": s.step.id,
            "title": s.step.title,
            "type": s.step.type,
            "attempt": s.attempt,
            "status": s.outcome if ended else "processing" if started else "pending",
            "file_key": s.file.key if s.file else s.step.file_key,
            "file_name": s.file.file_name if s.file else None,
            "start_time": s.start if started else None,
            "end_time": s.end if ended else None,
            "error": s.error if ended else None,
            "outputs": {"extraction_id": s.extraction_id} if ended and s.extraction_id else {},
        }

    def _run_view(self, run: TableflowRun) -> dict[str, Any]:
        now = self.clock.now()
        history = run.history(now)
        status, ended = history[-1].status, run.ended_at(now)
        current = run.attempt(now)
        steps = [s for s in run.step_runs if s.attempt <= current]
        changes = [e.at for e in history] + [t for s in steps for t in (s.start, s.end) if t <= now]
        input_files = {
            f.part: {
                "field_key": f.key,
                "file_name": f.file_name,
                "file_type": f.file_type(),
                "size": f.size,
                "sha256": f.sha256,
            }
            for f in run.files
        }
        attempts = [
            {
                "attempt": a.number,
                "status": (
                    "failed"
                    if a.number < current or (status == "failed" and a.end <= now)
                    else "completed"
                    if a.end <= now
                    else "processing"
                ),
                "start_time": a.start,
                "end_time": a.end if a.end <= now else None,
                "steps": [self._step_view(s, now) for s in steps if s.attempt == a.number],
            }
            for a in run.attempts
            if a.number <= current
        ]
        drive_files = (
            {
                "reconciliation": {
                    "file_id": f"1{hashlib.sha256(run.id.encode()).hexdigest()[:12].upper()}",
                    "mime_type": "application/vnd.google-apps.spreadsheet",
                    "sheets": [{"sheet_id": 0, "title": "Reconciliation Results"}],
                }
            }
            if status == "completed" and any(s.type == "reconciliation" for s in run.flow.steps)
            else {}
        )
        return {
            "id": run.id,
            "flow_id": run.flow.id,
            "workspace_id": WORKSPACE_ID,
            "name": run.name,
            "status": status,
            "status_history": [{"status": e.status, "time": e.at, "message": e.message} for e in history],
            "error": run.error if status == "failed" else None,
            "metadata": run.metadata,
            "trigger_method": "api",
            "start_time": run.created_at,
            "end_time": ended,
            "duration": ((int(now) if ended is None else ended) - run.created_at) * 1000,
            "drive_files": drive_files,
            "input_files": input_files,
            "flow_attempts": attempts,
            "current_attempt": current,
            "steps": [self._step_view(s, now) for s in steps],
            "flow": {
                "id": run.flow.id,
                "workspace_id": WORKSPACE_ID,
                "name": run.flow.name,
                "description": run.flow.description,
                "steps": [{"id": s.id, "title": s.title, "type": s.type} for s in run.flow.steps],
                "active": run.flow.active,
            },
            "created_at": run.created_at,
            "updated_at": max(changes),
        }

    @staticmethod
    def _row_view(extraction: Extraction, table: TableDef, index: int) -> dict[str, Any]:
        values, validations = extraction.row(table, index)
        shown = {c.key: values[c.key] / 100 if c.type == "currency" else values[c.key] for c in table.columns}
        return {"index": index, "values": shown, "validations": validations}

    def _page(
        self, extraction: Extraction, table: TableDef, which: RowFilter, offset: int, limit: int
    ) -> dict[str, Any]:
        total = extraction.count(table, which)
        return {
            "pagination": {
                "total": total,
                "offset": offset,
                "limit": limit,
                "next_offset": offset + limit if offset + limit < total else None,
            },
            "rows": [
                self._row_view(extraction, table, i)
                for i in extraction.indices(table, which, offset, offset + limit)
            ],
        }

    def _field_values(self, extraction: Extraction) -> dict[str, Any]:
        seed = int(hashlib.sha256(extraction.id.encode()).hexdigest()[:8], 16)
        template = extraction.template
        totals, _ = extraction.row(TOTALS, 0)
        number, day, vendor, amount = (c.key for c in template.fields)
        prefix = "INV" if template.id == "tpl_invoice" else "PO"
        return {
            number: f"{prefix}-{seed % 100000:05d}",
            day: datetime.fromtimestamp(extraction.created_at, timezone.utc).date().isoformat(),
            vendor: ("Acme Supplies", "Globex Ltd", "Initech GmbH")[seed % 3],
            amount: totals["total"] / 100,
        }

    def _extraction_view(self, extraction: Extraction) -> dict[str, Any]:
        template = extraction.template
        invalid = sum(extraction.count(t, "invalid") for t in template.tables)
        rows = sum(extraction.row_count(t) for t in template.tables)
        return {
            "id": extraction.id,
            "workspace_id": WORKSPACE_ID,
            "template_id": template.id,
            "template_name": template.name,
            "flow_run_id": extraction.run_id,
            "step_id": extraction.step_id,
            "file_name": extraction.file.file_name,
            "file_size": extraction.file.size,
            "file_type": extraction.file.file_type(),
            "status": "completed",
            "status_history": [
                {"status": "processing", "time": extraction.created_at, "message": "Extraction started"},
                {"status": "completed", "time": extraction.ready_at, "message": "Extraction completed"},
            ],
            "metadata": extraction.metadata,
            "data": {
                "fields": {"values": self._field_values(extraction), "validations": {}},
                "tables": {
                    t.key: self._page(extraction, t, "all", 0, EMBEDDED_ROWS) for t in template.tables
                },
            },
            "stats": {"valid": rows - invalid, "invalid": invalid},
            "template": {
                "id": template.id,
                "name": template.name,
                "fields": [{"key": c.key, "name": c.name, "type": c.type} for c in template.fields],
                "tables": [
                    {
                        "key": t.key,
                        "name": t.name,
                        "columns": [{"key": c.key, "name": c.name, "type": c.type} for c in t.columns],
                    }
                    for t in template.tables
                ],
            },
            "created_at": extraction.created_at,
            "updated_at": extraction.ready_at,
        }

    def _csv(self, extraction: Extraction, table: TableDef, which: RowFilter) -> Iterator[bytes]:
        """The table as CSV, generated row by row and flushed every :data:`STREAM_CHUNK` bytes.

        Line items repeat every :data:`ROW_CYCLE` rows, so each distinct line is formatted once and
        reused: the 500,000-row cap streams in about a second rather than ten.
        """

        def render(cells: list[Any]) -> str:
            buffer = io.StringIO()
            csv.writer(buffer).writerow(cells)
            return buffer.getvalue()

        def line(index: int) -> str:
            values, _ = extraction.row(table, index)
            return render(
                [_money(values[c.key]) if c.type == "currency" else values[c.key] for c in table.columns]
            )

        cycle = extraction.row_cycle(table)
        # line(i) == line(i % cycle) by construction, so caching on the remainder is exact.
        cached = functools.cache(line) if cycle else line
        pending, size = [render([c.key for c in table.columns])], 0
        for index in extraction.indices(table, which, 0, self.csv_row_cap):
            text = cached(index % cycle if cycle else index)
            pending.append(text)
            size += len(text)
            if size >= STREAM_CHUNK:
                yield "".join(pending).encode()
                pending, size = [], 0
        yield "".join(pending).encode()

    @staticmethod
    def _original(upload: UploadedFile) -> Iterator[bytes]:
        """Stand-in bytes for an original that was never stored: right size, stable content."""
        seed = hashlib.sha256(f"{upload.sha256}:{upload.file_name}".encode()).digest()
        block = (seed * (STREAM_CHUNK // len(seed) + 1))[:STREAM_CHUNK]
        left = upload.size
        while left > 0:
            piece = block[: min(left, STREAM_CHUNK)]
            left -= len(piece)
            yield piece

    # -- routes --------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v2")

        @router.get("/flows")
        async def list_flows(request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            return [self._flow_view(f) for f in self.flows.values() if f.active]

        @router.get("/flows/runs")
        async def list_runs(request: Request) -> dict[str, Any]:
            self._authorize(request)
            params = request.query_params
            status = params.get("status") or None
            if status is not None and status not in STATUSES:
                raise VendorError(400, f"The parameter 'status' must be one of {', '.join(STATUSES)}")
            flow_id = params.get("flow_id") or None
            limit = int_query(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, label=TABLEFLOW_PARAM)
            offset = int_query(params, "offset", 0, 0, label=TABLEFLOW_PARAM)
            now = self.clock.now()
            matching = [
                r
                for r in sorted(self.runs.values(), key=lambda r: r.seq, reverse=True)
                if (flow_id is None or r.flow.id == flow_id) and (status is None or r.status(now) == status)
            ]
            return {
                "flow_runs": [self._run_view(r) for r in matching[offset : offset + limit]],
                "pagination": {
                    "total": len(matching),
                    "limit": limit,
                    "offset": offset,
                    "next_offset": offset + limit if offset + limit < len(matching) else None,
                    "filter": status or "all",
                },
            }

        @router.get("/flows/runs/{run_id}")
        async def get_run(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            self.counters["status_polls"] += 1
            return self._run_view(self._run(run_id))

        @router.post("/flows/{flow_id}/run")
        async def run_flow(flow_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            run = await self._start(self._flow(flow_id), request)
            return self._run_view(run)

        @router.get("/flows/{flow_id}/runs")
        async def flow_runs(flow_id: str, request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            flow = self._flow(flow_id)
            runs = sorted(
                (r for r in self.runs.values() if r.flow is flow), key=lambda r: r.seq, reverse=True
            )
            return [self._run_view(r) for r in runs]

        @router.get("/extractions/{extraction_id}")
        async def get_extraction(extraction_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            return self._extraction_view(self._extraction(extraction_id))

        @router.get("/extractions/{extraction_id}/tables/{table_key}/rows")
        async def table_rows(extraction_id: str, table_key: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            extraction = self._extraction(extraction_id)
            table = self._table(extraction, table_key)
            params = request.query_params
            name = params.get("filter") or "all"
            if name not in ROW_FILTERS:
                raise VendorError(400, f"The parameter 'filter' must be one of {', '.join(ROW_FILTERS)}")
            limit = int_query(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, label=TABLEFLOW_PARAM)
            offset = int_query(params, "offset", 0, 0, label=TABLEFLOW_PARAM)
            page = self._page(extraction, table, ROW_FILTERS[name], offset, limit)
            page["pagination"]["filter"] = name
            return page

        @router.get("/extractions/{extraction_id}/tables/{table_key}/download")
        async def download_table(extraction_id: str, table_key: str, request: Request) -> StreamingResponse:
            self._authorize(request)
            extraction = self._extraction(extraction_id)
            table = self._table(extraction, table_key)
            name = request.query_params.get("filter") or "all"
            if name not in DOWNLOAD_FILTERS:
                raise VendorError(400, f"The parameter 'filter' must be one of {', '.join(DOWNLOAD_FILTERS)}")
            self.counters["downloads"] += 1
            return StreamingResponse(
                self._csv(extraction, table, DOWNLOAD_FILTERS[name]),
                media_type="text/csv",
                headers={"content-disposition": f'attachment; filename="{table.key}.csv"'},
            )

        @router.get("/extractions/{extraction_id}/download-original")
        async def download_original(extraction_id: str, request: Request) -> StreamingResponse:
            self._authorize(request)
            upload = self._extraction(extraction_id).file
            self.counters["downloads"] += 1
            return StreamingResponse(
                self._original(upload),
                media_type=upload.file_type()["mime_type"],
                headers={
                    "content-length": str(upload.size),
                    "content-disposition": attachment(upload.file_name),
                },
            )

        @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def unknown(path: str, request: Request) -> None:
            """Unknown routes and methods still answer in Tableflow's error shape."""
            self._authorize(request)
            known = re.fullmatch(
                r"flows(/runs(/[^/]+)?|/[^/]+/runs?)?"
                r"|extractions/[^/]+(/download-original|/tables/[^/]+/(rows|download))?",
                path,
            )
            if known:
                raise VendorError(405, f"Method {request.method} not allowed on /v2/{path}")
            raise VendorError(404, f"No such endpoint: /v2/{path}")

        return router
