"""Tableflow's own documented examples (tests/contracts/tableflow/), served verbatim by the uvicorn
emulator, against every hook, operator, sensor, trigger and transfer that could receive them.

Each outcome is checked by value (state, ids, objects written and their bytes) or is an error naming
the field; never success with empty, partial or guessed output. Bodies marked "derived" are a
documented example changed in one stated way (a field the page lists, or one taken away), because
the page gives the shape only in words (vendor-apis.md §4.2 failure example, §4.3 extractions).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from contract_examples import example

from airflow_provider_flowruns.core.errors import FlowRunsApiError, RunFailed, UnexpectedResponse
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.transfers.tableflow import (
    TableflowExtractionsToStorageOperator,
    TableflowRunResultsToStorageOperator,
)

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 1}
SEED_RUN = example("tableflow", "flow_run_seed004")
DOC_RUN = example("tableflow", "flow_run_doc")
FLOW = example("tableflow", "flow")
PAGINATION = example("tableflow", "list_runs_pagination")
ERROR = example("tableflow", "error_body")
RUN_ID = SEED_RUN.body["id"]
assert RUN_ID == DOC_RUN.body["id"] == "Wp7kRnT2mX4vQ9bL"
BASE = "/tableflow/v2"
#: §4.3 lists an extraction's top-level fields and data.tables.<key>.rows in words; this is that list
#: filled in (derived), with one table.
EXTRACTION_ID = "ext_Bx9wKm4nRt7vP3cQ"
EXTRACTION = {
    "id": EXTRACTION_ID,
    "workspace_id": "uT2bJNWN75YPU95r",
    "template_id": "Bx9wKm4nRt7vP3cQ",
    "template_name": "Purchase Order",
    "file_name": "po.pdf",
    "file_size": 1234,
    "file_type": {"key": "document", "extension": "pdf", "mime_type": "application/pdf"},
    "status": "completed",
    "status_history": [],
    "data": {
        "fields": {"values": {"po_number": "PO-2024-001"}, "validations": {}},
        "tables": {"line_items": {"pagination": {"total": 2}, "rows": []}},
    },
}
LINE_ITEMS_CSV = "sku,quantity\nA-1,2\nB-7,5\n"


def run_with_step(**step: Any) -> dict[str, Any]:
    """Seed 004's run (derived) plus one ``steps`` entry as the page describes it: id, status, outputs."""
    body = copy.deepcopy(SEED_RUN.body)
    body["steps"] = [{"id": "step_1", "status": "completed", **step}]
    return body


@pytest.fixture(scope="module")
def server():
    with EmulatorProcess(["tableflow"]) as emu:
        yield emu


@pytest.fixture
def tableflow(server, monkeypatch):
    server.clear_verbatim()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TABLEFLOW_DEFAULT",
        json.dumps(
            {"conn_type": "tableflow", "host": server.url("tableflow", "/v2"), "password": "tableflow-key"}
        ),
    )
    yield server
    server.clear_verbatim()


def serve_run(emu: EmulatorProcess, body: Any, *, status: int = 200) -> None:
    emu.serve_verbatim(
        {"method": "GET", "path": f"{BASE}/flows/runs/{RUN_ID}", "status": status, "body": body}
    )


def serve_extraction(emu: EmulatorProcess, body: Any = EXTRACTION) -> None:
    emu.serve_verbatim(
        {"method": "GET", "path": f"{BASE}/extractions/{EXTRACTION_ID}", "body": body},
        {
            "method": "GET",
            "path": f"{BASE}/extractions/{EXTRACTION_ID}/tables/line_items/download",
            "query": {"filter": "all"},
            "text": LINE_ITEMS_CSV,
            "content_type": "text/csv",
        },
    )


def run_files(root: ObjectStoragePath | Any) -> dict[str, bytes]:
    """The objects under ``<root>/<run id>/``, by their name below it."""
    root = root if isinstance(root, ObjectStoragePath) else ObjectStoragePath(f"file://{root}")
    return files_under(root / RUN_ID)


