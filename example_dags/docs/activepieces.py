"""The Activepieces snippets of docs/activepieces.md, as one DAG (tests/test_doc_snippets.py parses
it; the site includes each ``--8<--`` section, so the page shows this tested code)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("docs_activepieces", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

    @task
    def orders() -> list[dict[str, int]]:
        return [{"order_id": 1}]

    orders_task_output = orders()

    # --8<-- [start:trigger]
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator

    run = ActivepiecesTriggerFlowOperator(
        task_id="sync_orders",
        flow_id="Xk3aa9TqPz0WLm2Ns7Rb1",
        payload={
            "orders": orders_task_output,
            "day": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        },  # templated; XComArgs resolve
        on_pause="wait",  # "wait" (default) | "succeed" | "fail"
        deferrable=True,
        timeout=3600,
    )
    # --8<-- [end:trigger]

    # --8<-- [start:resume]
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesResumeFlowRunOperator

    ActivepiecesResumeFlowRunOperator(
        task_id="approve",
        run_id="{{ ti.xcom_pull('request_approval') }}",
        payload={"approved": True, "by": "airflow"},
        deferrable=True,
    )
    # --8<-- [end:resume]

    # --8<-- [start:retry]
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesRetryFlowRunOperator

    ActivepiecesRetryFlowRunOperator(task_id="retry", run_id="...", strategy="ON_LATEST_VERSION")
    # --8<-- [end:retry]

    # --8<-- [start:bulk]
    from airflow_provider_flowruns.operators.activepieces_bulk import (
        ActivepiecesArchiveFlowRunsOperator,
        ActivepiecesBulkRetryFlowRunsOperator,
        ActivepiecesCancelFlowRunsOperator,
    )

    ActivepiecesBulkRetryFlowRunsOperator(
        task_id="retry_failed",
        created_after="{{ (dag_run.run_after - macros.timedelta(days=1)) | ts }}",
        flow_ids=["Xk3aa9TqPz0WLm2Ns7Rb1"],
        exclude_flow_run_ids="{{ var.json.get('known_bad_runs', []) }}",
    )
    ActivepiecesCancelFlowRunsOperator(task_id="cancel_queued", flow_ids=["Xk3aa9TqPz0WLm2Ns7Rb1"])
    ActivepiecesArchiveFlowRunsOperator(
        task_id="archive_old",
        flow_ids=["Xk3aa9TqPz0WLm2Ns7Rb1"],
        created_before="{{ (dag_run.run_after - macros.timedelta(days=30)) | ts }}",
    )
    # --8<-- [end:bulk]

    # --8<-- [start:sensor]
    from airflow_provider_flowruns.sensors.activepieces import ActivepiecesFlowRunSensor

    ActivepiecesFlowRunSensor(task_id="wait", run_id="{{ dag_run.conf['run_id'] }}", deferrable=True)
    # --8<-- [end:sensor]

    # --8<-- [start:save]
    from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator

    ActivepiecesStepOutputsToStorageOperator(
        task_id="save",
        run_id="{{ ti.xcom_pull('sync_orders') }}",
        destination="s3://lake/activepieces/{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        steps=None,  # every step, the trigger included; or a list of step names
    )
    # --8<-- [end:save]
