"""DAGs for the contract tests (dag.test()): the operators against the vendors' own examples,
which the tests serve verbatim through the emulators."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator

START = datetime(2026, 1, 1)

with DAG(
    "contract_amperity_start", schedule=None, start_date=START, catchup=False
) as contract_amperity_start:
    AmperityRunWorkflowOperator(task_id="run", config_id="cg-2efo5X8vo", wait_for_completion=False)

with DAG("contract_amperity_wait", schedule=None, start_date=START, catchup=False) as contract_amperity_wait:
    AmperityRunWorkflowOperator(task_id="run", config_id="cg-2efo5X8vo", deferrable=True)

with DAG(
    "contract_activepieces_trigger", schedule=None, start_date=START, catchup=False
) as contract_activepieces_trigger:
    ActivepiecesTriggerFlowOperator(
        task_id="trigger", flow_id="{{ dag_run.conf['flow'] }}", payload={"a": 1}, retries=0
    )
