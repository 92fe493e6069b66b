"""The Tableflow snippets of docs/tableflow.md, as one DAG (tests/test_doc_snippets.py parses it;
the site includes each ``--8<--`` section, so the page shows this tested code)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

with DAG("docs_tableflow", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    # --8<-- [start:run]
    from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator

    run = TableflowRunFlowOperator(
        task_id="extract",
        flow_id="dk4g1tUg1uHLs8YU",
        files={
            "purchase_order": "s3://inbox/po-{{ (dag_run.logical_date or dag_run.run_after) | ds }}.pdf",  # any ObjectStoragePath URI
            "invoice": ["s3://inbox/inv-1.pdf", "s3://inbox/inv-2.pdf"],  # multi-file: invoice_1, invoice_2
        },
        name="PO {{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        metadata={"customer_id": "12345"},  # echoed by Tableflow on the run
        file_guidance={"invoice": "Dates are day/month/year"},
        on_review="wait",  # or "fail" / "succeed"
        deferrable=True,
    )
    # --8<-- [end:run]

    # --8<-- [start:sensor]
    from airflow_provider_flowruns.sensors.tableflow import TableflowFlowRunSensor

    TableflowFlowRunSensor(task_id="wait", run_id="{{ ti.xcom_pull('extract') }}", deferrable=True)
    # --8<-- [end:sensor]

    # --8<-- [start:save]
    from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

    TableflowRunResultsToStorageOperator(
        task_id="save",
        run_id="{{ ti.xcom_pull('extract') }}",
        destination="s3://lake/tableflow/{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        row_filter="valid",  # all | valid | invalid (extraction tables)
        include_originals=True,  # also copy the documents extractions were made from
        hook_params={"timeout": 60},
    )
    # --8<-- [end:save]
