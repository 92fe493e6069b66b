"""Habu DAGs for dag.test(): question runs to storage, failures, replay, sync wait, sensors and the
hourly create budget."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.habu import (
    HabuFlowRunOperator,
    HabuQuestionRunOperator,
    HabuReplayFlowRunOperator,
)
from airflow_provider_flowruns.sensors.habu import HabuFlowRunSensor, HabuQuestionRunSensor
from airflow_provider_flowruns.transfers.habu import HabuQuestionRunFilesToStorageOperator

START = datetime(2026, 1, 1)
PARAMS = {
    "START_DATE": "{{ data_interval_start | ds }}",
    "END_DATE": "{{ data_interval_end | ds }}",
    "BRAND": "{{ dag_run.conf.get('brand', 'acme') }}",
}
MATCH_NODE = "6f1c1b7e-0001-4000-8000-000000000001"

with DAG(
    "habu_question_to_storage", schedule=None, start_date=START, catchup=False
) as habu_question_to_storage:
    run = HabuQuestionRunOperator(
        task_id="question", question_id="{{ dag_run.conf['question'] }}", parameters=PARAMS, deferrable=True
    )
    HabuQuestionRunFilesToStorageOperator(
        task_id="files", run_id=run.output, destination="{{ dag_run.conf['out'] }}", include_data="csv"
    )

with DAG("habu_question_failing", schedule=None, start_date=START, catchup=False) as habu_question_failing:
    HabuQuestionRunOperator(
        task_id="question", question_id="{{ dag_run.conf['question'] }}", parameters=PARAMS, deferrable=True
    )

with DAG("habu_flow_sync", schedule=None, start_date=START, catchup=False) as habu_flow_sync:
    HabuFlowRunOperator(
        task_id="flow",
        cleanroom_id="cr-acme",
        flow_id="flow-fail",
        nodes={MATCH_NODE: {"START_DATE": "2026-01-01", "END_DATE": "2026-01-08"}},
        deferrable=False,
    )

with DAG("habu_replay", schedule=None, start_date=START, catchup=False) as habu_replay:
    HabuReplayFlowRunOperator(
        task_id="replay",
        cleanroom_id="cr-acme",
        flow_id="flow-weekly",
        run_id="{{ dag_run.conf['parent'] }}",
        start_level=2,
        deferrable=True,
    )

with DAG("habu_sensors", schedule=None, start_date=START, catchup=False) as habu_sensors:
    HabuFlowRunSensor(
        task_id="flow_paused",
        cleanroom_id="cr-acme",
        run_id="{{ dag_run.conf['paused'] }}",
        on_pause="succeed",
        deferrable=True,
        poke_interval=300,
    )
    HabuQuestionRunSensor(
        task_id="question_done",
        run_id="{{ dag_run.conf['question_run'] }}",
        mode="reschedule",
        poke_interval=300,
    )
    HabuQuestionRunSensor(
        task_id="question_failed", run_id="{{ dag_run.conf['failed_run'] }}", deferrable=True
    )

for policy in ("wait", "fail"):
    with DAG(f"habu_create_limit_{policy}", schedule=None, start_date=START, catchup=False) as limited:
        HabuQuestionRunOperator.partial(
            task_id="questions", question_id="crq-files", on_create_limit=policy, deferrable=True
        ).expand(parameters=[{**PARAMS, "BRAND": brand} for brand in ("a", "b", "c")])
    globals()[f"habu_create_limit_{policy}"] = limited

with DAG("habu_flow_named", schedule=None, start_date=START, catchup=False) as habu_flow_named:
    HabuFlowRunOperator(
        task_id="flow",
        cleanroom_id="cr-acme",
        flow_id="flow-slow",
        name="{{ dag_run.conf['name'] }}",
        nodes={MATCH_NODE: {"START_DATE": "2026-01-01", "END_DATE": "2026-01-08"}},
        wait_for_completion=False,
    )
