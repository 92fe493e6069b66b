"""The Tableflow v2 emulator on its own, in-process: the contract the provider's Tableflow tests rely on.

Time only moves when a test calls ``advance`` (the emulated clock runs at a negligible speed), so
status checks right at a boundary are exact whatever the machine's speed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airflow_provider_flowruns.testing.server import EmulatorServer
from airflow_provider_flowruns.testing.tableflow_app import TableflowEmulator

AUTH = {"Authorization": "Bearer tableflow-key"}
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40
RUN_KEYS = {
    "id",
    "flow_id",
    "workspace_id",
    "name",
    "status",
    "status_history",
    "error",
    "metadata",
    "trigger_method",
    "start_time",
    "end_time",
    "duration",
    "drive_files",
    "input_files",
    "flow_attempts",
    "current_attempt",
    "steps",
    "flow",
    "created_at",
    "updated_at",
}


class Api:
    """An httpx client on the in-process app plus the knobs tests turn: the clock and vendor state."""

    def __init__(self, server: EmulatorServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client
        vendor = server.emulators["tableflow"]
        assert isinstance(vendor, TableflowEmulator)
        self.vendor = vendor

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=AUTH)

    async def ok(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def post_run(
        self, flow_id: str, files: list[tuple[str, tuple[str, bytes, str]]], **data: str
    ) -> httpx.Response:
        return await self.client.post(f"/flows/{flow_id}/run", files=files, data=data, headers=AUTH)

    async def run(self, flow_id: str = "flow_invoices", **data: str) -> dict[str, Any]:
        response = await self.post_run(flow_id, [pdf("invoice")], **data)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def advance(self, seconds: float) -> None:
        self.server.clock.advance(seconds)


def pdf(part: str, body: bytes = PDF, name: str | None = None) -> tuple[str, tuple[str, bytes, str]]:
    return part, (name or f"{part}.pdf", body, "application/pdf")


def assert_error(response: httpx.Response, status: int, title: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": title, "message": response.json()["message"]}
    assert fragment in response.json()["message"]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = EmulatorServer(["tableflow"])
    server.clock.set_speed(1e-9)  # frozen; tests move it with advance()
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emu/tableflow/v2") as client:
        yield Api(server, client)


# -- auth and errors ------------------------------------------------------------------------------------
async def test_requests_without_a_valid_key_get_401_in_tableflow_shape(api: Api) -> None:
    assert_error(await api.client.get("/flows"), 401, "Unauthorized", "API key")
    wrong = await api.client.get("/flows", headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "Unauthorized", "Invalid API key")
    basic = await api.client.get("/flows/runs", headers={"Authorization": "Basic dGFibGVmbG93LWtleQ=="})
    assert_error(basic, 401, "Unauthorized", "API key")


async def test_unknown_routes_and_methods_answer_in_tableflow_shape(api: Api) -> None:
    assert_error(await api.get("/nowhere"), 404, "Not found", "/v2/nowhere")
    assert_error(await api.client.delete("/flows", headers=AUTH), 405, "Method not allowed", "DELETE")
    assert_error(await api.get("/flows/runs/missing"), 404, "Not found", "missing")


# -- flows ------------------------------------------------------------------------------------------------
async def test_flows_lists_active_flows_with_file_fields_and_steps(api: Api) -> None:
    flows = await api.ok("/flows")
    assert [f["id"] for f in flows] == ["flow_invoices", "flow_po_match", "flow_review", "flow_broken"]
    po = flows[1]
    assert po["name"] == "PO to Invoice Reconciliation" and po["active"] is True
    assert isinstance(po["created_at"], int) and po["updated_at"] == po["created_at"]
    assert po["file_input_config"]["file_fields"] == [
        {
            "key": "purchase_order",
            "name": "Purchase Order",
            "required": True,
            "file_types": ["pdf", "image"],
            "max_file_size": 10 * 1024 * 1024,
        },
        {
            "key": "invoice",
            "name": "Invoice",
            "required": False,
            "file_types": ["pdf", "image"],
            "max_file_size": 10 * 1024 * 1024,
        },
    ]
    assert [(s["id"], s["type"], s["order"]) for s in po["steps"]] == [
        ("step_1", "extraction", 1),
        ("step_2", "extraction", 2),
        ("step_3", "reconciliation", 3),
    ]
    assert flows[0]["steps"][0]["config"] == {"template_id": "tpl_invoice", "file_key": "invoice"}
    assert set(flows[0]["steps"][0]) == {"id", "title", "description", "type", "order", "config"}


async def test_inactive_and_unknown_flows_cannot_be_run(api: Api) -> None:
    for flow_id in ("flow_inactive", "flow_nope"):
        assert_error(await api.post_run(flow_id, [pdf("invoice")]), 404, "Not found", flow_id)
        assert_error(await api.get(f"/flows/{flow_id}/runs"), 404, "Not found", flow_id)


# -- starting runs -------------------------------------------------------------------------------------------
async def test_run_takes_required_optional_and_multi_file_parts(api: Api) -> None:
    second = b"invoice two" * 1000
    response = await api.post_run(
        "flow_po_match",
        [pdf("purchase_order"), pdf("invoice_1", name="a.pdf"), pdf("invoice_2", second, "b.pdf")],
        name="March batch",
        metadata=json.dumps({"customer_id": "12345"}),
        invoice_metadata=json.dumps({"source": "email"}),
        invoice_guidance="Dates are day-first",
        purchase_order_guidance="Ignore handwritten notes",
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert set(run) == RUN_KEYS
    assert re.fullmatch(r"[A-Za-z0-9]{16}", run["id"])
    assert run["flow_id"] == "flow_po_match" and run["name"] == "March batch"
    assert run["status"] == "processing" and run["trigger_method"] == "api"
    assert run["metadata"] == {"customer_id": "12345"} and run["error"] is None
    assert run["end_time"] is None and run["duration"] == 0  # a number while processing (seeds/004)
    assert run["start_time"] == run["created_at"] and run["drive_files"] == {}
    assert run["status_history"] == [
        {"status": "processing", "time": run["created_at"], "message": "Flow started via api"}
    ]
    assert run["current_attempt"] == 1
    assert [(a["attempt"], a["status"], a["end_time"]) for a in run["flow_attempts"]] == [
        (1, "processing", None)
    ]
    assert run["flow"]["steps"] == [
        {"id": "step_1", "title": "Extract Purchase Order", "type": "extraction"},
        {"id": "step_2", "title": "Extract Invoice", "type": "extraction"},
        {"id": "step_3", "title": "Reconcile Documents", "type": "reconciliation"},
    ]
    files = run["input_files"]  # seeds/004: a map of file field keys to the files uploaded
    assert [(k, f["field_key"], f["file_name"], f["size"]) for k, f in files.items()] == [
        ("purchase_order", "purchase_order", "purchase_order.pdf", len(PDF)),
        ("invoice_1", "invoice", "a.pdf", len(PDF)),
        ("invoice_2", "invoice", "b.pdf", len(second)),
    ]
    assert files["invoice_2"]["sha256"] == hashlib.sha256(second).hexdigest()
    assert files["purchase_order"]["file_type"] == {
        "key": "document",
        "extension": "pdf",
        "mime_type": "application/pdf",
    }
    stats = api.vendor.stats()
    assert stats["runs_created"] == 1 and stats["runs"] == 1
    assert stats["bytes_received"] == 2 * len(PDF) + len(second)

    api.advance(10)
    done = await api.ok(f"/flows/runs/{run['id']}")
    assert done["status"] == "completed"
    steps = [(s["id"], s["status"], s["file_name"], bool(s["outputs"])) for s in done["steps"]]
    assert steps == [
        ("step_1", "completed", "purchase_order.pdf", True),
        ("step_2", "completed", "a.pdf", True),
        ("step_2", "completed", "b.pdf", True),
        ("step_3", "completed", None, False),
    ]
    # the reconciliation's export, in the documented run's shape (seeds/004)
    (sheet,) = done["drive_files"].values()
    assert list(done["drive_files"]) == ["reconciliation"] and list(sheet) == [
        "file_id",
        "mime_type",
        "sheets",
    ]
    assert sheet["mime_type"] == "application/vnd.google-apps.spreadsheet"
    assert sheet["sheets"] == [{"sheet_id": 0, "title": "Reconciliation Results"}]
    extraction = await api.ok(f"/extractions/{done['steps'][2]['outputs']['extraction_id']}")
    assert extraction["file_name"] == "b.pdf" and extraction["file_size"] == len(second)
    assert extraction["template_id"] == "tpl_invoice" and extraction["metadata"] == {"source": "email"}


async def test_optional_field_may_be_left_out_and_its_step_is_skipped(api: Api) -> None:
    run = (await api.post_run("flow_po_match", [pdf("purchase_order")])).json()
    assert list(run["input_files"]) == ["purchase_order"]
    api.advance(10)
    done = await api.ok(f"/flows/runs/{run['id']}")
    assert [(s["id"], s["status"]) for s in done["steps"]] == [
        ("step_1", "completed"),
        ("step_2", "skipped"),
        ("step_3", "completed"),
    ]
    assert done["steps"][1]["outputs"] == {}


async def test_plain_key_and_numbered_keys_can_be_mixed(api: Api) -> None:
    response = await api.post_run("flow_invoices", [pdf("invoice"), pdf("invoice_1", name="x.png")])
    assert response.status_code == 200, response.text
    parts = [(k, f["file_type"]["key"]) for k, f in response.json()["input_files"].items()]
    assert parts == [("invoice", "document"), ("invoice_1", "image")]


async def test_missing_required_field_is_400_naming_the_key(api: Api) -> None:
    response = await api.post_run("flow_po_match", [pdf("invoice")])
    assert_error(response, 400, "Invalid parameters", "'purchase_order' is required")
    assert api.vendor.stats()["runs"] == 0


async def test_unknown_file_part_is_400_naming_the_part(api: Api) -> None:
    response = await api.post_run("flow_invoices", [pdf("invoice"), pdf("receipt")])
    assert_error(response, 400, "Invalid parameters", "'receipt'")
    unknown_text = await api.post_run("flow_invoices", [pdf("invoice")], colour="blue")
    assert_error(unknown_text, 400, "Invalid parameters", "'colour'")
    text_for_file = await api.post_run("flow_po_match", [pdf("purchase_order")], invoice="not a file")
    assert_error(text_for_file, 400, "Invalid parameters", "'invoice' must be a file")


async def test_bad_metadata_json_is_400(api: Api) -> None:
    broken = await api.post_run("flow_invoices", [pdf("invoice")], metadata="{not json")
    assert_error(broken, 400, "Invalid parameters", "'metadata' is not valid JSON")
    not_object = await api.post_run("flow_invoices", [pdf("invoice")], metadata="[1, 2]")
    assert_error(not_object, 400, "Invalid parameters", "JSON object")
    per_file = await api.post_run("flow_invoices", [pdf("invoice")], invoice_metadata="nope")
    assert_error(per_file, 400, "Invalid parameters", "'invoice_metadata'")
    assert api.vendor.stats()["runs_created"] == 0


async def test_oversized_file_is_413_and_reading_stops(api: Api) -> None:
    api.vendor.max_file_size = 3 * 1024 * 1024
    flows = await api.ok("/flows")
    assert flows[0]["file_input_config"]["file_fields"][0]["max_file_size"] == 3 * 1024 * 1024
    big = b"x" * (6 * 1024 * 1024)
    response = await api.post_run("flow_invoices", [pdf("invoice", big)])
    assert_error(response, 413, "File too large", "maximum file size of 3145728 bytes")
    assert api.vendor.stats()["bytes_received"] == 4 * 1024 * 1024  # stopped at the chunk past the limit
    assert (await api.post_run("flow_invoices", [pdf("invoice", big[: 3 * 1024 * 1024])])).status_code == 200


async def test_run_must_be_multipart(api: Api) -> None:
    response = await api.client.post("/flows/flow_invoices/run", json={"invoice": "x"}, headers=AUTH)
    assert_error(response, 400, "Invalid parameters", "multipart/form-data")


# -- progression ------------------------------------------------------------------------------------------
async def test_run_processes_for_ten_seconds_then_completes(api: Api) -> None:
    run = await api.run(metadata=json.dumps({"k": "v"}))
    t0 = run["created_at"]
    # created_at is the creation time floored to whole seconds, so 9 s later is always before
    # created_at + 10 and 10 s later always at or after it.
    api.advance(9)
    mid = await api.ok(f"/flows/runs/{run['id']}")
    assert mid["status"] == "processing" and mid["steps"][0]["status"] == "processing"
    assert mid["steps"][0]["outputs"] == {} and mid["duration"] == 9_000
    api.advance(1)
    done = await api.ok(f"/flows/runs/{run['id']}")
    assert done["status"] == "completed" and done["error"] is None
    assert done["status_history"] == [
        {"status": "processing", "time": t0, "message": "Flow started via api"},
        {"status": "completed", "time": t0 + 10, "message": "Flow completed successfully"},
    ]
    assert done["end_time"] == t0 + 10 and done["duration"] == 10_000 and done["updated_at"] == t0 + 10
    assert done["metadata"] == {"k": "v"}
    assert done["current_attempt"] == 1 and done["drive_files"] == {}  # no reconciliation step
    (attempt,) = done["flow_attempts"]
    assert (attempt["attempt"], attempt["status"], attempt["end_time"]) == (1, "completed", t0 + 10)
    assert attempt["steps"] == done["steps"]
    step = done["steps"][0]
    assert step["id"] == "step_1" and step["type"] == "extraction" and step["status"] == "completed"
    assert step["outputs"]["extraction_id"].startswith("ext_")
    assert api.vendor.stats()["status_polls"] == 2


async def test_review_flow_waits_in_review_then_is_approved(api: Api) -> None:
    run = await api.run("flow_review")
    t0 = run["created_at"]
    api.advance(10)
    review = await api.ok(f"/flows/runs/{run['id']}")
    assert review["status"] == "review" and review["end_time"] is None and review["duration"] == 10_000
    assert review["status_history"][-1] == {"status": "review", "time": t0 + 10, "message": "Awaiting review"}
    assert review["steps"][0]["status"] == "completed" and review["steps"][0]["outputs"]["extraction_id"]
    api.advance(59)
    assert (await api.ok(f"/flows/runs/{run['id']}"))["status"] == "review"
    api.advance(1)
    done = await api.ok(f"/flows/runs/{run['id']}")
    assert done["status"] == "completed"
    assert [(h["status"], h["time"] - t0) for h in done["status_history"]] == [
        ("processing", 0),
        ("review", 10),
        ("completed", 70),
    ]
    assert done["status_history"][-1]["message"] == "Review approved"
    assert done["duration"] == 70_000 and len(done["flow_attempts"]) == 1


async def test_broken_flow_retries_once_then_fails_with_its_error(api: Api) -> None:
    error = "Extraction step 'Extract Invoice' failed: Template not found"
    run = await api.run("flow_broken")
    t0 = run["created_at"]
    api.advance(5)
    retrying = await api.ok(f"/flows/runs/{run['id']}")
    assert retrying["status"] == "processing"
    assert retrying["current_attempt"] == 2
    assert [(a["attempt"], a["status"]) for a in retrying["flow_attempts"]] == [
        (1, "failed"),
        (2, "processing"),
    ]
    assert retrying["error"] is None
    assert retrying["status_history"][-1]["message"].startswith("Attempt 1 failed")
    assert [(s["attempt"], s["status"]) for s in retrying["steps"]] == [(1, "failed"), (2, "processing")]
    api.advance(5)
    failed = await api.ok(f"/flows/runs/{run['id']}")
    assert failed["status"] == "failed" and failed["error"] == error
    assert failed["status_history"][-1] == {"status": "failed", "time": t0 + 10, "message": error}
    assert failed["current_attempt"] == 2
    assert [(a["attempt"], a["status"]) for a in failed["flow_attempts"]] == [(1, "failed"), (2, "failed")]
    assert [(s["attempt"], s["status"], s["error"], s["outputs"]) for s in failed["steps"]] == [
        (1, "failed", "Template not found", {}),
        (2, "failed", "Template not found", {}),
    ]
    assert failed["duration"] == 10_000


# -- listing runs ----------------------------------------------------------------------------------------
async def test_list_runs_paginates_newest_first_with_filters(api: Api) -> None:
    ids = [(await api.run("flow_invoices"))["id"] for _ in range(3)]
    ids += [(await api.run("flow_review"))["id"] for _ in range(2)]
    newest_first = ids[::-1]

    seen, offset, pages = [], 0, []
    while offset is not None:
        body = await api.ok("/flows/runs", limit=2, offset=offset)
        pages.append(body["pagination"])
        seen += [r["id"] for r in body["flow_runs"]]
        offset = body["pagination"]["next_offset"]
    assert seen == newest_first
    assert pages == [
        {"total": 5, "limit": 2, "offset": 0, "next_offset": 2, "filter": "all"},
        {"total": 5, "limit": 2, "offset": 2, "next_offset": 4, "filter": "all"},
        {"total": 5, "limit": 2, "offset": 4, "next_offset": None, "filter": "all"},
    ]
    default = await api.ok("/flows/runs")
    assert default["pagination"]["limit"] == 100 and default["pagination"]["next_offset"] is None

    api.advance(10)
    review = await api.ok("/flows/runs", status="review")
    assert [r["id"] for r in review["flow_runs"]] == newest_first[:2]
    assert review["pagination"]["filter"] == "review" and review["pagination"]["total"] == 2
    completed = await api.ok("/flows/runs", status="completed", flow_id="flow_invoices")
    assert [r["id"] for r in completed["flow_runs"]] == newest_first[2:]
    assert (await api.ok("/flows/runs", flow_id="flow_broken"))["flow_runs"] == []

    assert_error(await api.get("/flows/runs", limit=1001), 400, "Invalid parameters", "'limit'")
    assert_error(await api.get("/flows/runs", offset=-1), 400, "Invalid parameters", "'offset'")
    assert_error(await api.get("/flows/runs", status="done"), 400, "Invalid parameters", "'status'")
    assert (await api.ok("/flows/runs", limit=1000))["pagination"]["limit"] == 1000


async def test_flow_runs_lists_one_flows_runs_unpaginated(api: Api) -> None:
    first = await api.run("flow_review", metadata=json.dumps({"airflow_run_key": "a"}))
    await api.run("flow_invoices")
    second = await api.run("flow_review")
    runs = await api.ok("/flows/flow_review/runs")
    assert isinstance(runs, list)
    assert [r["id"] for r in runs] == [second["id"], first["id"]]
    assert runs[1]["metadata"] == {"airflow_run_key": "a"}
    assert set(runs[0]) == RUN_KEYS


# -- extractions -------------------------------------------------------------------------------------------
async def extraction_of(api: Api, **metadata: Any) -> str:
    run = await api.run(metadata=json.dumps(metadata)) if metadata else await api.run()
    api.advance(10)
    done = await api.ok(f"/flows/runs/{run['id']}")
    return str(done["steps"][0]["outputs"]["extraction_id"])


async def test_extraction_is_hidden_until_its_step_completes(api: Api) -> None:
    run = await api.run()
    extraction_id = next(iter(api.vendor.extractions))
    assert_error(await api.get(f"/extractions/{extraction_id}"), 404, "Not found", extraction_id)
    api.advance(10)
    assert (await api.ok(f"/flows/runs/{run['id']}"))["steps"][0]["outputs"] == {
        "extraction_id": extraction_id
    }
    assert (await api.ok(f"/extractions/{extraction_id}"))["status"] == "completed"


async def test_get_extraction_returns_fields_tables_stats_and_template(api: Api) -> None:
    extraction_id = await extraction_of(api)
    body = await api.ok(f"/extractions/{extraction_id}")
    assert body["id"] == extraction_id and body["template_id"] == "tpl_invoice"
    assert body["template_name"] == "Invoice" and body["file_name"] == "invoice.pdf"
    assert body["file_size"] == len(PDF) and body["file_type"]["extension"] == "pdf"
    assert [h["status"] for h in body["status_history"]] == ["processing", "completed"]
    fields = body["data"]["fields"]
    assert set(fields["values"]) == {"invoice_number", "invoice_date", "vendor_name", "total_amount"}
    assert fields["validations"] == {}
    line_items = body["data"]["tables"]["line_items"]
    assert line_items["pagination"] == {"total": 25, "offset": 0, "limit": 100, "next_offset": None}
    assert [r["index"] for r in line_items["rows"]] == list(range(25))
    row = line_items["rows"][0]
    assert set(row["values"]) == {"description", "quantity", "unit_price", "amount"}
    assert row["values"]["amount"] == pytest.approx(row["values"]["quantity"] * row["values"]["unit_price"])
    assert row["validations"] == {}
    assert line_items["rows"][6]["validations"]["amount"]["valid"] is False
    totals = body["data"]["tables"]["totals"]["rows"]
    assert len(totals) == 1 and totals[0]["values"]["line_count"] == 25
    assert fields["values"]["total_amount"] == totals[0]["values"]["total"]
    assert body["stats"] == {"valid": 22 + 1, "invalid": 3}
    assert [t["key"] for t in body["template"]["tables"]] == ["line_items", "totals"]
    assert [c["key"] for c in body["template"]["tables"][0]["columns"]] == [
        "description",
        "quantity",
        "unit_price",
        "amount",
    ]


async def test_rows_endpoint_pages_and_filters(api: Api) -> None:
    extraction_id = await extraction_of(api, rows=1000)
    path = f"/extractions/{extraction_id}/tables/line_items/rows"
    body = await api.ok(path)
    assert body["pagination"] == {
        "total": 1000,
        "offset": 0,
        "limit": 100,
        "next_offset": 100,
        "filter": "all",
    }
    errors = await api.ok(path, filter="error", limit=3, offset=1)
    assert [r["index"] for r in errors["rows"]] == [13, 20, 27]
    assert errors["pagination"]["total"] == 142 and errors["pagination"]["filter"] == "error"
    assert all(r["validations"] for r in errors["rows"])
    valid = await api.ok(path, filter="valid", limit=8, offset=4)
    assert [r["index"] for r in valid["rows"]] == [4, 5, 7, 8, 9, 10, 11, 12]
    assert valid["pagination"]["total"] == 858
    last = await api.ok(path, filter="valid", limit=1000, offset=800)
    assert len(last["rows"]) == 58 and last["pagination"]["next_offset"] is None
    assert last["rows"][-1]["index"] == 999
    assert (await api.ok(path, filter="error", offset=141))["rows"][0]["index"] == 993

    assert_error(await api.get(path, filter="invalid"), 400, "Invalid parameters", "'filter'")
    assert_error(await api.get(path, limit=1001), 400, "Invalid parameters", "'limit'")
    missing = await api.get(f"/extractions/{extraction_id}/tables/nope/rows")
    assert_error(missing, 404, "Not found", "'nope'")


def parse_csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


async def test_csv_download_filters_rows(api: Api) -> None:
    extraction_id = await extraction_of(api, rows=1000)
    path = f"/extractions/{extraction_id}/tables/line_items/download"
    response = await api.get(path)
    assert response.headers["content-disposition"] == 'attachment; filename="line_items.csv"'
    rows = parse_csv(response)
    assert rows[0] == ["description", "quantity", "unit_price", "amount"]
    assert len(rows) == 1 + 1000
    assert rows[1][0] == 'Paper, A4 "premium" (box)'  # quoted properly, not split
    assert len(parse_csv(await api.get(path, filter="valid"))) == 1 + 858
    invalid = parse_csv(await api.get(path, filter="invalid"))
    assert len(invalid) == 1 + 142
    assert all(float(a) != int(q) * float(p) for _, q, p, a in invalid[1:])
    totals = parse_csv(await api.get(f"/extractions/{extraction_id}/tables/totals/download"))
    assert totals[0] == ["line_count", "subtotal", "tax", "total"] and totals[1][0] == "1000"

    assert_error(await api.get(path, filter="error"), 400, "Invalid parameters", "'filter'")
    assert api.vendor.stats()["downloads"] == 4


async def test_csv_rows_match_the_json_rows(api: Api) -> None:
    extraction_id = await extraction_of(api, rows=700)
    base = f"/extractions/{extraction_id}/tables/line_items"
    lines = parse_csv(await api.get(f"{base}/download"))[1:]
    json_rows = []
    for offset in range(0, 700, 100):
        json_rows += (await api.ok(f"{base}/rows", offset=offset))["rows"]
    assert len(lines) == len(json_rows) == 700
    for line, row in zip(lines, json_rows, strict=True):
        values = row["values"]
        assert line == [
            values["description"],
            str(values["quantity"]),
            f"{values['unit_price']:.2f}",
            f"{values['amount']:.2f}",
        ]


async def test_csv_download_is_capped(api: Api) -> None:
    api.vendor.csv_row_cap = 50
    extraction_id = await extraction_of(api, rows=1000)
    rows = parse_csv(await api.get(f"/extractions/{extraction_id}/tables/line_items/download"))
    assert len(rows) == 1 + 50


async def test_csv_download_of_a_big_table_stops_at_500000_rows(api: Api) -> None:
    extraction_id = await extraction_of(api, rows=600_000)
    response = await api.get(f"/extractions/{extraction_id}/tables/line_items/download", filter="valid")
    assert response.status_code == 200
    assert response.text.count("\n") == 1 + 500_000
    page = await api.ok(f"/extractions/{extraction_id}/tables/line_items/rows", offset=599_999)
    assert [r["index"] for r in page["rows"]] == [599_999]


async def test_download_original_returns_recorded_size_and_name(api: Api) -> None:
    body = b"q" * 300_000
    run = (await api.post_run("flow_invoices", [pdf("invoice", body, "Rechnung März.pdf")])).json()
    api.advance(10)
    extraction_id = (await api.ok(f"/flows/runs/{run['id']}"))["steps"][0]["outputs"]["extraction_id"]
    first = await api.get(f"/extractions/{extraction_id}/download-original")
    assert first.status_code == 200
    assert first.headers["content-length"] == str(len(body)) and len(first.content) == len(body)
    assert first.headers["content-type"] == "application/pdf"
    disposition = first.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Rechnung M_rz.pdf"')
    assert "filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf" in disposition
    second = await api.get(f"/extractions/{extraction_id}/download-original")
    assert second.content == first.content
    assert api.vendor.stats()["downloads"] == 2


# -- counters and reset -----------------------------------------------------------------------------------
async def test_stats_start_at_zero_and_reset_clears_everything(api: Api) -> None:
    assert api.vendor.stats() == {
        "runs_created": 0,
        "status_polls": 0,
        "downloads": 0,
        "bytes_received": 0,
        "runs": 0,
    }
    await extraction_of(api)
    assert api.vendor.stats()["runs"] == 1 and api.vendor.extractions
    response = await api.client.post("http://emu/_emulator/reset")
    assert response.status_code == 200
    assert api.vendor.stats()["runs"] == 0 and not api.vendor.extractions
    assert api.vendor.stats()["runs_created"] == 0
    assert (await api.ok("/flows/runs"))["flow_runs"] == []
