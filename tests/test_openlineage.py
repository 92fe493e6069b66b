"""OpenLineage through Airflow's own listener (``apache-airflow-providers-openlineage``, the
``[openlineage]`` extra) with its file transport, on real ``dag.test()`` runs against the emulators.

Each DAG runs in a fresh interpreter: the listener reads ``[openlineage] transport`` once per process,
and this one has loaded Airflow's configuration long before. The events are read back from the
transport's file; the assertions are on what a lineage backend (Marquez, DataHub) would receive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowruns.lineage import source_name
from airflow_provider_flowruns.testing.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("airflow_db")

_DRIVER = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])[sys.argv[2]]
dr = dag.test(run_conf=json.loads(sys.argv[3]))
tis = {ti.task_id: ti for ti in dr.get_task_instances()}
print("RESULT=" + json.dumps({
    "states": {t: ti.state for t, ti in tis.items()},
    "xcom": {t: ti.xcom_pull(task_ids=t) for t, ti in tis.items()},
    "run_ids": {t: ti.xcom_pull(task_ids=t, key="run_id") for t, ti in tis.items()},
}, default=str))
"""


@pytest.fixture(scope="module")
def tableflow_server():
    with EmulatorProcess(["tableflow"], speed=2) as emu:
        yield emu


def run_with_lineage(
    tmp_path: Path, module: str, dag_id: str, conf: dict[str, Any], env: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``dag.test()`` one DAG of ``tests/dags`` with OpenLineage's file transport; (task states and
    return XComs, the events emitted)."""
    events = tmp_path / "openlineage.jsonl"
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "flowruns-test",
    }
    out = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(ROOT / "tests" / "dags" / module), dag_id, json.dumps(conf)],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=500,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT=")), None)
    assert line is not None, out.stdout[-3000:] + out.stderr[-3000:]
    emitted = [json.loads(x) for x in events.read_text().splitlines()] if events.exists() else []
    return json.loads(line.removeprefix("RESULT=")), emitted


def event(events: list[dict[str, Any]], job: str, kind: str) -> dict[str, Any]:
    (found,) = [e for e in events if e["job"]["name"] == job and e["eventType"] == kind]
    return found


def datasets(e: dict[str, Any], side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in e.get(side, [])}


def tableflow_env(server) -> dict[str, str]:
    conn = {"conn_type": "tableflow", "host": server.url("tableflow", "/v2"), "password": "tableflow-key"}
    return {
        "AIRFLOW_CONN_TABLEFLOW_DEFAULT": json.dumps(conn),
        "AIRFLOW__FLOWRUNS__TABLEFLOW_POLL_INTERVAL": "10",
    }


def test_run_and_transfer_report_the_vendor_run_and_datasets(tableflow_server, tmp_path):
    """The run operator reports the Tableflow run it started as the external run, and the flow as
    its input; the transfer reports the run it read as input and every object it wrote as output."""
    tableflow_server.control("POST", "reset")
    document = tmp_path / "invoice.pdf"
    document.write_bytes(os.urandom(20_000))
    out = tmp_path / "out"
    result, events = run_with_lineage(
        tmp_path,
        "tableflow_dags.py",
        "tableflow_extract",
        {"file": str(document), "out": str(out)},
        tableflow_env(tableflow_server),
    )
    assert result["states"] == {"run": "success", "watch": "success", "save": "success"}, result
    run_id = result["xcom"]["run"]
    api = f"tableflow://127.0.0.1:{tableflow_server.port}"

    run = event(events, "tableflow_extract.run", "COMPLETE")
    assert run["run"]["facets"]["externalQuery"]["externalQueryId"] == run_id
    assert run["run"]["facets"]["externalQuery"]["source"] == api
    assert datasets(run, "inputs") == {(api, "flows/flow_invoices")}

    save = event(events, "tableflow_extract.save", "COMPLETE")
    assert save["run"]["facets"]["externalQuery"]["externalQueryId"] == run_id
    assert datasets(save, "inputs") == {(api, f"flows/runs/{run_id}")}
    written = {item["uri"] for item in result["xcom"]["save"]["written"]}
    on_disk = {p.as_uri() for p in out.rglob("*") if p.is_file()}
    assert written == on_disk and len(written) >= 5  # run.json, its pieces, the tables
    # Named as Airflow's OpenLineage integration names an object-storage URI: file:// + path.
    assert datasets(save, "outputs") == {("file://", uri.removeprefix("file:///")) for uri in written}


def test_a_failed_vendor_run_is_reported_on_failure(tableflow_server, tmp_path):
    """The task fails with the vendor's run: the FAIL event still names that run and the flow."""
    tableflow_server.control("POST", "reset")
    document = tmp_path / "invoice.pdf"
    document.write_bytes(os.urandom(20_000))
    result, events = run_with_lineage(
        tmp_path,
        "tableflow_dags.py",
        "tableflow_broken",
        {"file": str(document)},
        tableflow_env(tableflow_server),
    )
    assert result["states"] == {"run": "failed"}, result
    failed = event(events, "tableflow_broken.run", "FAIL")
    api = f"tableflow://127.0.0.1:{tableflow_server.port}"
    vendor_run = result["run_ids"]["run"]  # pushed before the wait
    assert vendor_run
    assert failed["run"]["facets"]["externalQuery"] == {
        **failed["run"]["facets"]["externalQuery"],
        "externalQueryId": vendor_run,
        "source": api,
    }
    assert datasets(failed, "inputs") == {(api, "flows/flow_broken")}
    assert datasets(failed, "outputs") == set()


