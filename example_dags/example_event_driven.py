"""Event-driven: DAGs scheduled on vendor runs, wherever they were started.

``example_habu_report_on_partner_run``: whenever a run of the clean-room flow finishes - started by
a partner, from the clean-room UI, or by another system, not by this Airflow - its reach report is
written to storage, one folder per vendor run. ``HabuFlowRunWatcher`` lists the flow's runs at
most every 5 minutes (Habu's limit) on the deployment's shared token; each finished run is one
asset event, whose extra carries the run id.

``example_tableflow_after_habu``: the next link of a chain across vendors through assets instead of
one big DAG: scheduled on the report asset the first DAG writes (an outlet), it hands the landed
report to Tableflow and carries the Habu run id along from the asset event's extra.

Connections ``habu_default`` and ``tableflow_default``; Variables ``habu_cleanroom_id``,
``habu_flow_id``, ``habu_reach_node``, ``habu_report_dir`` (defaults fit the emulators).
See docs/event-driven-scheduling.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator
from airflow_provider_flowruns.triggers.watch import HabuFlowRunWatcher

CLEANROOM = "cr-acme"
FLOW = "flow-weekly"
REACH_NODE = "{{ var.value.get('habu_reach_node', '6f1c1b7e-0001-4000-8000-000000000002') }}"
REPORT_DIR = "{{ var.value.get('habu_report_dir', '/tmp/flowruns-habu') }}"

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
# The report this provider writes for each of them.
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
    def finished_run(**context) -> str:
        """The vendor run behind this DAG run (the newest, when Airflow folded several events)."""
        events = context["triggering_asset_events"][FLOW_RUNS]
        return str(events[-1].extra["payload"]["run_id"])

    run_id = finished_run()
    # --8<-- [end:watch]
    HabuFlowRunReportToStorageOperator(
        task_id="reach_report",
        cleanroom_id=CLEANROOM,
        run_id=run_id,
        node=REACH_NODE,
        destination=REPORT_DIR + "/{{ ti.xcom_pull(task_ids='finished_run') }}/reach.csv",
        outlets=[REACH_REPORTS],
    )

with DAG(
    "example_tableflow_after_habu",
    schedule=[REACH_REPORTS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["flowruns", "tableflow", "example", "event-driven"],
    doc_md=__doc__,
):

    @task
    def landed_reports(**context) -> list[dict]:
        """What each upstream report event says it landed (the task's outlet extra)."""
        return [dict(event.extra) for event in context["triggering_asset_events"][REACH_REPORTS]]

    landed_reports()
