"""LiveRamp Clean Room (Habu): a weekly clean-room flow run.

Level 1 (audience match) runs for the week's partition dates and pauses; a check reads the match
report, and only a healthy match rate lets the run resume into the costly levels (reach, overlap);
the reach report is then written to storage as CSV, one folder per week.

Connection ``habu_default``:
    AIRFLOW_CONN_HABU_DEFAULT='{"conn_type": "habu", "login": "<client id>", "password": "<client secret>"}'
Variables (defaults fit the built-in emulator): ``habu_cleanroom_id``, ``habu_flow_id``,
``habu_match_node``, ``habu_reach_node``, ``habu_brand``, ``habu_report_dir``
(``s3://bucket/cleanroom`` or a local folder), ``habu_min_matched`` (minimum matched ids).

Habu allows 20 run creations per hour and a status check every 5 minutes at most; this DAG creates
one run a week and polls hourly, and the tasks wait in the triggerer without holding a worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_flowruns.hooks.habu import HabuHook
from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator, HabuResumeFlowRunOperator
from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator

CLEANROOM = "{{ var.value.get('habu_cleanroom_id', 'cr-acme') }}"
FLOW = "{{ var.value.get('habu_flow_id', 'flow-weekly') }}"
MATCH_NODE = "{{ var.value.get('habu_match_node', '6f1c1b7e-0001-4000-8000-000000000001') }}"
REACH_NODE = "{{ var.value.get('habu_reach_node', '6f1c1b7e-0001-4000-8000-000000000002') }}"
REPORT_DIR = "{{ var.value.get('habu_report_dir', '/tmp/flowruns-habu') }}"

with DAG(
    "example_habu_weekly_flow",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["flowruns", "habu", "example"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
) as dag:
    match = HabuFlowRunOperator(
        task_id="match_audiences",
        cleanroom_id=CLEANROOM,
        flow_id=FLOW,
        nodes=[
            {
                "nodeIdentifier": MATCH_NODE,
                "parameters": {
                    # The week before this run (scheduled: its logical date; by hand: when asked).
                    "START_DATE": "{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=7)) | ds }}",
                    "END_DATE": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
                },
            },
            {
                "nodeIdentifier": REACH_NODE,
                "parameters": {"BRAND": "{{ var.value.get('habu_brand', 'acme') }}"},
            },
        ],
        pause_level=1,  # stop after the match; the check below decides whether to spend on the rest
        poll_interval=3600,  # Habu recommends hourly polling
        deferrable=True,
        timeout=timedelta(days=1),
    )

    @task
    def check_match_rate(flow_run_id: str, cleanroom_id: str, node: str, minimum: str) -> int:
        """Read the level-1 report; fail before resuming when too few ids matched."""
        page = next(HabuHook().iter_report(cleanroom_id, flow_run_id, node, page_size=10))
        first = next(page.rows(), None)  # either report shape, read as one table
        if first is None or "matched_ids" not in first:
            raise ValueError(f"the match report of node {node} has no matched_ids row: {first!r}")
        matched = int(first["matched_ids"])
        if matched < int(minimum):
            raise ValueError(f"only {matched} ids matched (minimum {minimum}); not resuming the flow run")
        return matched

    # Airflow's @task typing expects the resolved value where an XComArg is passed (mypy arg-type).
    checked = check_match_rate(
        match.output,  # type: ignore[arg-type]
        CLEANROOM,
        MATCH_NODE,
        "{{ var.value.get('habu_min_matched', '100') }}",
    )

    resume = HabuResumeFlowRunOperator(
        task_id="reach_and_overlap",
        cleanroom_id=CLEANROOM,
        run_id=match.output,
        poll_interval=3600,
        deferrable=True,
        timeout=timedelta(days=1),
    )

    report = HabuFlowRunReportToStorageOperator(
        task_id="reach_report_to_storage",
        cleanroom_id=CLEANROOM,
        run_id=match.output,
        node=REACH_NODE,
        destination=REPORT_DIR + "/{{ (dag_run.logical_date or dag_run.run_after) | ds }}/reach.csv",
        format="csv",
    )

    checked >> resume >> report
