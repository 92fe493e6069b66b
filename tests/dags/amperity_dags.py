"""Amperity DAGs for dag.test(): a failing run and a run that outlives its timeout."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.sensors.amperity import AmperityWorkflowRunSensor

with DAG(
    "amperity_failing", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as amperity_failing:
    AmperityRunWorkflowOperator(task_id="run", config_id="og-will-fail", deferrable=True)

with DAG(
    "amperity_timeout", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as amperity_timeout:
    AmperityRunWorkflowOperator(task_id="run", config_id="og-slow", deferrable=True, timeout=3)

with DAG("amperity_sync", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as amperity_sync:
    AmperityRunWorkflowOperator(task_id="run", config_id="cg-sync", run_mode="full", deferrable=False)

with DAG(
    "amperity_sensors", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as amperity_sensors:
    AmperityWorkflowRunSensor(
        task_id="deferred", run_id="{{ dag_run.conf['ok'] }}", deferrable=True, poke_interval=10
    )
    AmperityWorkflowRunSensor(
        task_id="rescheduled",
        run_id="{{ dag_run.conf['ok'] }}",
        deferrable=False,
        mode="reschedule",
        poke_interval=10,
    )
    AmperityWorkflowRunSensor(task_id="failing", run_id="{{ dag_run.conf['bad'] }}", deferrable=True)