def files_under(root: ObjectStoragePath) -> dict[str, bytes]:
    if not root.exists():
        return {}
    base = str(root).rstrip("/") + "/"
    return {str(p)[len(base) :]: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def transfer(
    dest: ObjectStoragePath | str, cls: type = TableflowRunResultsToStorageOperator, **kw: Any
) -> Any:
    op = cls(task_id="save", run_id=RUN_ID, destination=dest, hook_params=FAST, **kw)
    return op.execute(context={})


# -- status: hook, sensor and trigger -------------------------------------------------------------------
@pytest.mark.parametrize("ex", [SEED_RUN, DOC_RUN], ids=lambda e: e.name)
def test_documented_run_reads_as_succeeded(tableflow, ex):
    serve_run(tableflow, ex.body)
    status = TableflowHook(**FAST).get_status(RunRef(RUN_ID))
    assert (status.state, status.vendor_status, status.message) == (
        RunState.SUCCEEDED,
        "completed",
        "Flow completed successfully",
    )


@pytest.mark.parametrize("ex", [SEED_RUN, DOC_RUN], ids=lambda e: e.name)
def test_sensor_pokes_true_on_the_documented_run(tableflow, ex):
    from airflow_provider_flowruns.sensors.tableflow import TableflowFlowRunSensor

    serve_run(tableflow, ex.body)
    assert TableflowFlowRunSensor(task_id="w", run_id=RUN_ID, hook_params=FAST).poke({}) is True


@pytest.mark.parametrize("ex", [SEED_RUN, DOC_RUN], ids=lambda e: e.name)
async def test_trigger_fires_success_on_the_documented_run(tableflow, ex):
    from airflow_provider_flowruns.core.schedule import PollSchedule
    from airflow_provider_flowruns.triggers.run import FlowRunTrigger

    serve_run(tableflow, ex.body)
    hook = TableflowHook(**FAST)
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref={"run_id": RUN_ID},
        schedule=PollSchedule.fixed(10, 0.0).to_dict(),
    )
    try:
        events = [event.payload async for event in trigger.run()]
    finally:
        await trigger.cleanup()
    assert [(e["status"], e["run_id"], e["vendor_status"]) for e in events] == [
        ("success", RUN_ID, "completed")
    ]


def test_documented_failure_reads_as_failed_with_its_error(tableflow):
    """Derived: §4.2 "the failure example has status failed and error ..., the same text as the last
    status_history message"."""
    error = "Extraction step 'Extract Invoice' failed: Template not found"
    body = copy.deepcopy(SEED_RUN.body)
    body.update(status="failed", error=error)
    body["status_history"][-1].update(status="failed", message=error)
    serve_run(tableflow, body)
    status = TableflowHook(**FAST).get_status(RunRef(RUN_ID))
    assert (status.state, status.message) == (RunState.FAILED, error)
    with pytest.raises(RunFailed, match="is 'failed', not completed"):
        transfer("/nonexistent-never-written")


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda b: b.pop("status"), r"status: Field required"),
        (lambda b: b.update(status=3), r"status: Input should be a valid string"),
        (lambda b: b.update(status_history="completed"), r"status_history: Input should be a valid list"),
    ],
    ids=["no-status", "status-not-a-string", "history-not-a-list"],
)
def test_a_run_body_we_cannot_read_fails_naming_the_field(tableflow, change, path):
    """Before: a body without ``status`` read as vendor status "unknown" and polled on."""
    body = copy.deepcopy(SEED_RUN.body)
    change(body)
    serve_run(tableflow, body)
    with pytest.raises(UnexpectedResponse, match=path):
        TableflowHook(**FAST).get_status(RunRef(RUN_ID))


def test_documented_error_body_is_the_error_message(tableflow):
    serve_run(tableflow, ERROR.body, status=ERROR.status)
    with pytest.raises(FlowRunsApiError) as caught:
        TableflowHook(**FAST).get_status(RunRef(RUN_ID))
    assert caught.value.status == 400
    assert "The parameter 'template_id' is required" in str(caught.value)


# -- flows, uploads and listings -----------------------------------------------------------------------
def test_documented_flow_plans_and_uploads_and_the_run_id_is_read(tableflow, tmp_path):
    flow_id = FLOW.body["id"]
    tableflow.serve_verbatim(
        {"method": "GET", "path": f"{BASE}/flows", "body": [FLOW.body]},
        {"method": "POST", "path": f"{BASE}/flows/{flow_id}/run", "body": SEED_RUN.body},
    )
    po = tmp_path / "po.pdf"
    po.write_bytes(b"%PDF-1.7 po")
    hook = TableflowHook(**FAST)
    assert hook.get_flow(flow_id)["file_input_config"]["file_fields"][0]["key"] == "purchase_order"
    run = hook.run_flow(flow_id, {"purchase_order": str(po)})
    assert run["id"] == RUN_ID and run["flow_id"] == flow_id


def test_an_upload_answer_without_an_id_fails_naming_id(tableflow, tmp_path):
    flow_id = FLOW.body["id"]
    body = copy.deepcopy(SEED_RUN.body)
    del body["id"]
    tableflow.serve_verbatim(
        {"method": "GET", "path": f"{BASE}/flows", "body": [FLOW.body]},
        {"method": "POST", "path": f"{BASE}/flows/{flow_id}/run", "body": body},
    )
    po = tmp_path / "po.pdf"
    po.write_bytes(b"%PDF")
    with pytest.raises(UnexpectedResponse, match=r"id: Field required"):
        TableflowHook(**FAST).run_flow(flow_id, {"purchase_order": str(po)})


