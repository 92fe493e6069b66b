"""DAGs the engine tests run with ``dag.test()`` (Airflow 3.3's dag.test finds DAGs in the bundle)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.testing.demo import DemoRunOperator, DemoRunSensor


def _dag(dag_id: str) -> DAG:
    dag = DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["flowruns-tests"])
    globals()[dag_id] = dag  # module-level, so both the DagBag and the tests find every DAG
    return dag


for _deferrable in (True, False):
    with _dag(f"op_success_{_deferrable}"):
        DemoRunOperator(task_id="run", duration=2.0, deferrable=_deferrable, poll_interval=1)
    with _dag(f"op_failed_{_deferrable}"):
        DemoRunOperator(
            task_id="run", duration=1.0, outcome="FAILED", deferrable=_deferrable, poll_interval=1
        )
    with _dag(f"op_timeout_{_deferrable}"):
        DemoRunOperator(task_id="run", duration=3600, deferrable=_deferrable, poll_interval=1, timeout=2)
    with _dag(f"sensor_{_deferrable}"):
        DemoRunSensor(
            task_id="ok", run_id="{{ dag_run.conf['ok'] }}", deferrable=_deferrable, poke_interval=1
        )
        DemoRunSensor(
            task_id="bad", run_id="{{ dag_run.conf['bad'] }}", deferrable=_deferrable, poke_interval=1
        )

with _dag("op_instant"):
    DemoRunOperator(task_id="run", duration=0.0, deferrable=True)

with _dag("op_nowait"):
    _run = DemoRunOperator(task_id="run", duration=3600, wait_for_completion=False)
    _watch = DemoRunSensor(
        task_id="watch", run_id="{{ ti.xcom_pull('run') }}", deferrable=True, poke_interval=1, timeout=1
    )
    _run >> _watch

with _dag("op_templated"):
    DemoRunOperator(
        task_id="run",
        run_name="weekly-{{ ds }}",
        params_body={"start": "{{ ds }}"},
        duration=0.5,
        deferrable=True,
    )

with _dag("op_durable"):
    DemoRunOperator(
        task_id="run",
        run_name="durable-run",
        duration=2.0,
        deferrable=True,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )

with _dag("op_byname"):
    DemoRunOperator(task_id="run", run_name="op_byname.run.fixed", deferrable=False, poll_interval=1)
