"""DAG-parse cost, guarded without timing anything: what a DAG file imports.

Benchmark 1 measures the time; this checks the reason it is low. Importing every operator, sensor
and transfer module, and building one of each kind with parse-time validation, must not import
the run engine (HTTP clients, auth, token cache, storage, the trigger and Airflow's trigger base):
those are imported inside ``execute``. (``httpx``, ``pydantic`` and ``fsspec`` are not listed:
``import airflow.sdk`` loads them before any of our code runs.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.hooks.amperity import AmperityHook
from airflow_provider_flowruns.hooks.habu import HabuHook
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.demo import DemoHook
from airflow_provider_flowruns.vendors import ACTIVEPIECES, ALL, AMPERITY, DEMO, HABU, TABLEFLOW
from benchmarks.parse_cost import our_modules

#: Modules a DAG file must not pull in (prefix match).
DEFERRED = (
    "airflow_provider_flowruns.hooks",
    "airflow_provider_flowruns.triggers",
    "airflow_provider_flowruns.core.http",
    "airflow_provider_flowruns.core.auth",
    "airflow_provider_flowruns.core.clients",
    "airflow_provider_flowruns.core.storage",
    "airflow_provider_flowruns.core.create_budget",
    "airflow_provider_flowruns.core.shared_tokens",
    "airflow_provider_flowruns.core.leases",
    "airflow_provider_flowruns.core.history",
    "airflow.triggers.base",
    # OpenLineage (the [openlineage] extra) is imported by the operators' lineage methods only.
    "openlineage",
    "airflow.providers.openlineage",
)

_PROBE = """
import json, sys
import airflow.sdk
already = set(sys.modules)
for name in sys.argv[2:]:
    __import__(name)
if sys.argv[1] == "build":
    import datetime
    from airflow.sdk import DAG
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesRetryFlowRunOperator
    from airflow_provider_flowruns.operators.activepieces_bulk import ActivepiecesBulkRetryFlowRunsOperator
    from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
    from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator
    from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator
    from airflow_provider_flowruns.sensors.activepieces import ActivepiecesFlowRunSensor
    from airflow_provider_flowruns.sensors.habu import HabuFlowRunSensor
    from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator
    from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator
    from airflow_provider_flowruns.transfers.tableflow import (
        TableflowExtractionsToStorageOperator,
        TableflowRunResultsToStorageOperator,
    )

    with DAG("parse_probe", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
        HabuFlowRunOperator(task_id="h", cleanroom_id="c", flow_id="f", pause_level="Level-1", nodes={"n": {"A": 1}})
        AmperityRunWorkflowOperator(task_id="a", config_id="cg-1", run_mode="full", range_from="2026-01-01")
        ActivepiecesRetryFlowRunOperator(task_id="r", run_id="x")
        ActivepiecesBulkRetryFlowRunsOperator(task_id="b", flow_ids=["f"], created_after="2026-01-01")
        TableflowRunFlowOperator(task_id="t", flow_id="f", files={"doc": "/tmp/x.pdf"})
        ActivepiecesFlowRunSensor(task_id="s1", run_id="x")
        HabuFlowRunSensor(task_id="s2", run_id="x", cleanroom_id="c")
        HabuFlowRunReportToStorageOperator(task_id="t1", cleanroom_id="c", run_id="r", node="n", destination="/tmp/x.csv")
        ActivepiecesStepOutputsToStorageOperator(task_id="t2", run_id="r", destination="/tmp/out")
        TableflowExtractionsToStorageOperator(task_id="t3", run_id="r", destination="/tmp/out")
        TableflowRunResultsToStorageOperator(task_id="t4", run_id="r", destination="/tmp/out", hook_params={"timeout": 5})
print(json.dumps(sorted(set(sys.modules) - already)))
"""


def _imported(mode: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, *our_modules()],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("mode", ["import", "build"])
def test_dag_parse_does_not_import_the_run_engine(mode: str) -> None:
    loaded = _imported(mode)
    assert "airflow_provider_flowruns.operators.habu" in loaded  # the probe did import our modules
    pulled = sorted(m for m in loaded if m.startswith(DEFERRED))
    assert pulled == [], f"DAG parse ({mode}) imported {pulled}: import them inside execute() instead"


@pytest.mark.parametrize(
    ("record", "hook"),
    [
        (HABU, HabuHook),
        (AMPERITY, AmperityHook),
        (ACTIVEPIECES, ActivepiecesHook),
        (TABLEFLOW, TableflowHook),
        (DEMO, DemoHook),
    ],
)
def test_vendor_records_build_their_hooks(record, hook) -> None:
    """Each hook's class attributes are its record's facts (what Airflow reads from the class)."""
    assert record.load_hook() is hook
    assert record in ALL
    assert (hook.conn_type, hook.default_conn_name, hook.conn_name_attr, hook.hook_name) == (
        record.conn_type,
        f"{record.conn_type}_default",
        f"{record.conn_type}_conn_id",
        record.display_name,
    )
    assert (hook.vendor, hook.form, hook.default_base_url) == (
        record.name,
        record.form,
        record.default_base_url,
    )
    assert (hook.poll_floor, hook.default_poll_interval) == (record.poll_floor, record.default_poll_interval)
    assert hook.get_ui_field_behaviour() == record.form.field_behaviour()  # Airflow 3.1's form
    built = record.load_hook()("some_conn")
    assert isinstance(built, hook)
    assert built.class_path() == record.hook


def test_a_record_and_its_hook_must_name_each_other() -> None:
    from dataclasses import replace

    from airflow_provider_flowruns.core.http import FlowRunsHook

    stray = replace(DEMO, hook="airflow_provider_flowruns.hooks.habu.HabuHook")
    with pytest.raises(TypeError, match="does not declare vendor_info = the Demo record"):
        stray.load_hook()
    with pytest.raises(TypeError, match="declares the Demo record, which names"):
        type("Elsewhere", (FlowRunsHook,), {"vendor_info": DEMO, "__module__": __name__})


def test_run_tasks_get_their_vendors_link_from_the_record() -> None:
    from airflow_provider_flowruns.operators.habu import HabuQuestionRunOperator
    from airflow_provider_flowruns.sensors.tableflow import TableflowFlowRunSensor
    from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator

    assert [link.name for link in HabuQuestionRunOperator.operator_extra_links] == [HABU.link_name]
    assert [link.name for link in TableflowFlowRunSensor.operator_extra_links] == [TABLEFLOW.link_name]
    assert HabuFlowRunReportToStorageOperator.operator_extra_links == ()  # a transfer pushes no run_url


def test_forms_by_type_match_the_records() -> None:
    """forms.FORMS (walked by the form tests) names the same form per connection type as the records."""
    from airflow_provider_flowruns import forms

    assert {v.conn_type: v.form for v in ALL} == forms.FORMS
