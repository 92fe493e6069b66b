"""One DAG per vendor for the network- and vendor-fault tests (``tests/test_faults_network.py``).

Each starts a run, waits for it in the trigger (dag.test() runs the trigger in-process) and, where
the vendor has results, copies them to storage twice: ``save`` meets the injected faults (cut
downloads), ``reference`` runs after every fault was spent, so comparing the two trees proves no
byte was lost or corrupted.

Hooks time out after 1 s so an injected 1.5 s delay is a read timeout the vendor still acted on;
ten retries let one call outlive a whole burst of faults. One task retry covers a create the vendor
provably never saw (a 5xx on the create), which the provider refuses to repeat by itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.operators.habu import HabuQuestionRunOperator
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.testing.activepieces_app import FLOW_OK
from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator
from airflow_provider_flowruns.transfers.habu import HabuQuestionRunFilesToStorageOperator
from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

HOOK = {
    "timeout": 1.0,
    "connect_timeout": 1.0,
    "max_retries": 10,
    "retry_base_delay": 0.05,
    "retry_max_delay": 2,
}
RUN: dict[str, Any] = {
    "deferrable": True,
    "hook_params": HOOK,
    "retries": 1,
    "retry_delay": timedelta(seconds=0),
}
OUT = "{{ dag_run.conf['out'] }}"


def _dag(dag_id: str) -> DAG:
    dag = DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["faults"])
    globals()[dag_id] = dag
    return dag


def _saved_twice(run: Any, transfer: type, **kwargs: Any) -> None:
    """``run >> save >> reference``: the same transfer into ``<out>/save`` and ``<out>/reference``."""
    save = transfer(task_id="save", destination=OUT + "/save", **kwargs)
    reference = transfer(task_id="reference", destination=OUT + "/reference", **kwargs)
    run >> save >> reference


with _dag("faults_amperity"):
    AmperityRunWorkflowOperator(task_id="run", config_id="cg-faults", run_mode="refresh", **RUN)

with _dag("faults_habu"):
    _saved_twice(
        HabuQuestionRunOperator(
            task_id="run",
            question_id="crq-files",
            parameters={"START_DATE": "2026-11-16", "END_DATE": "2026-11-23", "BRAND": "faults"},
            **RUN,
        ),
        HabuQuestionRunFilesToStorageOperator,
        run_id="{{ ti.xcom_pull('run') }}",
        include_data="csv",
    )

with _dag("faults_tableflow"):
    _saved_twice(
        TableflowRunFlowOperator(
            task_id="run", flow_id="flow_invoices", files={"invoice": "{{ dag_run.conf['file'] }}"}, **RUN
        ),
        TableflowRunResultsToStorageOperator,
        run_id="{{ ti.xcom_pull('run') }}",
        include_originals=True,
    )

with _dag("faults_activepieces"):
    _saved_twice(
        ActivepiecesTriggerFlowOperator(
            task_id="run",
            flow_id=FLOW_OK,
            payload={"order": 7},
            correlation_poll_interval=0.3,
            correlation_timeout=4,
            **RUN,
        ),
        ActivepiecesStepOutputsToStorageOperator,
        run_id="{{ ti.xcom_pull('run') }}",
    )
