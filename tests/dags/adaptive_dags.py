"""A DAG whose run length is stable, so its fourth run can poll from the first three's history."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_flowruns.testing.demo import DemoRunOperator

with DAG(
    "op_poll_adaptive", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["flowruns-tests"]
) as op_poll_adaptive:
    DemoRunOperator(task_id="run", duration=6.0, deferrable=True, poll_interval=1, poll_schedule="adaptive")
