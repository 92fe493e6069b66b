"""Many deferred runs across the four vendors at once, for the distributed end-to-end suite.

How many: ``FLOWRUNS_DISTRIBUTED_RUNS`` runs per vendor (the stack's environment sets it; the short suite
runs a few dozen, ``make soak`` 300 in all). Habu gets at least 22, more than its 20 creations per
hour, so the shared create ledger has to hold some tasks back to the next window.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.operators.habu import HabuQuestionRunOperator
from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
from airflow_provider_flowruns.testing.activepieces_app import FLOW_OK

RUNS = int(os.environ.get("FLOWRUNS_DISTRIBUTED_RUNS", "4"))
HABU_RUNS = max(RUNS, 22)
DEADLINE = timedelta(minutes=30)

with DAG(
    "flowruns_distributed_load",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=512,
    tags=["flowruns", "load"],
) as dag:
    AmperityRunWorkflowOperator.partial(
        task_id="amperity", deferrable=True, timeout=DEADLINE, retries=0
    ).expand(config_id=["cg-nightly-sources"] * RUNS)
    HabuQuestionRunOperator.partial(
        task_id="habu", question_id="crq-reach", deferrable=True, timeout=DEADLINE, retries=0
    ).expand(
        parameters=[
            {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23", "BRAND": f"brand-{i}"}
            for i in range(HABU_RUNS)
        ]
    )
    TableflowRunFlowOperator.partial(
        task_id="tableflow",
        flow_id="flow_invoices",
        files={"invoice": "{{ var.value.tableflow_inbox }}/invoice-1001.pdf"},
        deferrable=True,
        timeout=DEADLINE,
        retries=0,
    ).expand(metadata=[{"batch": i} for i in range(RUNS)])
    ActivepiecesTriggerFlowOperator.partial(
        task_id="activepieces", flow_id=FLOW_OK, deferrable=True, timeout=DEADLINE, retries=0
    ).expand(payload=[{"order": i} for i in range(RUNS)])
