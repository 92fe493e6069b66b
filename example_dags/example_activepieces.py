"""Activepieces: an expense waits for approval inside an Activepieces flow. Airflow builds the
request from upstream data, lets the flow pause for the decision, answers it by policy, and then
retries the project's runs that failed in the day before.

Connection ``activepieces_default`` (platform API key; see docs/connections.md):
    AIRFLOW_CONN_ACTIVEPIECES_DEFAULT='{"conn_type": "activepieces", "password": "<api key>",
        "extra": {"project_id": "<project id>"}}'
Variables (optional):
    ``activepieces_approval_flow_id``: the approval flow (webhook trigger, then an approval step);
    ``activepieces_auto_approve_limit``: expenses up to this amount are approved (default 500).
The flow id defaults to the built-in emulator's seeded approval flow, so the DAG runs offline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Variable, task
from airflow.sdk.types import DagRunProtocol

from airflow_provider_flowruns.operators.activepieces import (
    ActivepiecesResumeFlowRunOperator,
    ActivepiecesTriggerFlowOperator,
)
from airflow_provider_flowruns.operators.activepieces_bulk import ActivepiecesBulkRetryFlowRunsOperator

with DAG(
    "example_activepieces_approval",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["flowruns", "activepieces", "example"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
) as dag:

    @task
    def expense_report(dag_run: DagRunProtocol | None = None) -> dict[str, Any]:
        """Stands in for reading the day's expense from a source system (the run's day: its logical
        date when scheduled, when it was asked for when triggered by hand without one)."""
        assert dag_run is not None  # Airflow passes the run
        day = (dag_run.logical_date or dag_run.run_after).date()
        return {"id": f"EXP-{day}", "amount": 120, "currency": "EUR", "submitted_by": "j.doe"}

    @task
    def decide(expense: dict[str, Any]) -> dict[str, Any]:
        """The approval policy: small expenses are approved automatically."""
        limit = float(Variable.get("activepieces_auto_approve_limit", default=500))
        return {"approved": float(expense["amount"]) <= limit, "by": "airflow-policy"}

    report = expense_report()
    request = ActivepiecesTriggerFlowOperator(
        task_id="request_approval",
        flow_id="{{ var.value.get('activepieces_approval_flow_id', 'flowApproval000000000') }}",
        payload={"expense": report, "requested_by": "airflow"},
        on_pause="succeed",  # the flow waits for a human: hand the paused run to the next task
        deferrable=True,
        timeout=timedelta(hours=1),
    )
    record = ActivepiecesResumeFlowRunOperator(
        task_id="record_decision",
        run_id=request.output,
        # Airflow's @task typing expects the resolved value where an XComArg is passed (mypy arg-type).
        payload=decide(report),  # type: ignore[arg-type]
        deferrable=True,
        timeout=timedelta(hours=1),
    )
    retry = ActivepiecesBulkRetryFlowRunsOperator(
        task_id="retry_failed_runs",
        # Every run of the project that failed (any failed status) in the day before this run.
        created_after="{{ (dag_run.run_after - macros.timedelta(days=1)) | ts }}",
        strategy="FROM_FAILED_STEP",
    )
    record >> retry
