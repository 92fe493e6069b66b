"""A daily pipeline across all four vendors, each step fed by the one before.

1. Amperity refreshes the day's source files (a courier-group run over the data interval);
2. a LiveRamp Clean Room (Habu) flow run matches audiences and pauses after level 1;
3. it is resumed into the reach and overlap levels once the match is in;
4. the reach report is written to storage as CSV (one folder per interval);
5. Tableflow extracts that report (the file Airflow just wrote is uploaded, streamed);
6. an Activepieces flow is notified with the results: interval, run ids and the report's location.

Scheduled daily with ``catchup=True`` from ``start_date`` to ``end_date``: two intervals, each a full
pipeline run. Every waiting step defers to the triggerer; every vendor run is started once per
interval (a retry re-attaches to its run instead of starting another).

Connections: ``amperity_default``, ``habu_default``, ``tableflow_default``, ``activepieces_default``
(see each vendor's example DAG). Variables (defaults fit the built-in emulators):
``pipeline_report_dir`` (``s3://bucket/reports`` or a local folder), ``pipeline_notify_flow_id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator, HabuResumeFlowRunOperator
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator

CLEANROOM = "cr-acme"
MATCH_NODE = "6f1c1b7e-0001-4000-8000-000000000001"
REACH_NODE = "6f1c1b7e-0001-4000-8000-000000000002"
REPORT = "{{ var.value.get('pipeline_report_dir', '/tmp/flowruns-pipeline') }}/{{ (dag_run.logical_date or dag_run.run_after) | ds }}/reach.csv"

with DAG(
    "example_flowruns_pipeline",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    end_date=datetime(2026, 1, 2),
    catchup=True,
    max_active_runs=2,
    tags=["flowruns", "example", "pipeline"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
) as dag:
    refresh = AmperityRunWorkflowOperator(
        task_id="amperity_refresh",
        config_id="cg-pipeline-sources",
        run_mode="refresh",
        # The day before this run's moment: its logical date when scheduled, when it was asked for
        # when triggered by hand (Airflow 3 then sets no logical date, ds or data interval).
        range_from="{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=1)) | ts }}",
        range_to="{{ (dag_run.logical_date or dag_run.run_after) | ts }}",
        deferrable=True,
        timeout=timedelta(hours=6),
    )
    match = HabuFlowRunOperator(
        task_id="habu_match",
        cleanroom_id=CLEANROOM,
        flow_id="flow-weekly",
        nodes=[
            {
                "nodeIdentifier": MATCH_NODE,
                "parameters": {
                    "START_DATE": "{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=1)) | ds }}",
                    "END_DATE": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
                },
            },
            {"nodeIdentifier": REACH_NODE, "parameters": {"BRAND": "acme"}},
        ],
        pause_level=1,
        poll_interval=3600,
        deferrable=True,
        timeout=timedelta(days=1),
    )
    resume = HabuResumeFlowRunOperator(
        task_id="habu_resume",
        cleanroom_id=CLEANROOM,
        run_id=match.output,
        poll_interval=3600,
        deferrable=True,
        timeout=timedelta(days=1),
    )
    report = HabuFlowRunReportToStorageOperator(
        task_id="report_to_storage",
        cleanroom_id=CLEANROOM,
        run_id=match.output,
        node=REACH_NODE,
        destination=REPORT,
        format="csv",
    )
    extract = TableflowRunFlowOperator(
        task_id="tableflow_extract",
        flow_id="flow_invoices",
        files={"invoice": "{{ ti.xcom_pull('report_to_storage')['uri'] }}"},
        name="reach report {{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        deferrable=True,
        timeout=timedelta(hours=2),
    )
    notify = ActivepiecesTriggerFlowOperator(
        task_id="notify",
        flow_id="{{ var.value.get('pipeline_notify_flow_id', 'flowOk000000000000000') }}",
        payload={
            "interval": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
            "amperity_run": refresh.output,
            "habu_run": match.output,
            "report": "{{ ti.xcom_pull('report_to_storage')['uri'] }}",
            "report_rows": "{{ ti.xcom_pull('report_to_storage')['rows'] }}",
            "tableflow_run": extract.output,
        },
        deferrable=True,
        timeout=timedelta(hours=1),
    )
    refresh >> match >> resume >> report >> extract >> notify
