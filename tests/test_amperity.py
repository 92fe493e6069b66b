"""Amperity end to end against its emulator: headers, auth, start safety, states, stop, limits,
and the operator under the real Airflow (dag.test())."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import TaskStateStore

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.hooks.amperity import AmperityHook, validate_start
from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator
from airflow_provider_flowruns.testing.process import EmulatorProcess

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}


@pytest.fixture(scope="module")
def amperity_server():
    # 10 emulated seconds per real second: a default 20 s run takes 2 s.
    with EmulatorProcess(["amperity"], speed=10) as emu:
        yield emu


def _conn(emu, **extra_fields) -> str:
    extra = {"tenant": "acme", **extra_fields.pop("extra", {})}
    conn = {
        "conn_type": "amperity",
        "host": emu.url("amperity", "/api"),
        "password": "amperity-token",
        "extra": extra,
    }
    conn.update(extra_fields)
    return json.dumps(conn)


@pytest.fixture
def amperity(amperity_server, monkeypatch):
    amperity_server.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW_CONN_AMPERITY_DEFAULT", _conn(amperity_server))
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL", "10")  # the floor; default is 60 s
    return amperity_server


def vendor(emu) -> dict:
    return emu.stats()["vendors"]["amperity"]


def wait_state(hook: AmperityHook, run_id: str, states: set[RunState], limit: float = 30) -> RunState:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        state = hook.get_status(RunRef(run_id)).state
        if state in states:
            return state
        time.sleep(0.3)
    raise AssertionError(f"{run_id} never reached {states}")


# -- validation (no network) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"config_id": "xx-1"}, "config_id"),
        ({"config_id": None}, "config_id"),
        ({"config_id": "cg-1", "run_mode": "partial"}, "run_mode"),
        ({"config_id": "og-1", "run_mode": "full"}, "run_mode"),
        ({"config_id": "cg-1", "range_to": "2026-01-02"}, "range_to needs range_from"),
        ({"config_id": "cg-1", "range_from": "yesterday"}, "range_from"),
        ({"config_id": "cg-1", "range_from": "2026-01-02T00:00:00Z", "range_to": "2026-01-01"}, "range_to"),
    ],
)
def test_bad_start_parameters_fail_at_parse(kwargs, param):
    with pytest.raises(FlowRunsConfigError, match=param):
        AmperityRunWorkflowOperator(task_id="t", **kwargs)


def test_templated_parameters_are_checked_at_execute_not_parse():
    op = AmperityRunWorkflowOperator(task_id="t", config_id="{{ var.value.cg }}", range_from="{{ ts }}")
    assert op.config_id == "{{ var.value.cg }}"
    assert validate_start("cg-1", "refresh", "2026-01-01T00:00:00+02:00", "2026-01-02") == {
        "config_id": "cg-1",
        "run_mode": "refresh",
        "range_from": "2025-12-31T22:00:00Z",
        "range_to": "2026-01-02T00:00:00Z",
    }


def test_connection_without_tenant_names_the_field(amperity, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMPERITY_DEFAULT",
        json.dumps({"conn_type": "amperity", "password": "t", "host": "http://x"}),
    )
    with pytest.raises(FlowRunsConfigError, match="tenant"):
        AmperityHook().get_client()


# -- hook against the emulator ---------------------------------------------------------------------
def test_start_get_list_and_states(amperity):
    hook = AmperityHook(**FAST)
    run = hook.start_workflow(
        "cg-sources", run_mode="refresh", range_from="2026-11-22T00:00:00Z", range_to="2026-11-23T00:00:00Z"
    )
    assert run["id"].startswith("wf-") and run["state"] == "scheduled"
    assert hook.get_status(RunRef(run["id"])).state in {RunState.QUEUED, RunState.RUNNING}
    for _ in range(4):
        hook.start_workflow("og-more")
    listed = list(hook.list_workflows(limit=2))
    assert len(listed) == 5 and len({r["id"] for r in listed}) == 5
    assert [r["id"] for r in hook.list_workflows(type="courier.group/run")] == [run["id"]]
    assert wait_state(hook, run["id"], {RunState.SUCCEEDED}) is RunState.SUCCEEDED


def test_failed_run_reports_failed_tasks_with_attribution(amperity):
    hook = AmperityHook(**FAST)
    run = hook.start_workflow("og-will-fail")
    wait_state(hook, run["id"], {RunState.FAILED})
    status = hook.get_status(RunRef(run["id"]))
    assert status.vendor_status == "failed"
    assert "not found" in status.message and "(customer)" in status.message


def test_stop_goes_through_stopping_to_cancelled(amperity):
    hook = AmperityHook(**FAST)
    run = hook.start_workflow("og-slow")
    stopped = hook.stop_workflow(run["id"])
    assert stopped["state"] in {"stopping", "canceled"}
    assert wait_state(hook, run["id"], {RunState.CANCELLED}) is RunState.CANCELLED
    assert vendor(amperity)["stops"] == 1


def test_a_run_being_stopped_is_not_re_attached(amperity):
    """Clearing or marking failed a deferred task stops its run (trigger on_kill); the task's next
    try finds it ``stopping`` in the state store and starts a new run instead of adopting one that
    is about to end cancelled. A live run is adopted; a finished task's run is not."""
    hook = AmperityHook(**FAST)
    op = AmperityRunWorkflowOperator(task_id="wf", config_id="og-slow")
    context = {"task_state_store": TaskStateStore()}
    first = op._attach_or_submit(hook, context)
    assert op._attach_or_submit(hook, context) == first  # a retry: re-attached
    amperity.control("POST", "clock", json={"speed": 0.01})  # hold the run in "stopping"
    try:
        hook.stop_workflow(first.run_id)
        assert hook.get_status(first).stopping
        second = op._attach_or_submit(hook, context)
    finally:
        amperity.control("POST", "clock", json={"speed": 10})
    assert second != first and vendor(amperity)["runs_created"] == 2
    op._mark_done(context, second)  # the task succeeded with it; only a clear runs it again
    third = op._attach_or_submit(hook, context)
    assert third not in (first, second) and vendor(amperity)["runs_created"] == 3


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_a_try_after_a_clear_while_deferred_stops_the_earlier_run_first(amperity, cancel_on_kill):
    """Cleared (or marked failed) while deferred: Airflow schedules the next try while the earlier
    try's trigger is still being told to stop the run, so the next try may read it live. The stored
    run says it was deferred and never resumed: the new try stops it itself and starts anew, unless
    the task keeps runs alive on kill (``cancel_on_kill=False``), which re-attaches."""
    hook = AmperityHook(**FAST)
    op = AmperityRunWorkflowOperator(task_id="wf", config_id="og-slow", cancel_on_kill=cancel_on_kill)
    context = {"task_state_store": TaskStateStore()}
    first = op._attach_or_submit(hook, context)
    op._remember(context, first, deferred=True)  # what execute() stores before it defers
    second = op._attach_or_submit(hook, context)
    if cancel_on_kill:
        assert second != first and vendor(amperity)["stops"] == 1
        assert hook.get_status(first).state in {
            RunState.RUNNING,
            RunState.CANCELLED,
        }  # stopping, then canceled
        assert vendor(amperity)["runs_created"] == 2
    else:
        assert second == first and vendor(amperity)["stops"] == 0 and vendor(amperity)["runs_created"] == 1


