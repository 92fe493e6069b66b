"""DAGs for dag.test() whose run operators and transfers declare assets as outlets and nothing else:
the provider fills each asset event's extra (tests/test_assets.py reads them back from Airflow)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator, HabuQuestionRunOperator
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.testing.activepieces_app import FLOW_OK
from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator
from airflow_provider_flowruns.transfers.habu import (
    HabuFlowRunReportToStorageOperator,
    HabuQuestionRunFilesToStorageOperator,
)
from airflow_provider_flowruns.transfers.tableflow import TableflowRunResultsToStorageOperator

START = datetime(2026, 1, 1)
OUT = "{{ dag_run.conf['out'] }}"
DATES = {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}
MATCH_NODE = "6f1c1b7e-0001-4000-8000-000000000001"

#: The assets, by the name a downstream DAG would schedule on.
ASSETS = {
    name: Asset(f"flowruns-test://assets/{name}")
    for name in (
        "habu_flow_run",
        "habu_report",
        "habu_question_run",
        "habu_question_files",
        "amperity_run",
        "activepieces_run",
        "activepieces_steps",
        "tableflow_run",
        "tableflow_results",
    )
}

with DAG("assets_habu", schedule=None, start_date=START, catchup=False) as assets_habu:
    flow = HabuFlowRunOperator(
        task_id="flow",
        cleanroom_id="cr-acme",
        flow_id="flow-weekly",
        nodes={MATCH_NODE: DATES},
        deferrable=True,
        outlets=[ASSETS["habu_flow_run"]],
    )
    HabuFlowRunReportToStorageOperator(
        task_id="report",
        cleanroom_id="cr-acme",
        run_id=flow.output,
        node="Q-1002",
        destination=OUT + "/reach.csv",
        outlets=[ASSETS["habu_report"]],
    )
    question = HabuQuestionRunOperator(
        task_id="question",
        question_id="crq-files",
        parameters=DATES,
        deferrable=True,
        outlets=[ASSETS["habu_question_run"]],
    )
    HabuQuestionRunFilesToStorageOperator(
        task_id="files",
        run_id=question.output,
        destination=OUT + "/question",
        include_data="csv",
        outlets=[ASSETS["habu_question_files"]],
    )

with DAG("assets_amperity", schedule=None, start_date=START, catchup=False) as assets_amperity:
    AmperityRunWorkflowOperator(
        task_id="run", config_id="cg-nightly", deferrable=True, outlets=[ASSETS["amperity_run"]]
    )

with DAG("assets_activepieces", schedule=None, start_date=START, catchup=False) as assets_activepieces:
    trigger = ActivepiecesTriggerFlowOperator(
        task_id="trigger",
        flow_id=FLOW_OK,
        payload={"order": 42},
        deferrable=True,
        correlation_poll_interval=0.5,
        outlets=[ASSETS["activepieces_run"]],
    )
    ActivepiecesStepOutputsToStorageOperator(
        task_id="steps", run_id=trigger.output, destination=OUT, outlets=[ASSETS["activepieces_steps"]]
    )

with DAG("assets_tableflow", schedule=None, start_date=START, catchup=False) as assets_tableflow:
    run = TableflowRunFlowOperator(
        task_id="run",
        flow_id="flow_invoices",
        files={"invoice": "{{ dag_run.conf['file'] }}"},
        deferrable=True,
        outlets=[ASSETS["tableflow_run"]],
    )
    TableflowRunResultsToStorageOperator(
        task_id="results", run_id=run.output, destination=OUT, outlets=[ASSETS["tableflow_results"]]
    )
