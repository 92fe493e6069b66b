"""Event-driven: DAGs scheduled on vendor runs, wherever they were started.

``example_habu_report_on_partner_run``: whenever a run of the clean-room flow finishes - started by
a partner, from the clean-room UI, or by another system, not by this Airflow - its reach report is
written to storage, one folder per vendor run. ``HabuFlowRunWatcher`` lists the flow's runs at
most every 15 minutes (Habu's floor is 5) on the deployment's shared token; each finished run is one
asset event, whose extra carries the run id. Airflow may fold events that arrive between two looks
of its scheduler into one DAG run, so the report task is mapped over every event: one report per
vendor run, never only the newest.

``example_tableflow_after_habu``: the next link of a chain across vendors through assets instead of
one big DAG. The report task lists the report asset as its outlet and nothing more: the provider
puts what landed on the asset event (``uri``, ``rows``, ``bytes``, ``sha256``, the Habu ``run_id``).
Scheduled on that asset, this DAG hands each landed report to a Tableflow flow, named after the
Habu run it came from.

Connections ``habu_default`` and ``tableflow_default``; Variables ``habu_reach_node``,
``habu_report_dir``, ``tableflow_report_flow`` (defaults fit the emulators). The clean room and
flow are plain constants: a watcher's parameters are fixed when the DAG is parsed (no templates).
See docs/event-driven-scheduling.md; tests/e2e/test_event_driven_examples.py runs both DAGs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator
from airflow_provider_flowruns.triggers.watch import HabuFlowRunWatcher

CLEANROOM = "cr-acme"
FLOW = "flow-weekly"
REACH_NODE = "{{ var.value.get('habu_reach_node', '6f1c1b7e-0001-4000-8000-000000000002') }}"
REPORT_DIR = "{{ var.value.get('habu_report_dir', '/tmp/flowruns-habu') }}"
TABLEFLOW_FLOW = "{{ var.value.get('tableflow_report_flow', 'flow_invoices') }}"

# --8<-- [start:watch]
# Runs of the flow, as they finish (succeeded only: the default).
FLOW_RUNS = Asset(
    f"habu://{CLEANROOM}/{FLOW}",
    watchers=[
        AssetWatcher(
            name="habu_weekly_flow_runs",
            trigger=HabuFlowRunWatcher(cleanroom_id=CLEANROOM, flow_id=FLOW, poll_interval=900),
        )
    ],
)
# The report this provider writes for each of them (the report task's outlet).
REACH_REPORTS = Asset("flowruns://habu/reach-reports")

with DAG(
    "example_habu_report_on_partner_run",
    schedule=[FLOW_RUNS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["flowruns", "habu", "example", "event-driven"],
    doc_md=__doc__,
):

    @task
    def finished_runs(report_dir: str, **context: Any) -> list[dict[str, str]]:
        """Every vendor run behind this DAG run (one event each; Airflow may fold several into one
        DAG run), with the folder its report goes to."""
        events = context["triggering_asset_events"][FLOW_RUNS]
        run_ids = dict.fromkeys(str(event.extra["payload"]["run_id"]) for event in events)
        return [{"run_id": run, "destination": f"{report_dir}/{run}/reach.csv"} for run in run_ids]

    HabuFlowRunReportToStorageOperator.partial(
        task_id="reach_report", cleanroom_id=CLEANROOM, node=REACH_NODE, outlets=[REACH_REPORTS]
    ).expand_kwargs(finished_runs(REPORT_DIR))
# --8<-- [end:watch]

# --8<-- [start:chain]
with DAG(
    "example_tableflow_after_habu",
    schedule=[REACH_REPORTS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["flowruns", "tableflow", "example", "event-driven"],
    doc_md=__doc__,
):

    @task
    def landed_reports(**context: Any) -> list[dict[str, Any]]:
        """One Tableflow run per report the upstream events say landed (their extra: uri, rows,
        bytes, sha256 and the Habu run id), named after the Habu run."""
        return [
            {
                "files": {"invoice": event.extra["uri"]},
                "name": f"reach report of Habu run {event.extra['run_id']}",
            }
            for event in context["triggering_asset_events"][REACH_REPORTS]
        ]

    TableflowRunFlowOperator.partial(
        task_id="extract", flow_id=TABLEFLOW_FLOW, deferrable=True
    ).expand_kwargs(landed_reports())
# --8<-- [end:chain]
