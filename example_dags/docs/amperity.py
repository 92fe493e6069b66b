"""The Amperity snippet of docs/amperity.md, as a DAG (tests/test_doc_snippets.py parses it; the
site includes the ``--8<--`` section, so the page shows this tested code)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

with DAG("docs_amperity", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    # --8<-- [start:run]
    from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
    from airflow_provider_flowruns.sensors.amperity import AmperityWorkflowRunSensor

    refresh = AmperityRunWorkflowOperator(
        task_id="refresh_sources",
        config_id="cg-123abc",  # cg- courier group, og- orchestration group, cc- campaign
        run_mode="refresh",  # source | refresh | full (courier groups only)
        range_from="{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=1)) | ts }}",
        range_to="{{ (dag_run.logical_date or dag_run.run_after) | ts }}",
        deferrable=True,
        timeout=6 * 3600,  # past it the run is stopped and the task fails
    )
    watch = AmperityWorkflowRunSensor(task_id="watch", run_id="wf-20261123-12345-AbCdEf", deferrable=True)
    # --8<-- [end:run]
