"""Tableflow DAGs for dag.test(): review handling, failure, the transfer."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.sensors.tableflow import TableflowFlowRunSensor
from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

FILE = {"invoice": "{{ dag_run.conf['file'] }}"}


def _dag(dag_id: str) -> DAG:
    dag = DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    globals()[dag_id] = dag
    return dag


for _mode in ("wait", "fail", "succeed"):
    with _dag(f"tableflow_review_{_mode}"):
        TableflowRunFlowOperator(
            task_id="run", flow_id="flow_review", files=FILE, on_review=_mode, deferrable=True
        )

with _dag("tableflow_broken"):
    TableflowRunFlowOperator(task_id="run", flow_id="flow_broken", files=FILE, deferrable=True)

with _dag("tableflow_extract"):
    _run = TableflowRunFlowOperator(
        task_id="run",
        flow_id="flow_invoices",
        files=FILE,
        name="invoice {{ ds }}",
        metadata={"rows": 40, "batch": "{{ run_id }}"},
        deferrable=False,
    )
    _watch = TableflowFlowRunSensor(task_id="watch", run_id="{{ ti.xcom_pull('run') }}", deferrable=True)
    _save = TableflowRunResultsToStorageOperator(
        task_id="save",
        run_id="{{ ti.xcom_pull('run') }}",
        destination="{{ dag_run.conf['out'] }}",
        row_filter="valid",
        include_originals=True,
    )
    _run >> _watch >> _save
