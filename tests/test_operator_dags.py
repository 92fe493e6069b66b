"""The base run operator and sensor under the real Airflow, via ``dag.test()`` (triggers run
in-process), against the live demo emulator."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from conftest import demo_stats, xcom

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.testing.demo import DemoHook, DemoRunOperator, DemoRunSensor
from airflow_provider_flowruns.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.usefixtures("airflow_db")


def run_dag(dag_id: str, **kwargs):
    dag = engine_dags[dag_id]
    dr = dag.test(**kwargs)
    return dr, {ti.task_id: ti for ti in dr.get_task_instances()}


def _load_engine_dags() -> dict[str, DAG]:
    import runpy
    from pathlib import Path

    module = runpy.run_path(str(Path(__file__).parent / "dags" / "engine_dags.py"))
    return {v.dag_id: v for v in module.values() if isinstance(v, DAG)}


engine_dags = _load_engine_dags()


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_run_succeeds_and_publishes_run_id_and_url(demo, deferrable):
    _, tis = run_dag(f"op_success_{deferrable}")
    ti = tis["run"]
    assert ti.state == "success", ti.state
    run_id = xcom(ti, "run_id")
    assert run_id and run_id.startswith("run_")
    assert xcom(ti, "run_url").endswith(f"/runs/{run_id}")
    assert xcom(ti, "return_value") == run_id
    assert demo_stats(demo)["runs_created"] == 1


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_failed_run_fails_the_task(demo, deferrable, capfd):
    dr, tis = run_dag(f"op_failed_{deferrable}")
    assert tis["run"].state == "failed"
    assert dr.state == "failed"
    # failed for the vendor's reason (a crash or a bad import would fail the task too)
    run_id = xcom(tis["run"], "run_id")
    log = capfd.readouterr().out
    assert f"run {run_id} failed (FAILED): step 2 failed: division by zero" in log


def test_run_already_finished_before_defer_is_not_deferred(demo):
    """Check-before-defer: a run that ends at once completes without a trigger."""
    _, tis = run_dag("op_instant")
    assert tis["run"].state == "success"
    assert tis["run"].next_method is None


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_timeout_cancels_the_vendor_run_and_fails(demo, deferrable):
    _, tis = run_dag(f"op_timeout_{deferrable}")
    ti = tis["run"]
    assert ti.state == "failed"
    run_id = xcom(ti, "run_id")
    from airflow_provider_flowruns.core.runs import RunRef

    assert DemoHook().get_status(RunRef(run_id)).vendor_status == "CANCELLED"
    assert demo_stats(demo)["cancels"] == 1


def test_no_wait_returns_right_after_submit(demo, capfd):
    _, tis = run_dag("op_nowait")
    assert tis["run"].state == "success"
    assert tis["watch"].state == "failed"  # the run outlives the sensor's 1 s timeout
    assert "timed out" in capfd.readouterr().out.lower()


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poke"])
def test_sensor_follows_a_run_started_elsewhere(demo, deferrable, capfd):
    ok = DemoHook().start_run("elsewhere", duration=1.5)
    bad = DemoHook().start_run("elsewhere-bad", duration=1.0, outcome="FAILED")
    _, tis = run_dag(f"sensor_{deferrable}", run_conf={"ok": ok.run_id, "bad": bad.run_id})
    assert tis["ok"].state == "success"
    assert tis["bad"].state == "failed"
    assert f"run {bad.run_id} failed (FAILED): step 2 failed: division by zero" in capfd.readouterr().out
    assert DemoHook().get_status(ok).vendor_status == "SUCCEEDED"


def test_templated_parameters_render(demo):
    _, tis = run_dag("op_templated")
    assert tis["run"].state == "success"
    runs = DemoHook().call(
        __import__("airflow_provider_flowruns.core.http", fromlist=["Call"]).Call("GET", "runs")
    )
    assert runs["runs"][0]["name"].startswith("weekly-20")


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
def test_retry_reattaches_to_the_same_vendor_run(demo):
    """Durable: the first try dies after submit (a 403 on its first status check); the retry must
    re-attach to that run, not start a second one."""
    demo.add_faults({"kind": "status", "status": 403, "path": "/runs/run_", "method": "GET", "times": 1})
    _, tis = run_dag("op_durable")
    assert tis["run"].state == "success"
    assert tis["run"].try_number == 2
    assert demo_stats(demo)["runs_created"] == 1


def test_retry_finds_its_live_run_by_name_without_a_state_store(demo):
    """Without a state store (Airflow < 3.3, or a crash before it was written), the deterministic
    name finds the run this task already started, and the task re-attaches instead of submitting."""
    hook = DemoHook()
    existing = hook.start_run("op_byname.run.fixed", duration=3600)
    op = engine_dags["op_byname"].get_task("run")
    assert op._attach_or_submit(hook, {}).run_id == existing.run_id  # context without task_state_store
    assert demo_stats(demo)["runs_created"] == 1


def test_a_finished_run_found_by_name_is_not_adopted(demo):
    """A cleared task whose earlier run already finished gets a new run, not the old result."""
    import time

    hook = DemoHook()
    old = hook.start_run("op_byname.run.fixed", duration=0.2)
    time.sleep(0.5)
    assert hook.get_status(old).vendor_status == "SUCCEEDED"
    _, tis = run_dag("op_byname")
    assert tis["run"].state == "success"
    assert demo_stats(demo)["runs_created"] == 2


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"poll_interval": -5}, "poll_interval"),
        ({"poll_interval": "fast"}, "poll_interval"),
        ({"timeout": 0}, "timeout"),
        ({"hook_params": {"x": object()}}, "hook_params"),
        ({"outcome": "MAYBE"}, "outcome"),
    ],
)
def test_bad_static_input_fails_at_parse_naming_the_parameter(kwargs, param):
    with pytest.raises(FlowRunsConfigError, match=param):
        DemoRunOperator(task_id="bad", **kwargs)


def test_poll_interval_below_floor_is_clamped_with_a_warning(demo, capfd):
    op = DemoRunOperator(task_id="p", poll_interval=0.1)
    assert op.effective_poll_interval() == DemoHook.poll_floor
    assert "below Demo's floor" in capfd.readouterr().out


def test_worker_on_kill_cancels_the_vendor_run(demo):
    op = DemoRunOperator(task_id="k", duration=3600)
    ref = op.hook.start_run("killed", duration=3600)
    op._run_ref = ref  # what execute() records the moment the run exists
    op.on_kill()
    assert DemoHook().get_status(ref).vendor_status == "CANCELLED"
    op_off = DemoRunOperator(task_id="k2", duration=3600, cancel_on_kill=False)
    ref2 = op_off.hook.start_run("kept", duration=3600)
    op_off._run_ref = ref2
    op_off.on_kill()
    assert DemoHook().get_status(ref2).vendor_status in {"QUEUED", "RUNNING"}


def test_deployment_default_poll_interval_from_config(demo, monkeypatch):
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FLOWRUNS_DEMO_POLL_INTERVAL", "7")
    assert DemoRunOperator(task_id="p").effective_poll_interval() == 7
    assert DemoRunSensor(task_id="s", run_id="r").poke_interval == 7
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FLOWRUNS_DEMO_POLL_INTERVAL", "0.01")  # still clamped to the floor
    assert DemoRunOperator(task_id="p2").effective_poll_interval() == DemoHook.poll_floor
