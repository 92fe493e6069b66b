"""Tableflow: invoices land in a storage folder; one flow run per invoice, extractions written
next to them.

Connection ``tableflow_default``:
    AIRFLOW_CONN_TABLEFLOW_DEFAULT='{"conn_type": "tableflow", "password": "<api key>"}'
Variable ``tableflow_inbox``: the folder (``s3://bucket/invoices/incoming``, ``/data/invoices``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, ObjectStoragePath, task

from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

INBOX = "{{ var.value.get('tableflow_inbox', '/tmp/flowruns-invoices') }}"

with DAG(
    "example_tableflow_invoices",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["flowruns", "tableflow", "example"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
) as dag:

    @task
    def new_invoices(inbox: str) -> list[dict[str, str]]:
        """One batch per PDF in the inbox (a batch could hold several files of a multi-file field)."""
        root = ObjectStoragePath(inbox if "://" in inbox else f"file://{inbox}")
        return [
            {"invoice": str(p)} for p in sorted(root.iterdir(), key=str) if p.name.lower().endswith(".pdf")
        ]

    @task
    def archive(batches: list[dict[str, str]], inbox: str) -> None:
        """Move processed invoices out of the inbox so the next run only sees new ones."""
        done = ObjectStoragePath(inbox if "://" in inbox else f"file://{inbox}") / "processed"
        done.mkdir(parents=True, exist_ok=True)
        for batch in batches:
            for path in batch.values():
                source = ObjectStoragePath(path)
                source.move(done / source.name)

    batches = new_invoices(INBOX)
    runs = TableflowRunFlowOperator.partial(
        task_id="extract",
        flow_id="{{ var.value.get('tableflow_invoice_flow', 'flow_invoices') }}",
        metadata={"source": "airflow", "inbox": INBOX},
        on_review="wait",  # a human may review in Tableflow; the task keeps waiting in the triggerer
        deferrable=True,
        timeout=timedelta(hours=24),
    ).expand(files=batches)

    saved = TableflowRunResultsToStorageOperator.partial(
        task_id="save_extractions",
        destination=INBOX + "/extractions",
        row_filter="all",
        include_originals=False,
    ).expand(run_id=runs.output)
    # Airflow's @task typing expects the resolved value where an XComArg is passed (mypy arg-type).
    saved >> archive(batches, INBOX)  # type: ignore[arg-type]
