"""Activepieces DAGs for dag.test(): trigger (async, sync, failing, paused), retry, resume, bulk
operations, sensor, the step-output transfer, timeout and durable re-attach.

Flow ids are the emulator's seeded flows (``testing/activepieces_app.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_flowruns.operators.activepieces import (
    ActivepiecesResumeFlowRunOperator,
    ActivepiecesRetryFlowRunOperator,
    ActivepiecesTriggerFlowOperator,
)
from airflow_provider_flowruns.operators.activepieces_bulk import (
    ActivepiecesArchiveFlowRunsOperator,
    ActivepiecesBulkRetryFlowRunsOperator,
    ActivepiecesCancelFlowRunsOperator,
)
from airflow_provider_flowruns.sensors.activepieces import ActivepiecesFlowRunSensor
from airflow_provider_flowruns.testing.activepieces_app import (
    FLOW_APPROVAL,
    FLOW_BROKEN,
    FLOW_DELAY,
    FLOW_OK,
    FLOW_RESPONDS,
)
from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator

FAST = {"correlation_poll_interval": 0.5, "correlation_timeout": 60}


def _dag(dag_id: str) -> DAG:
    dag = DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    globals()[dag_id] = dag
    return dag


with _dag("activepieces_trigger"):

    @task
    def order() -> dict:
        return {"order_id": 42, "items": ["a", "b"]}

    _trigger = ActivepiecesTriggerFlowOperator(
        task_id="trigger",
        flow_id=FLOW_OK,
        payload={"order": order(), "day": "{{ ds }}"},
        headers={"x-source": "airflow"},
        parent_run_id="{{ dag_run.conf.get('parent', '') }}",
        deferrable=True,
        **FAST,
    )
    _watch = ActivepiecesFlowRunSensor(
        task_id="watch", run_id="{{ ti.xcom_pull('trigger') }}", deferrable=True
    )
    _save = ActivepiecesStepOutputsToStorageOperator(
        task_id="save", run_id="{{ ti.xcom_pull('trigger') }}", destination="{{ dag_run.conf['out'] }}"
    )
    _trigger >> _watch >> _save

with _dag("activepieces_sync"):
    ActivepiecesTriggerFlowOperator(
        task_id="trigger", flow_id=FLOW_RESPONDS, payload={"qty": 3}, sync=True, deferrable=False, **FAST
    )

with _dag("activepieces_failing"):
    ActivepiecesTriggerFlowOperator(
        task_id="trigger", flow_id=FLOW_BROKEN, payload={}, deferrable=True, **FAST
    )

with _dag("activepieces_pauses"):
    ActivepiecesTriggerFlowOperator(
        task_id="fail_on_pause", flow_id=FLOW_APPROVAL, on_pause="fail", deferrable=True, **FAST
    )
    ActivepiecesTriggerFlowOperator(task_id="wait_through_delay", flow_id=FLOW_DELAY, deferrable=True, **FAST)

with _dag("activepieces_approve"):
    _ask = ActivepiecesTriggerFlowOperator(
        task_id="ask", flow_id=FLOW_APPROVAL, payload={"amount": 120}, on_pause="succeed", **FAST
    )
    _answer = ActivepiecesResumeFlowRunOperator(
        task_id="answer",
        run_id="{{ ti.xcom_pull('ask') }}",
        payload={"approved": True, "by": "{{ dag_run.conf.get('approver', 'airflow') }}"},
        deferrable=True,
    )
    _ask >> _answer

with _dag("activepieces_retry"):
    ActivepiecesRetryFlowRunOperator(
        task_id="flaky_same_id", run_id="{{ dag_run.conf['flaky'] }}", deferrable=True
    )
    ActivepiecesRetryFlowRunOperator(
        task_id="broken_latest",
        run_id="{{ dag_run.conf['broken'] }}",
        strategy="ON_LATEST_VERSION",
        deferrable=True,
    )
    ActivepiecesRetryFlowRunOperator(
        task_id="broken_again", run_id="{{ dag_run.conf['broken_too'] }}", deferrable=False
    )

with _dag("activepieces_bulk"):
    _cancel = ActivepiecesCancelFlowRunsOperator(
        task_id="cancel", flow_run_ids="{{ dag_run.conf['cancel'] }}"
    )
    _retry = ActivepiecesBulkRetryFlowRunsOperator(
        task_id="retry",
        flow_ids="{{ dag_run.conf['flows'] }}",
        created_after="{{ (logical_date - macros.timedelta(days=1)) | ts }}",
        exclude_flow_run_ids="{{ dag_run.conf['keep'] }}",
    )
    _archive = ActivepiecesArchiveFlowRunsOperator(
        task_id="archive", flow_run_ids="{{ dag_run.conf['archive'] }}"
    )
    _cancel >> _retry >> _archive

with _dag("activepieces_sensor_failing"):
    ActivepiecesFlowRunSensor(task_id="failing", run_id="{{ dag_run.conf['run'] }}", deferrable=True)
    ActivepiecesFlowRunSensor(
        task_id="paused_ok",
        run_id="{{ dag_run.conf['paused'] }}",
        on_pause="succeed",
        mode="reschedule",
        poke_interval=5,
    )

with _dag("activepieces_timeout"):
    ActivepiecesTriggerFlowOperator(
        task_id="trigger", flow_id=FLOW_APPROVAL, timeout=3, deferrable=True, **FAST
    )

with _dag("activepieces_durable"):
    ActivepiecesTriggerFlowOperator(
        task_id="trigger",
        flow_id=FLOW_OK,
        payload={"once": True},
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=0),
        **FAST,
    )
