"""The engine end to end against the built-in demo emulator (``flowruns-emulator serve``).

Start a run without holding a worker, watch it with a deferrable sensor, then stream its result
into object storage (any ``ObjectStoragePath``: a local folder here, ``s3://...`` in production).

Connection ``flowruns_demo_default``:
    AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT='{"conn_type": "flowruns_demo",
        "host": "http://127.0.0.1:8765/demo/v1", "password": "demo-token"}'
Variable ``flowruns_demo_output``: destination prefix (default ``/tmp/flowruns-demo``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.testing.demo import DemoResultToStorageOperator, DemoRunOperator, DemoRunSensor

with DAG(
    "example_flowruns_demo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["flowruns", "example"],
    # A retry re-attaches to the run it already started (durable), so retrying is always safe.
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    doc_md=__doc__,
) as dag:
    # Waits in the triggerer: XComs run_id and run_url are pushed before it defers.
    run = DemoRunOperator(
        task_id="start_and_wait",
        # A manual run (Airflow 3's default for the CLI and REST) has no logical date, and then no
        # ``ds``: the day is the logical date when scheduled, the time it was asked for otherwise.
        run_name="nightly-{{ (dag_run.logical_date or dag_run.run_after) | ds }}-{{ run_id }}",
        params_body={"partition": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"},
        duration=6,
        result_rows=1000,
        deferrable=True,
        poll_interval=5,
        timeout=600,
    )
    # A second run started without waiting, then followed by a sensor (fire-and-forget + sensor).
    side = DemoRunOperator(
        task_id="start_side_run", run_name="side-{{ run_id }}", duration=15, wait_for_completion=False
    )
    watch = DemoRunSensor(
        task_id="watch_side_run",
        run_id="{{ ti.xcom_pull('start_side_run') }}",
        deferrable=True,
        poke_interval=5,
    )
    save = DemoResultToStorageOperator(
        task_id="save_result",
        run_id="{{ ti.xcom_pull('start_and_wait') }}",
        destination="{{ var.value.get('flowruns_demo_output', '/tmp/flowruns-demo') }}/{{ (dag_run.logical_date or dag_run.run_after) | ds }}",
    )
    run >> save
    side >> watch
