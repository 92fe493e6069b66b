"""The Habu (LiveRamp Clean Room) snippets of docs/habu.md, as DAGs (tests/test_doc_snippets.py
parses them; the site includes each ``--8<--`` section, so the page shows this tested code)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

with DAG("docs_habu_flow", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as flow_dag:
    # --8<-- [start:flow]
    from airflow_provider_flowruns.operators.habu import (
        HabuFlowRunOperator,
        HabuReplayFlowRunOperator,
        HabuResumeFlowRunOperator,
    )
    from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator

    match = HabuFlowRunOperator(
        task_id="match",
        cleanroom_id="cr-123",
        flow_id="flow-abc",
        nodes=[
            {
                "nodeIdentifier": "c710e84e-434e-405f-8415-5a13b3c10c3a",
                "parameters": {
                    "START_DATE": "{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=7)) | ds }}",
                    "END_DATE": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
                },
            }
        ],
        pause_level=1,  # succeed when the run is PAUSED at Level-1
        poll_interval=3600,  # hourly, as LiveRamp recommends; never below 300 s
        deferrable=True,
    )
    resume = HabuResumeFlowRunOperator(task_id="resume", cleanroom_id="cr-123", run_id=match.output)
    report = HabuFlowRunReportToStorageOperator(
        task_id="report",
        cleanroom_id="cr-123",
        run_id=match.output,
        node="Q-004368",
        destination="s3://bucket/cleanroom/{{ (dag_run.logical_date or dag_run.run_after) | ds }}/reach.csv",
        format="csv",
    )
    match >> resume >> report
    # A second run from Level-2 that reuses the first one's results (a new run id, returned):
    replay = HabuReplayFlowRunOperator(
        task_id="replay", cleanroom_id="cr-123", run_id=match.output, flow_id="flow-abc", start_level=2
    )
    # --8<-- [end:flow]

with DAG("docs_habu_question", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as question_dag:
    # --8<-- [start:question]
    from airflow_provider_flowruns.operators.habu import HabuQuestionRunOperator
    from airflow_provider_flowruns.transfers.habu import HabuQuestionRunFilesToStorageOperator

    run = HabuQuestionRunOperator(
        task_id="reach",
        question_id="crq-123",  # the clean-room question
        parameters={
            "START_DATE": "{{ ((dag_run.logical_date or dag_run.run_after) - macros.timedelta(days=7)) | ds }}",
            "END_DATE": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        },
        deferrable=True,
    )
    files = HabuQuestionRunFilesToStorageOperator(
        task_id="files",
        run_id=run.output,
        destination="s3://bucket/reach/{{ (dag_run.logical_date or dag_run.run_after) | ds }}/",
        include_data="csv",
    )
    # --8<-- [end:question]
