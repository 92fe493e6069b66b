"""Adaptive polling under a real Airflow (``dag.test()``, trigger in-process): a task's earlier
runs are its history, and the next run spends fewer status polls on the same run length."""

from __future__ import annotations

import runpy
from datetime import datetime, timezone
from pathlib import Path

import pytest
from airflow.sdk import DAG
from conftest import demo_stats, xcom

from airflow_provider_flowruns.core.history import HISTORY_XCOM_KEY
from airflow_provider_flowruns.core.schedule import MIN_HISTORY

pytestmark = pytest.mark.usefixtures("airflow_db")

DAGS = {
    v.dag_id: v
    for v in runpy.run_path(str(Path(__file__).parent / "dags" / "adaptive_dags.py")).values()
    if isinstance(v, DAG)
}


def run_once(dag_id: str, day: int, demo) -> tuple[object, int]:
    """One dag.test() run; returns its task instance and the status polls the vendor saw."""
    before = demo_stats(demo).get("status_polls", 0)
    dr = DAGS[dag_id].test(logical_date=datetime(2026, 1, day, tzinfo=timezone.utc))
    (ti,) = [t for t in dr.get_task_instances() if t.task_id == "run"]
    assert ti.state == "success", ti.state
    return ti, demo_stats(demo).get("status_polls", 0) - before


def test_fourth_run_polls_less_using_the_first_three(demo):
    polls = []
    for day in range(1, MIN_HISTORY + 2):
        ti, n = run_once("op_poll_adaptive", day, demo)
        polls.append(n)
    record = xcom(ti, HISTORY_XCOM_KEY)
    assert record["seconds"] >= 6.0  # submit-to-detection of a 6 s run
    # The first runs had no history: a poll every second. The last one slept to its expected window.
    # (6 s, not 3: on a loaded machine three short runs' detection times spread enough to open the
    # window early, and a 3 s run then saved no poll at all.)
    assert polls[-1] < min(polls[:MIN_HISTORY]), polls