class _Op:
    cleanroom_id = "cr-1"
    flow_id: str | None = None


def test_source_names_need_every_attribute_they_name():
    """A dataset named ``.../flows/None`` would be wrong: no input rather than that."""
    op = _Op()
    assert source_name("cleanrooms/{cleanroom_id}/flows/{flow_id}", op) is None
    op.flow_id = "fl-9"
    assert source_name("cleanrooms/{cleanroom_id}/flows/{flow_id}", op) == "cleanrooms/cr-1/flows/fl-9"
    assert source_name(None, op) is None


def _operators() -> list[tuple[Any, str]]:
    from airflow_provider_flowruns.operators.activepieces import (
        ActivepiecesResumeFlowRunOperator,
        ActivepiecesRetryFlowRunOperator,
        ActivepiecesTriggerFlowOperator,
    )
    from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
    from airflow_provider_flowruns.operators.habu import (
        HabuFlowRunOperator,
        HabuQuestionRunOperator,
        HabuReplayFlowRunOperator,
        HabuResumeFlowRunOperator,
    )
    from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
    from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator
    from airflow_provider_flowruns.transfers.habu import (
        HabuFlowRunReportToStorageOperator,
        HabuQuestionRunFilesToStorageOperator,
    )
    from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

    return [
        (HabuFlowRunOperator(task_id="a", cleanroom_id="cr", flow_id="fl"), "cleanrooms/cr/flows/fl"),
        (
            HabuReplayFlowRunOperator(task_id="b", cleanroom_id="cr", run_id="r1", flow_id="fl"),
            "cleanrooms/cr/flows/fl",
        ),
        (
            HabuResumeFlowRunOperator(task_id="c", cleanroom_id="cr", run_id="r1"),
            "cleanrooms/cr/flow-runs/r1",
        ),
        (HabuQuestionRunOperator(task_id="d", question_id="q1"), "questions/q1"),
        (AmperityRunWorkflowOperator(task_id="e", config_id="cg-7"), "cg-7"),
        (ActivepiecesTriggerFlowOperator(task_id="f", flow_id="flw"), "flows/flw"),
        (ActivepiecesRetryFlowRunOperator(task_id="g", run_id="r2"), "flow-runs/r2"),
        (ActivepiecesResumeFlowRunOperator(task_id="h", run_id="r3"), "flow-runs/r3"),
        (
            TableflowRunFlowOperator(task_id="i", flow_id="flow_x", files={"doc": "/tmp/x.pdf"}),
            "flows/flow_x",
        ),
        (
            HabuFlowRunReportToStorageOperator(
                task_id="j", cleanroom_id="cr", run_id="r4", node="Q-1", destination="/tmp/x.csv"
            ),
            "cleanrooms/cr/flow-runs/r4/nodes/Q-1",
        ),
        (
            HabuQuestionRunFilesToStorageOperator(task_id="k", run_id="r5", destination="/tmp/o"),
            "question-runs/r5",
        ),
        (
            ActivepiecesStepOutputsToStorageOperator(task_id="l", run_id="r6", destination="/tmp/o"),
            "flow-runs/r6",
        ),
        (
            TableflowRunResultsToStorageOperator(task_id="m", run_id="r7", destination="/tmp/o"),
            "flows/runs/r7",
        ),
    ]


def test_every_run_operator_and_transfer_names_its_source():
    """Each class's declared template fills from its own attributes (an attribute renamed under a
    template would silently drop the input dataset)."""
    for op, expected in _operators():
        assert source_name(op.lineage_source, op) == expected, type(op).__name__


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://api.habu.com/v1", "habu://api.habu.com"),
        ("http://127.0.0.1:8123/habu/v1", "habu://127.0.0.1:8123"),
    ],
)
def test_the_namespace_is_the_vendor_api_host(monkeypatch, host, expected):
    from airflow_provider_flowruns.hooks.habu import HabuHook
    from airflow_provider_flowruns.lineage import namespace

    monkeypatch.setenv(
        "AIRFLOW_CONN_HABU_NS", json.dumps({"conn_type": "habu", "host": host, "login": "c", "password": "s"})
    )
    assert namespace(HabuHook("habu_ns")) == expected