def test_list_runs_follows_the_documented_pagination(tableflow):
    """Page 1 carries the documented ``pagination`` (next_offset 100); page 2 (derived) ends it."""
    last = {**PAGINATION.body, "offset": 100, "next_offset": None}
    tableflow.serve_verbatim(
        {
            "method": "GET",
            "path": f"{BASE}/flows/runs",
            "query": {"offset": "0"},
            "body": {"flow_runs": [SEED_RUN.body], "pagination": PAGINATION.body},
        },
        {
            "method": "GET",
            "path": f"{BASE}/flows/runs",
            "query": {"offset": "100"},
            "body": {"flow_runs": [DOC_RUN.body], "pagination": last},
        },
    )
    runs = list(TableflowHook(**FAST).list_runs(limit=100))
    assert [(r["id"], r["metadata"]) for r in runs] == [
        (RUN_ID, {"customer_id": "12345", "order_number": "PO-2024-001"}),
        (RUN_ID, {"customer_id": "12345"}),
    ]


def test_a_list_page_without_flow_runs_fails_naming_it(tableflow):
    tableflow.serve_verbatim(
        {
            "method": "GET",
            "path": f"{BASE}/flows/runs",
            "body": {"runs": [SEED_RUN.body], "pagination": PAGINATION.body},
        }
    )
    with pytest.raises(UnexpectedResponse, match=r"flow_runs: Field required"):
        list(TableflowHook(**FAST).list_runs())


def test_find_run_reads_the_documented_run_in_a_flows_run_list(tableflow):
    flow_id = SEED_RUN.body["flow_id"]
    tagged = copy.deepcopy(SEED_RUN.body)
    tagged["metadata"]["airflow_run_key"] = "d/t/r/-1"  # derived: the key the provider adds
    tableflow.serve_verbatim(
        {"method": "GET", "path": f"{BASE}/flows/{flow_id}/runs", "body": [DOC_RUN.body, tagged]}
    )
    hook = TableflowHook(**FAST)
    assert hook.find_run(flow_id, "d/t/r/-1")["metadata"]["order_number"] == "PO-2024-001"
    assert hook.find_run(flow_id, "other") is None


# -- results of a run: the transfer -----------------------------------------------------------------------
@pytest.mark.parametrize("ex", [SEED_RUN, DOC_RUN], ids=lambda e: e.name)
def test_transfer_collects_what_the_documented_run_carries(tableflow, tmp_path, ex):
    """Before: "Tableflow run ... lists no extraction steps" on every run shaped like seed 004."""
    serve_run(tableflow, ex.body)
    out = tmp_path / "out"
    result = transfer(str(out))
    written = run_files(out)
    assert sorted(written) == ["drive_files.json", "run.json"]
    assert json.loads(written["run.json"]) == ex.body
    assert json.loads(written["drive_files.json"]) == ex.body["drive_files"]
    assert result["drive_files"]["reconciliation"]["file_id"] == "1ABC123DEF456"
    assert (result["run_id"], result["status"], result["extraction_ids"], result["steps"]) == (
        RUN_ID,
        "completed",
        [],
        [],
    )
    assert [w["uri"].rsplit("/", 1)[1] for w in result["written"]] == ["run.json", "drive_files.json"]


def test_deprecated_transfer_works_on_the_documented_run_and_keeps_its_return(tableflow, tmp_path):
    serve_run(tableflow, SEED_RUN.body)
    with pytest.warns(DeprecationWarning, match="TableflowRunResultsToStorageOperator"):
        op = TableflowExtractionsToStorageOperator(
            task_id="s", run_id=RUN_ID, destination=str(tmp_path / "o")
        )
    written = op.execute(context={})
    assert [w["uri"].rsplit("/", 2)[1:] for w in written] == [
        [RUN_ID, "run.json"],
        [RUN_ID, "drive_files.json"],
    ]


def test_deprecated_transfer_keeps_extraction_tables_where_they_were(tableflow, tmp_path):
    serve_run(tableflow, run_with_step(extraction_id=EXTRACTION_ID))
    serve_extraction(tableflow)
    with pytest.warns(DeprecationWarning):
        op = TableflowExtractionsToStorageOperator(
            task_id="s", run_id=RUN_ID, destination=str(tmp_path / "o")
        )
    op.execute(context={})
    root = ObjectStoragePath(f"file://{tmp_path}/o")
    assert sorted(files_under(root)) == [
        f"{RUN_ID}/drive_files.json",
        f"{RUN_ID}/run.json",
        f"{RUN_ID}/steps.json",
        f"{EXTRACTION_ID}/line_items.csv",
    ]


