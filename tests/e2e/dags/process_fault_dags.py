"""DAGs for ``tests/e2e/test_process_faults.py``: one long wait per vendor, plus a worker-held wait.

``pf_<vendor>`` start a run that takes tens of seconds at the module's emulator speeds and wait for
it in the triggerer; ``pf_worker_<vendor>`` wait in the worker (``deferrable=False``) so its process
can be killed right after it submitted; ``pf_bulk_retry`` retries the Activepieces runs in
``dag_run.conf['runs']`` (not idempotent: its answer is kept in the task state store).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.activepieces_bulk import ActivepiecesBulkRetryFlowRunsOperator
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


def _operators(**kwargs: Any) -> dict[str, Callable[[], object]]:
    """One long-waiting task ``wait`` per vendor, with ``kwargs`` on each."""
    return {
        "amperity": lambda: AmperityRunWorkflowOperator(task_id="wait", config_id="og-slow", **kwargs),
        "habu": lambda: HabuFlowRunOperator(
            task_id="wait",
            cleanroom_id="cr-acme",
            flow_id="flow-slow",
            nodes={MATCH_NODE: {"START_DATE": "2026-01-01", "END_DATE": "2026-01-08"}},
            **kwargs,
        ),
        "tableflow": lambda: TableflowRunFlowOperator(
            task_id="wait", flow_id="flow_review", files={"invoice": "{{ var.value.pf_invoice }}"}, **kwargs
        ),
        # ``dag_run.conf['flow']``: FLOW_DELAY resumes by itself; FLOW_APPROVAL stays PAUSED.
        "activepieces": lambda: ActivepiecesTriggerFlowOperator(
            task_id="wait",
            flow_id="{{ dag_run.conf.get('flow', '" + FLOW_DELAY + "') }}",
            **CORRELATE,
            **kwargs,
        ),
    }


for _vendor, _make in _operators(deferrable=True).items():
    with _dag(f"pf_{_vendor}"):
        _make()

# Waits held in the worker process (killed right after submit); one retry, at once.
for _vendor, _make in _operators(
    deferrable=False, poll_interval=5, retries=1, retry_delay=timedelta(seconds=0)
).items():
    with _dag(f"pf_worker_{_vendor}"):
        _make()

__all__ = ["FLOW_APPROVAL"]

with _dag("pf_bulk_retry"):
    ActivepiecesBulkRetryFlowRunsOperator(task_id="wait", flow_run_ids="{{ dag_run.conf['runs'] }}")