def test_wrong_api_version_is_a_clear_error(amperity, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AMPERITY_DEFAULT", _conn(amperity, extra={"api_version": "1999-01-01"}))
    with pytest.raises(FlowRunsApiError) as info:
        AmperityHook(**FAST).get_status(RunRef("wf-x"))
    err = info.value
    assert err.status == 400 and "version" in err.message.lower() and err.request_id
    assert "amperity-token" not in str(err)


def test_lost_start_answer_is_reconciled_not_repeated(amperity):
    """The run is created but the response is cut: the hook finds that run instead of starting another."""
    amperity.add_faults({"kind": "truncate", "path": "/workflow/runs$", "method": "POST"})
    run = AmperityHook(**FAST).start_workflow("og-lost-answer")
    assert run["id"].startswith("wf-")
    assert vendor(amperity)["runs_created"] == 1


def test_start_answered_with_5xx_is_not_repeated(amperity):
    amperity.add_faults({"kind": "status", "status": 503, "path": "/workflow/runs$", "method": "POST"})
    with pytest.raises(FlowRunsApiError) as info:
        AmperityHook(**FAST).start_workflow("og-once")
    assert info.value.status == 503
    assert vendor(amperity)["runs_created"] == 0
    assert amperity.stats()["faults_injected"] == {"status": 1}


def test_start_is_retried_after_429(amperity):
    amperity.add_faults({"kind": "status", "status": 429, "path": "/workflow/runs$", "method": "POST"})
    AmperityHook(**FAST).start_workflow("og-after-429")
    assert vendor(amperity)["runs_created"] == 1


async def test_many_triggers_stay_under_10_requests_per_second(amperity, cpu_hog):
    """45 status reads at once from one process, with the machine loaded (``cpu_hog``): the
    emulator counts every arrival in a sliding one-second window and refuses the 11th."""
    hook = AmperityHook(**FAST)
    run_id = hook.start_workflow("og-slow")["id"]
    hooks = [AmperityHook(**FAST) for _ in range(45)]
    statuses = await asyncio.gather(*(h.aget_status(RunRef(run_id)) for h in hooks))
    for h in hooks:
        await h.aclose()
    assert {s.run_id for s in statuses} == {run_id}
    stats = vendor(amperity)
    assert stats["rate_limited"] == 0
    assert stats["max_rps_seen"] <= 10


async def test_a_stalled_event_loop_does_not_bunch_requests_past_the_limit(amperity, cpu_hog):
    """A triggerer's loop blocked for 0.5 s (a slow callback, a loaded machine) while 45 status
    reads wait their turn: the reads whose slots passed during the stall must not all leave at once
    when it ends. With slots booked ahead and spent at booking, they did (5 at once, then 1 per
    1/9 s: 13 arrivals in one second, 429s)."""
    hook = AmperityHook(**FAST)
    run_id = hook.start_workflow("og-slow")["id"]
    hooks = [AmperityHook(**FAST) for _ in range(45)]

    async def stall_the_loop() -> None:
        for _ in range(2):
            await asyncio.sleep(1.0)
            time.sleep(0.5)  # blocks the event loop, as a CPU-bound callback would

    results = await asyncio.gather(stall_the_loop(), *(h.aget_status(RunRef(run_id)) for h in hooks))
    for h in hooks:
        await h.aclose()
    assert {s.run_id for s in results[1:]} == {run_id}
    stats = vendor(amperity)
    assert stats["status_polls"] == 45
    assert stats["rate_limited"] == 0
    assert stats["max_rps_seen"] <= 10


def test_oauth_client_credentials(amperity, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMPERITY_DEFAULT",
        _conn(
            amperity,
            login="amperity-client",
            password="amperity-secret",
            extra={"auth": "client_credentials"},
        ),
    )
    hook = AmperityHook(**FAST)
    run = hook.start_workflow("og-oauth")
    assert hook.get_status(RunRef(run["id"])).run_id == run["id"]
    assert vendor(amperity)["tokens_minted"] == 1


# -- operator under the real Airflow ----------------------------------------------------------------
def _run(dag_id: str, module: str, **kwargs):
    import runpy
    from pathlib import Path

    path = Path(__file__).parent / "dags" / module
    dag = runpy.run_path(str(path))[dag_id]
    dr = dag.test(**kwargs)
    return {ti.task_id: ti for ti in dr.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_example_dag_refresh_then_full(amperity):
    tis = _run("example_amperity_nightly", "examples.py")
    assert {t: ti.state for t, ti in tis.items()} == {"refresh_sources": "success", "full_run": "success"}
    stats = vendor(amperity)
    assert stats["runs_created"] == 2


@pytest.mark.usefixtures("airflow_db")
def test_failing_run_fails_the_task_with_the_vendor_error(amperity, capfd):
    tis = _run("amperity_failing", "amperity_dags.py")
    assert tis["run"].state == "failed"
    assert "Table 'Unified_Coalesced' not found" in capfd.readouterr().out


@pytest.mark.usefixtures("airflow_db")
def test_timeout_stops_the_run(amperity):
    tis = _run("amperity_timeout", "amperity_dags.py")
    assert tis["run"].state == "failed"
    assert vendor(amperity)["stops"] == 1


@pytest.mark.usefixtures("airflow_db")
def test_sync_wait_without_triggerer(amperity):
    tis = _run("amperity_sync", "amperity_dags.py")
    assert tis["run"].state == "success"


@pytest.mark.usefixtures("airflow_db")
def test_sensor_deferred_rescheduled_and_failing(amperity):
    hook = AmperityHook(**FAST)
    ok, bad = hook.start_workflow("og-watched")["id"], hook.start_workflow("og-watched-fail")["id"]
    tis = _run("amperity_sensors", "amperity_dags.py", run_conf={"ok": ok, "bad": bad})
    assert {t: ti.state for t, ti in tis.items()} == {
        "deferred": "success",
        "rescheduled": "success",
        "failing": "failed",
    }
    assert vendor(amperity)["runs_created"] == 2  # sensors never start runs
