"""Operators call their interval ``poll_interval``; sensors inherit Airflow's ``poke_interval``. A
sensor takes either word (``poll_interval`` is an alias), so the same DAG code works on both."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.sensors.amperity import AmperityWorkflowRunSensor
from airflow_provider_flowruns.testing.demo import DemoRunSensor


def test_a_sensor_takes_poll_interval_as_its_poke_interval():
    """Before: Airflow refused the unknown keyword (``Invalid arguments were passed to
    DemoRunSensor ... **kwargs: {'poll_interval': 42}``)."""
    assert DemoRunSensor(task_id="a", run_id="r", poll_interval=42).poke_interval == 42
    assert (
        AmperityWorkflowRunSensor(task_id="b", run_id="r", poll_interval=timedelta(minutes=2)).poke_interval
        == 120
    )
    assert DemoRunSensor(task_id="c", run_id="r", poll_interval=30, poke_interval=30).poke_interval == 30
    assert DemoRunSensor(task_id="d", run_id="r", poke_interval=15).poke_interval == 15


def test_two_different_intervals_fail_naming_both():
    with pytest.raises(FlowRunsConfigError) as exc:
        DemoRunSensor(task_id="e", run_id="r", poll_interval=30, poke_interval=60)
    assert str(exc.value) == (
        "poll_interval=30 and poke_interval=60 disagree: on a sensor poll_interval is an alias of "
        "poke_interval (Airflow's name); pass one of them"
    )