def test_a_completed_run_with_nothing_to_collect_fails_naming_what_was_looked_for(tableflow, tmp_path):
    """Derived: seed 004's run without ``drive_files`` (the page: only "if Google Drive integration is
    enabled"), and nothing else that holds results."""
    body = copy.deepcopy(SEED_RUN.body)
    del body["drive_files"]
    serve_run(tableflow, body)
    with pytest.raises(
        UnexpectedResponse, match=r"carries nothing to collect: looked for steps, drive_files, input_files"
    ):
        transfer(str(tmp_path / "out"))
    assert files_under(ObjectStoragePath(f"file://{tmp_path}/out")) == {}


@pytest.mark.parametrize(
    "step",
    [{"outputs": {"extraction_id": EXTRACTION_ID}}, {"extraction_id": EXTRACTION_ID}],
    ids=["outputs.extraction_id", "extraction_id"],
)
def test_a_step_naming_an_extraction_brings_its_tables(tableflow, tmp_path, step):
    body = run_with_step(**step)
    body["input_files"] = {
        "purchase_order": {"file_name": "po.pdf", "size": 1234}
    }  # derived, as §4.2 words it
    serve_run(tableflow, body)
    serve_extraction(tableflow)
    out = tmp_path / "out"
    result = transfer(str(out))
    written = run_files(out)
    assert sorted(written) == [
        "drive_files.json",
        f"{EXTRACTION_ID}/line_items.csv",
        "input_files.json",
        "run.json",
        "steps.json",
    ]
    assert written[f"{EXTRACTION_ID}/line_items.csv"].decode() == LINE_ITEMS_CSV
    assert json.loads(written["steps.json"]) == body["steps"] == result["steps"]
    assert json.loads(written["input_files.json"]) == body["input_files"] == result["input_files"]
    assert result["extraction_ids"] == [EXTRACTION_ID]


def test_a_steps_extraction_id_of_the_wrong_type_fails_naming_its_path(tableflow, tmp_path):
    serve_run(tableflow, run_with_step(outputs={"extraction_id": 17}))
    with pytest.raises(UnexpectedResponse, match=r"steps\[0\]\.outputs\.extraction_id: expected a string"):
        transfer(str(tmp_path / "out"))
    assert files_under(ObjectStoragePath(f"file://{tmp_path}/out")) == {}


def test_steps_that_are_not_objects_fail_naming_the_path(tableflow, tmp_path):
    body = copy.deepcopy(SEED_RUN.body)
    body["steps"] = ["step_1"]
    serve_run(tableflow, body)
    with pytest.raises(UnexpectedResponse, match=r"steps\[0\]: Input should be a valid dictionary"):
        transfer(str(tmp_path / "out"))


def test_an_extraction_without_tables_fails_naming_data_tables(tableflow, tmp_path):
    serve_run(tableflow, run_with_step(outputs={"extraction_id": EXTRACTION_ID}))
    serve_extraction(tableflow, {**EXTRACTION, "data": {"fields": {}}})
    with pytest.raises(UnexpectedResponse, match=r"data\.tables: Field required"):
        transfer(str(tmp_path / "out"))
    assert files_under(ObjectStoragePath(f"file://{tmp_path}/out")) == {}


# -- all or nothing, on file:// and S3 ---------------------------------------------------------------------
def test_a_failing_transfer_leaves_nothing_in_the_destination(tableflow, destination):
    """run.json, steps.json and the first table are written before the second table's download
    fails: none of them may stay. Before: each table landed as it came and stayed when a later one
    failed (the old transfer reads a step's ``extraction_id``, so this run reached it too)."""
    two_tables = copy.deepcopy(EXTRACTION)
    two_tables["data"]["tables"]["totals"] = {"pagination": {"total": 1}, "rows": []}
    serve_run(tableflow, run_with_step(extraction_id=EXTRACTION_ID))
    serve_extraction(tableflow, two_tables)
    totals = f"{BASE}/extractions/{EXTRACTION_ID}/tables/totals/download"
    tableflow.serve_verbatim({"method": "GET", "path": totals, "status": ERROR.status, "body": ERROR.body})
    with pytest.raises(FlowRunsApiError, match="template_id"):
        transfer(destination)
    assert files_under(destination) == {}
    # and the same transfer, once the vendor answers, writes everything
    tableflow.clear_verbatim()
    serve_run(tableflow, run_with_step(extraction_id=EXTRACTION_ID))
    serve_extraction(tableflow, two_tables)
    tableflow.serve_verbatim(
        {"method": "GET", "path": totals, "text": "total\n9.50\n", "content_type": "text/csv"}
    )
    transfer(destination)
    written = run_files(destination)
    assert sorted(written) == [
        "drive_files.json",
        f"{EXTRACTION_ID}/line_items.csv",
        f"{EXTRACTION_ID}/totals.csv",
        "run.json",
        "steps.json",
    ]
    assert written[f"{EXTRACTION_ID}/totals.csv"] == b"total\n9.50\n"
