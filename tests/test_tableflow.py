"""Tableflow against its emulator: streamed uploads from storage, key checks, review handling,
failures with attempts, lost-answer reconciliation, extractions to storage, and the example DAG."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.hooks.tableflow import TableflowHook, plan_file_parts
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.testing.process import EmulatorProcess

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
FLOW = {
    "id": "f",
    "file_input_config": {
        "file_fields": [{"key": "purchase_order", "required": True}, {"key": "invoice", "required": False}]
    },
}


@pytest.fixture(scope="module")
def tableflow_server():
    # Speed 2: processing (10 emulated s) takes 5 s and review (60 s) 30 s, so a task polling every
    # 10 s sees the review (on_review=fail/succeed) and, waiting on, its approval.
    with EmulatorProcess(["tableflow"], speed=2) as emu:
        yield emu


@pytest.fixture
def tableflow(tableflow_server, monkeypatch):
    tableflow_server.control("POST", "reset")
    monkeypatch.setenv(
        "AIRFLOW_CONN_TABLEFLOW_DEFAULT",
        json.dumps(
            {
                "conn_type": "tableflow",
                "host": tableflow_server.url("tableflow", "/v2"),
                "password": "tableflow-key",
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TABLEFLOW_POLL_INTERVAL", "10")
    return tableflow_server


def vendor(emu) -> dict:
    return emu.stats()["vendors"]["tableflow"]


def pdf(tmp_path, name="invoice.pdf", size=50_000) -> str:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return str(path)


# -- file planning (no network) ------------------------------------------------------------------
def test_file_parts_follow_the_flows_fields(tmp_path):
    a, b, c = (pdf(tmp_path, n) for n in ("a.pdf", "b.pdf", "c.pdf"))
    parts = plan_file_parts(FLOW, {"purchase_order": a, "invoice": [b, c]})
    assert [(name, path.name) for name, path in parts] == [
        ("purchase_order", "a.pdf"),
        ("invoice_1", "b.pdf"),
        ("invoice_2", "c.pdf"),
    ]
    assert all(isinstance(path, ObjectStoragePath) for _, path in parts)
    with pytest.raises(FlowRunsConfigError, match=r"requires files for \['purchase_order'\]"):
        plan_file_parts(FLOW, {"invoice": a})
    with pytest.raises(FlowRunsConfigError, match="receipt"):
        plan_file_parts(FLOW, {"purchase_order": a, "receipt": b})
    with pytest.raises(FlowRunsConfigError, match="non-empty"):
        plan_file_parts(FLOW, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_review": "maybe"}, "on_review"),
        ({"files": {}}, "files must be a dict of file field key -> path"),
        ({"flow_id": ""}, "flow_id"),
        # before: a plain string was accepted at parse
        (
            {"files": "po.pdf"},
            r"files must be a dict of file field key -> path or URI .*got the string 'po.pdf'",
        ),
        ({"files": {"invoice": 7}}, r"files\['invoice'\] must be a path or URI string .*got 7"),
        ({"files": {"invoice": []}}, r"files\['invoice'\] is an empty list"),
        ({"files": ["/x.pdf"]}, r"files must be a dict .*got \['/x.pdf'\]"),
    ],
)
def test_bad_operator_input_fails_at_parse(kwargs, message):
    base = {"task_id": "t", "flow_id": "f", "files": {"invoice": "/x.pdf"}}
    with pytest.raises(FlowRunsConfigError, match=message):
        TableflowRunFlowOperator(**{**base, **kwargs})


def test_templated_files_are_left_for_execute_and_checked_after_rendering():
    from airflow_provider_flowruns.vendors.tableflow import check_files

    TableflowRunFlowOperator(
        task_id="t", flow_id="f", files="{{ ti.xcom_pull('plan') }}"
    )  # may render to a dict
    with pytest.raises(FlowRunsConfigError, match="got the string"):
        check_files("{{ not rendered }}", rendered=True)
    check_files({"invoice": ObjectStoragePath("file:///in/x.pdf"), "po": ["s3://b/p1.pdf", "/p2.pdf"]})


def test_results_transfer_checks_its_parameters_at_parse():
    from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

    with pytest.raises(FlowRunsConfigError, match="row_filter must be"):
        TableflowRunResultsToStorageOperator(task_id="s", run_id="r", destination="/o", row_filter="good")
    with pytest.raises(FlowRunsConfigError, match=r"hook_params\['timeout'\]"):
        TableflowRunResultsToStorageOperator(
            task_id="s", run_id="r", destination="/o", hook_params={"timeout": []}
        )


def test_a_missing_document_fails_naming_files_and_the_path(tmp_path):
    """Before: a bare FileNotFoundError from the upload, naming neither ``files`` nor the key."""
    present = pdf(tmp_path, "po.pdf")
    missing = str(tmp_path / "nowhere" / "inv.pdf")
    with pytest.raises(FlowRunsConfigError, match=rf"files\['invoice'\]: no document at file://{missing}"):
        plan_file_parts(FLOW, {"purchase_order": present, "invoice": [present, missing]})


# -- hook against the emulator -------------------------------------------------------------------
def test_upload_is_streamed_from_storage(tableflow, tmp_path):
    """8 MiB go up while Python never holds more than a small fraction of them."""
    path = pdf(tmp_path, size=8 * 1024 * 1024)
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    hook = TableflowHook(**FAST)
    # Warm up outside the measurement: the first storage open imports Airflow's lineage modules.
    hook.run_flow("flow_invoices", {"invoice": pdf(tmp_path, "small.pdf", size=10)})
    tracemalloc.start()
    try:
        run = hook.run_flow("flow_invoices", {"invoice": path}, name="big", metadata={"customer_id": "42"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes: the upload was buffered"
    assert run["status"] == "processing" and run["metadata"]["customer_id"] == "42"
    ((key, uploaded),) = run["input_files"].items()
    assert (key, uploaded["size"], uploaded["sha256"]) == ("invoice", 8 * 1024 * 1024, digest)
    assert vendor(tableflow)["bytes_received"] == 8 * 1024 * 1024 + 10


def test_unknown_flow_and_missing_keys_fail_before_upload(tableflow, tmp_path):
    hook = TableflowHook(**FAST)
    with pytest.raises(FlowRunsConfigError, match="not among the workspace's active flows"):
        hook.run_flow("flow_inactive", {"invoice": pdf(tmp_path)})
    with pytest.raises(FlowRunsConfigError, match="purchase_order"):
        hook.run_flow("flow_po_match", {"invoice": pdf(tmp_path)})
    assert vendor(tableflow)["runs_created"] == 0


def test_multi_file_field_and_list_runs(tableflow, tmp_path):
    hook = TableflowHook(**FAST)
    run = hook.run_flow(
        "flow_po_match",
        {
            "purchase_order": pdf(tmp_path, "po.pdf"),
            "invoice": [pdf(tmp_path, "i1.pdf"), pdf(tmp_path, "i2.pdf")],
        },
        file_guidance={"invoice": "dates are dd/mm"},
    )
    assert sorted(run["input_files"]) == ["invoice_1", "invoice_2", "purchase_order"]
    for i in range(3):
        hook.run_flow("flow_invoices", {"invoice": pdf(tmp_path, f"x{i}.pdf")})
    listed = list(hook.list_runs(limit=2))
    assert len(listed) == 4 and len({r["id"] for r in listed}) == 4
    assert [r["id"] for r in hook.list_runs(flow_id="flow_po_match")] == [run["id"]]


def test_lost_upload_answer_is_found_by_its_key(tableflow, tmp_path):
    tableflow.add_faults({"kind": "truncate", "path": "/run$", "method": "POST"})
    run = TableflowHook(**FAST).run_flow(
        "flow_invoices", {"invoice": pdf(tmp_path)}, correlation_key="dag/t/r/-1"
    )
    assert run["metadata"]["airflow_run_key"] == "dag/t/r/-1"
    assert vendor(tableflow)["runs_created"] == 1


def test_upload_is_never_resent(tableflow, tmp_path):
    tableflow.add_faults({"kind": "status", "status": 503, "path": "/run$", "method": "POST"})
    with pytest.raises(FlowRunsApiError, match="no run carries key 'k'"):
        TableflowHook(**FAST).run_flow("flow_invoices", {"invoice": pdf(tmp_path)}, correlation_key="k")
    assert vendor(tableflow)["runs_created"] == 0
    assert tableflow.stats()["faults_injected"] == {"status": 1}


def test_review_maps_to_paused_and_failure_carries_the_error(tableflow, tmp_path):
    import time

    hook = TableflowHook(**FAST)
    review = hook.run_flow("flow_review", {"invoice": pdf(tmp_path)})
    broken = hook.run_flow("flow_broken", {"invoice": pdf(tmp_path)})
    deadline = time.monotonic() + 20
    while hook.get_status(RunRef(broken["id"])).state is RunState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hook.get_status(RunRef(review["id"])).state is RunState.PAUSED
    status = hook.get_status(RunRef(broken["id"]))
    assert status.state is RunState.FAILED and "Template not found" in status.message


# -- operators under the real Airflow --------------------------------------------------------------
def _run(dag_id: str, module: str, **kwargs):
    import runpy
    from pathlib import Path

    dag = runpy.run_path(str(Path(__file__).parent / "dags" / module))[dag_id]
    dr = dag.test(**kwargs)
    return {ti.task_id: ti for ti in dr.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(("mode", "state"), [("succeed", "success"), ("fail", "failed"), ("wait", "success")])
def test_on_review(tableflow, tmp_path, mode, state):
    tis = _run(f"tableflow_review_{mode}", "tableflow_dags.py", run_conf={"file": pdf(tmp_path)})
    assert tis["run"].state == state
    (run,) = TableflowHook().call(Call("GET", "flows/runs"))["flow_runs"]
    # wait: the task waited through the review until it was approved; succeed/fail: it stopped at review
    assert run["status"] == ("completed" if mode == "wait" else "review")


@pytest.mark.usefixtures("airflow_db")
def test_failed_run_fails_with_error_and_attempts(tableflow, tmp_path, capfd):
    tis = _run("tableflow_broken", "tableflow_dags.py", run_conf={"file": pdf(tmp_path)})
    assert tis["run"].state == "failed"
    out = capfd.readouterr().out
    assert "Template not found" in out and "attempt 2 of 2" in out


@pytest.mark.usefixtures("airflow_db")
def test_run_watch_and_save_extractions(tableflow, tmp_path):
    out = tmp_path / "out"
    tis = _run(
        "tableflow_extract",
        "tableflow_dags.py",
        run_conf={"file": pdf(tmp_path, "Inv ✓ 01.pdf"), "out": str(out)},
    )
    assert {t: ti.state for t, ti in tis.items()} == {"run": "success", "watch": "success", "save": "success"}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # the run's own pieces (as the emulator, following seeds/004, carries them) next to the tables
    run_id = tis["run"].xcom_pull(task_ids="run")
    pieces = {
        f"{run_id}/{name}" for name in ("run.json", "steps.json", "input_files.json", "flow_attempts.json")
    }
    assert pieces <= set(files)
    run = json.loads((out / run_id / "run.json").read_text())
    assert (
        run["status"] == "completed" and json.loads((out / run_id / "steps.json").read_text()) == run["steps"]
    )
    result = tis["save"].xcom_pull(task_ids="save")
    assert result["run_id"] == run["id"] == run_id and result["input_files"] == run["input_files"]
    assert result["extraction_ids"] == [run["steps"][0]["outputs"]["extraction_id"]]
    assert any(f.endswith("/line_items.csv") for f in files) and any(f.endswith("/totals.csv") for f in files)
    assert any("/original/" in f for f in files)
    assert all(".." not in f for f in files)
    (line_items,) = [out / f for f in files if f.endswith("line_items.csv")]
    rows = line_items.read_text().splitlines()
    # metadata rows=40, every 7th line item invalid (5 of them), row_filter="valid": header + 35 rows
    assert len(rows) == 1 + 35


@pytest.mark.usefixtures("airflow_db")
def test_example_dag_processes_the_inbox(tableflow, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a.pdf", "b.pdf"):
        (inbox / name).write_bytes(os.urandom(10_000))
    monkeypatch.setenv("AIRFLOW_VAR_TABLEFLOW_INBOX", str(inbox))
    tis = _run("example_tableflow_invoices", "examples.py")
    assert all(ti.state == "success" for ti in tis.values()), {t: ti.state for t, ti in tis.items()}
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["a.pdf", "b.pdf"]
    assert len(list((inbox / "extractions").rglob("line_items.csv"))) == 2
    assert vendor(tableflow)["runs_created"] == 2
