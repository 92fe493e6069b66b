"""DAGs for ``tests/e2e/test_process_faults.py``: one long wait per vendor, plus a worker-held wait.

``pf_<vendor>`` start a run that takes tens of seconds at the module's emulator speeds and wait for
it in the triggerer; ``pf_worker`` waits in the worker (``deferrable=False``) so its process can be
killed right after it submitted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.testing.activepieces_app import FLOW_APPROVAL, FLOW_DELAY

MATCH_NODE = "6f1c1b7e-0001-4000-8000-000000000001"
CORRELATE = {"correlation_poll_interval": 0.5, "correlation_timeout": 60}


def _dag(dag_id: str) -> DAG:
    dag = DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=4)
    globals()[dag_id] = dag
    return dag


with _dag("pf_amperity"):
    AmperityRunWorkflowOperator(task_id="wait", config_id="og-slow", deferrable=True)

with _dag("pf_habu"):
    HabuFlowRunOperator(
        task_id="wait",
        cleanroom_id="cr-acme",
        flow_id="flow-slow",
        nodes={MATCH_NODE: {"START_DATE": "2026-01-01", "END_DATE": "2026-01-08"}},
        deferrable=True,
    )

with _dag("pf_tableflow"):
    TableflowRunFlowOperator(
        task_id="wait",
        flow_id="flow_review",
        files={"invoice": "{{ var.value.pf_invoice }}"},
        deferrable=True,
    )

with _dag("pf_activepieces"):
    # ``dag_run.conf['flow']``: FLOW_DELAY resumes by itself; FLOW_APPROVAL stays PAUSED (cancellable).
    ActivepiecesTriggerFlowOperator(
        task_id="wait",
        flow_id="{{ dag_run.conf.get('flow', '" + FLOW_DELAY + "') }}",
        deferrable=True,
        **CORRELATE,
    )

with _dag("pf_worker"):
    ActivepiecesTriggerFlowOperator(
        task_id="wait",
        flow_id=FLOW_DELAY,
        deferrable=False,
        poll_interval=5,
        retries=1,
        retry_delay=timedelta(seconds=0),
        **CORRELATE,
    )

__all__ = ["FLOW_APPROVAL"]
