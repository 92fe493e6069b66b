"""Amperity, nightly: refresh the sources of a courier group for yesterday's files, then run the
full orchestration once the refresh succeeded.

Connection ``amperity_default`` (see docs/connections.md), for example:
    AIRFLOW_CONN_AMPERITY_DEFAULT='{"conn_type": "amperity", "password": "<api token>",
        "extra": {"tenant": "acme"}}'
Variables ``amperity_courier_group`` and ``amperity_orchestration_group`` hold the config ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator

with DAG(
    "example_amperity_nightly",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["flowruns", "amperity", "example"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
) as dag:
    refresh = AmperityRunWorkflowOperator(
        task_id="refresh_sources",
        config_id="{{ var.value.get('amperity_courier_group', 'cg-nightly-sources') }}",
        run_mode="refresh",
        # The 24 hours of files before this run: [its moment - 1 day, its moment), the moment being
        # the logical date (03:00) when scheduled and, triggered by hand without one, when asked for.
        range_from="{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=1)) | ts }}",
        range_to="{{ (dag_run.logical_date or dag_run.run_after) | ts }}",
        deferrable=True,
        timeout=timedelta(hours=6),
    )
    full = AmperityRunWorkflowOperator(
        task_id="full_run",
        config_id="{{ var.value.get('amperity_orchestration_group', 'og-nightly-full') }}",
        deferrable=True,
        timeout=timedelta(hours=12),
    )
    refresh >> full
