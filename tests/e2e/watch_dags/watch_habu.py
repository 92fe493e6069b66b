"""A DAG scheduled on a Habu flow's runs, whoever starts them (tests/e2e/test_watchers.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_flowruns.triggers.watch import HabuFlowRunWatcher

WEEKLY_RUNS = Asset(
    "habu://cr-acme/flow-weekly",
    watchers=[
        AssetWatcher(
            name="habu_weekly_runs",
            # Confirm deliveries after 3 s instead of 10 so the restart step waits less.
            trigger=HabuFlowRunWatcher(cleanroom_id="cr-acme", flow_id="flow-weekly", confirm_seconds=3),
        )
    ],
)

with DAG("watch_habu_weekly", schedule=[WEEKLY_RUNS], start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def runs_that_finished(**context):
        """The vendor runs behind this DAG run, from the asset events' extra."""
        return [event.extra["payload"]["run_id"] for event in context["triggering_asset_events"][WEEKLY_RUNS]]

    runs_that_finished()
