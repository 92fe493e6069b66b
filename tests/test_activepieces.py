"""Activepieces against its emulator (a uvicorn process on 127.0.0.1): lists and pages, webhooks
without credentials, correlation, retry strategies, resume, bulk operations, retention, errors,
and every operator under the real Airflow (dag.test())."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import ObjectStoragePath
from conftest import TaskStateStore, xcom

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, NotSupported
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.hooks.activepieces import (
    ActivepiecesHook,
    CorrelationTimeout,
    NotResumable,
    RunFilter,
    describe,
    marker_of,
    utcnow,
)
from airflow_provider_flowruns.operators.activepieces import (
    ActivepiecesRetryFlowRunOperator,
    ActivepiecesTriggerFlowOperator,
)
from airflow_provider_flowruns.operators.activepieces_bulk import (
    ActivepiecesArchiveFlowRunsOperator,
    ActivepiecesBulkRetryFlowRunsOperator,
    ActivepiecesCancelFlowRunsOperator,
)
from airflow_provider_flowruns.testing import activepieces_app as ap
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.transfers.activepieces import step_files
from airflow_provider_flowruns.version_compat import AIRFLOW_V_3_3_PLUS

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
KEY = "activepieces-key"
RUN_ROUTE = r"^/activepieces/api/v1/flow-runs/[0-9A-Za-z]{21}$"


@pytest.fixture(scope="module")
def ap_server():
    # 20 emulated seconds per real second: a 5 s run takes a quarter second, the 60 s delay 3 s.
    with EmulatorProcess(["activepieces"], speed=20) as emu:
        yield emu


@pytest.fixture
def activepieces(ap_server, monkeypatch):
    ap_server.control("POST", "reset")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACTIVEPIECES_DEFAULT",
        json.dumps(
            {
                "conn_type": "activepieces",
                "host": ap_server.url("activepieces", "/api"),
                "password": KEY,
                "extra": {"project_id": ap.PROJECT_ID},
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ACTIVEPIECES_POLL_INTERVAL", "5")  # the floor
    return ap_server


def vendor(emu) -> dict:
    return emu.stats()["vendors"]["activepieces"]


def trigger(hook: ActivepiecesHook, flow_id: str, payload=None, marker: str | None = None) -> str:
    """Trigger through the hook and correlate, as the operator does; returns the run id."""
    marker = marker or f"test/{time.monotonic_ns()}"
    since = utcnow()
    hook.trigger_webhook(flow_id, payload if payload is not None else {}, marker=marker)
    run = hook.find_run_by_marker(flow_id, lambda m: m == marker, since=since, timeout=30, poll_interval=0.2)
    return str(run["id"])


def wait_status(hook: ActivepiecesHook, run_id: str, statuses: set[str], limit: float = 60) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = hook.get_status(RunRef(run_id)).vendor_status
        if status in statuses:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{run_id} never reached {statuses}")


# -- no network ----------------------------------------------------------------------------------------
def test_every_reference_status_is_mapped():
    mapped = {s: ActivepiecesHook.status_map(s) for s in ap.STATUSES}
    assert len(mapped) == 11
    assert {s for s, state in mapped.items() if state is RunState.FAILED} == {
        "FAILED",
        "TIMEOUT",
        "QUOTA_EXCEEDED",
        "MEMORY_LIMIT_EXCEEDED",
        "INTERNAL_ERROR",
        "LOG_SIZE_EXCEEDED",
    }
    assert mapped["CANCELED"] is RunState.CANCELLED and mapped["PAUSED"] is RunState.PAUSED
    assert ActivepiecesHook.status_map("STOPPED") is RunState.CANCELLED  # the seed's older name


def test_failed_step_is_read_from_current_and_older_schemas():
    current = {
        "status": "FAILED",
        "failedStep": {"name": "step_3", "displayName": "Send email"},
        "steps": {"step_3": {"errorMessage": "SMTP refused"}},
    }
    assert describe(current) == "failed at step Send email (step_3): SMTP refused"
    assert describe({"status": "FAILED", "failedStepName": "step_9"}) == "failed at step step_9"
    assert describe({"status": "TIMEOUT", "terminationReason": "flow timed out"}) == "flow timed out"
    assert "resumes" not in (describe({"status": "PAUSED", "pauseMetadata": {"type": "WEBHOOK"}}) or "")
    assert marker_of({"steps": None}) is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"statuses": ["STOPPED"]}, "CANCELED, with one L"),
        ({"created_after": "last week"}, "created_after"),
        ({"created_after": "2026-02-01", "created_before": "2026-01-01"}, "must be before"),
        ({"flow_ids": {"a": 1}}, "flow_ids"),
        ({"flow_run_ids": "[1, 2"}, "flow_run_ids"),
    ],
)
def test_bad_filters_name_the_parameter(kwargs, fragment):
    with pytest.raises(FlowRunsConfigError, match=fragment):
        RunFilter.build(**kwargs)


def test_rendered_lists_are_read_as_lists():
    built = RunFilter.build(flow_run_ids="['a', 'b']", statuses="FAILED, timeout", flow_ids='["f"]')
    assert (
        built.flow_run_ids == ("a", "b")
        and built.statuses == ("FAILED", "TIMEOUT")
        and built.flow_ids == ("f",)
    )


@pytest.mark.parametrize(
    ("factory", "fragment"),
    [
        (lambda: ActivepiecesTriggerFlowOperator(task_id="t", flow_id=""), "flow_id"),
        (lambda: ActivepiecesTriggerFlowOperator(task_id="t", flow_id="f", on_pause="later"), "on_pause"),
        (
            lambda: ActivepiecesTriggerFlowOperator(task_id="t", flow_id="f", correlation_timeout=0),
            "correlation_timeout",
        ),
        (
            lambda: ActivepiecesTriggerFlowOperator(task_id="t", flow_id="f", fail_parent_on_failure=True),
            "parent",
        ),
        (lambda: ActivepiecesRetryFlowRunOperator(task_id="t", run_id="r", strategy="AGAIN"), "strategy"),
        (
            lambda: ActivepiecesCancelFlowRunsOperator(task_id="t", flow_ids=["f"], statuses=["RUNNING"]),
            "RUNNING",
        ),
        (
            lambda: ActivepiecesArchiveFlowRunsOperator(task_id="t", statuses=["FAILED"]),
            "every run of the project",
        ),
    ],
)
def test_bad_operator_input_fails_at_parse(factory, fragment):
    with pytest.raises(FlowRunsConfigError, match=fragment):
        factory()


def test_step_files_are_sanitized_and_never_collide(tmp_path):
    folder = ObjectStoragePath(f"file://{tmp_path}/run")
    paths = step_files(folder, ["trigger", "../../etc/passwd", "passwd", "a\x00b", ".hidden", "PASSWD"])
    names = [p.name for p in paths.values()]
    assert names == [
        "trigger.json",
        "passwd.json",
        "passwd-2.json",
        "a_b.json",
        "hidden.json",
        "PASSWD-3.json",
    ]
    assert all(str(p).startswith(str(folder) + "/") for p in paths.values())


# -- hook against the emulator -------------------------------------------------------------------------
def test_list_follows_the_cursor_through_every_page_with_filters(activepieces):
    hook = ActivepiecesHook(**FAST)
    since = utcnow()
    for _ in range(5):
        hook.trigger_webhook(ap.FLOW_OK, {})
    hook.trigger_webhook(ap.FLOW_BACKLOG, {})
    listed = list(
        hook.list_runs(
            RunFilter.build(flow_ids=[ap.FLOW_OK], created_after=since - timedelta(minutes=5)), limit=2
        )
    )
    assert len(listed) == 5 and len({r["id"] for r in listed}) == 5 and all("steps" not in r for r in listed)
    assert len(list(hook.list_runs(RunFilter.build(flow_ids=ap.FLOW_OK), limit=2, max_pages=2))) == 4
    (queued,) = hook.list_runs(RunFilter.build(statuses=["QUEUED"], tags=None, flow_ids=[ap.FLOW_BACKLOG]))
    assert hook.get_run(queued["id"])["steps"] is None  # not started: no step data, no crash
    assert [r["id"] for r in hook.list_runs(RunFilter.build(flow_run_ids=[queued["id"]]))] == [queued["id"]]
    assert len(list(hook.list_runs(RunFilter.build(tags=["orders"])))) == 5
    with pytest.raises(FlowRunsConfigError, match="limit"):
        next(hook.list_runs(limit=101))


def test_webhook_carries_payload_marker_and_nested_headers_but_never_the_key(activepieces):
    hook = ActivepiecesHook(**FAST)
    parent = ap.ap_id("parentRun")
    since = utcnow()
    answer = hook.trigger_webhook(
        ap.FLOW_OK, {"x": 1}, marker="m-1", parent_run_id=parent, fail_parent_on_failure=True
    )
    assert answer.status_code == 200 and answer.body == {} and answer.request_id
    run = hook.find_run_by_marker(
        ap.FLOW_OK, lambda m: m == "m-1", since=since, timeout=30, poll_interval=0.2
    )
    output = run["steps"]["trigger"]["output"]
    assert output["body"] == {"x": 1} and marker_of(run) == "m-1"
    assert "authorization" not in output["headers"] and KEY not in json.dumps(run)
    assert (run["parentRunId"], run["failParentOnFailure"]) == (parent, True)
    assert vendor(activepieces)["public_calls_with_credentials"] == 0


@pytest.mark.parametrize(
    ("flow_id", "status", "fragment"),
    [
        (ap.ap_id("noSuchFlow"), 410, "does not exist"),
        (ap.FLOW_DISABLED, 404, "is disabled"),
        (ap.FLOW_QUOTA, 402, "QUOTA_EXCEEDED: metric=tasks"),
    ],
)
def test_webhook_errors_are_clear_and_start_nothing(activepieces, flow_id, status, fragment):
    with pytest.raises(FlowRunsApiError) as info:
        ActivepiecesHook(**FAST).trigger_webhook(flow_id, {"a": 1})
    assert info.value.status == status and fragment in str(info.value)
    assert vendor(activepieces)["runs_created"] == 0


def test_webhook_5xx_is_not_resent(activepieces):
    activepieces.add_faults({"kind": "status", "status": 503, "path": "/webhooks/", "method": "POST"})
    with pytest.raises(FlowRunsApiError) as info:
        ActivepiecesHook(**FAST).trigger_webhook(ap.FLOW_OK, {})
    assert info.value.status == 503 and vendor(activepieces)["webhooks"] == 0


def test_correlation_is_bounded_and_says_what_it_could_not_match(activepieces):
    hook = ActivepiecesHook(**FAST)
    since = utcnow()
    hook.trigger_webhook(ap.FLOW_BACKLOG, {}, marker="mine")
    with pytest.raises(CorrelationTimeout, match=r"1 run\(s\) of the flow are still QUEUED"):
        hook.find_run_by_marker(
            ap.FLOW_BACKLOG, lambda m: m == "mine", since=since, timeout=1, poll_interval=0.3
        )
    other = trigger(hook, ap.FLOW_OK, marker="theirs")
    with pytest.raises(CorrelationTimeout, match=r"1 run\(s\) checked"):
        hook.find_run_by_marker(
            ap.FLOW_OK, lambda m: m == "mine", since=since, timeout=0.5, poll_interval=0.2
        )
    requests = activepieces.stats()["requests"]
    # Queued runs are not fetched; a checked run is fetched once however many rounds there are.
    assert (
        requests["GET /activepieces/api/v1/flow-runs/{run_id}"] == 2
    )  # `other`: once by trigger(), once here
    assert other


def test_cancel_applies_to_paused_and_queued_runs_only(activepieces):
    hook = ActivepiecesHook(**FAST)
    paused = trigger(hook, ap.FLOW_APPROVAL)
    slow = trigger(hook, ap.FLOW_SLOW)
    wait_status(hook, paused, {"PAUSED"})
    hook.cancel(RunRef(paused))
    assert hook.get_status(RunRef(paused)).state is RunState.CANCELLED
    with pytest.raises(NotSupported, match="RUNNING and keeps going"):
        hook.cancel(RunRef(slow))


def test_resume_falls_back_to_the_legacy_route_and_refuses_what_it_cannot_resume(activepieces):
    hook = ActivepiecesHook(**FAST)
    legacy = trigger(hook, ap.FLOW_LEGACY_APPROVAL)
    delay = trigger(hook, ap.FLOW_DELAY)
    wait_status(hook, legacy, {"PAUSED"})
    answer = hook.resume_run(legacy, {"approved": True})
    assert answer.body == {"message": ap.RECORDED}
    assert vendor(activepieces)["legacy_resumes"] == 1 and vendor(activepieces)["resumes"] == 0
    assert wait_status(hook, legacy, {"SUCCEEDED"}) == "SUCCEEDED"
    with pytest.raises(NotResumable, match="SUCCEEDED, not PAUSED"):
        hook.resume_run(legacy, {})
    wait_status(hook, delay, {"PAUSED"})
    with pytest.raises(NotResumable, match="delay"):
        hook.resume_run(delay, {})
    assert vendor(activepieces)["public_calls_with_credentials"] == 0


def test_retry_outside_retention_is_a_clear_410(activepieces):
    hook = ActivepiecesHook(**FAST)
    run_id = trigger(hook, ap.FLOW_FLAKY)
    wait_status(hook, run_id, {"FAILED"})
    activepieces.control("POST", "clock", json={"advance": ap.RETENTION_SECONDS + 60})
    assert hook.get_run(run_id)["steps"] is None
    with pytest.raises(FlowRunsApiError) as info:
        hook.retry_run(run_id, "FROM_FAILED_STEP")
    err = info.value
    assert err.status == 410 and err.vendor_code == "FLOW_RUN_RETRY_OUTSIDE_RETENTION"
    assert "outside the retention window" in str(err) and "AP_EXECUTION_DATA_RETENTION_DAYS" in str(err)


def test_vendor_errors_keep_code_and_message_and_never_the_key(activepieces):
    with pytest.raises(FlowRunsApiError) as info:
        ActivepiecesHook(**FAST).get_status(RunRef(ap.ap_id("missing")))
    err = info.value
    assert (err.status, err.vendor_code) == (404, "ENTITY_NOT_FOUND") and "not found" in err.message
    assert KEY not in str(err)


# -- operators under the real Airflow ----------------------------------------------------------------
def _run(dag_id: str, module: str = "activepieces_dags.py", **kwargs):
    import runpy
    from pathlib import Path

    dag = runpy.run_path(str(Path(__file__).parent / "dags" / module))[dag_id]
    dr = dag.test(**kwargs)
    return {ti.task_id: ti for ti in dr.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_trigger_watch_and_save_step_outputs(activepieces, tmp_path):
    out = tmp_path / "out"
    tis = _run("activepieces_trigger", run_conf={"out": str(out)})
    assert {t: ti.state for t, ti in tis.items()} == {
        "order": "success",
        "trigger": "success",
        "watch": "success",
        "save": "success",
    }
    run_id = xcom(tis["trigger"])
    hook = ActivepiecesHook()
    run = hook.get_run(run_id)
    ti = tis["trigger"]
    assert marker_of(run) == f"{ti.dag_id}/trigger/{ti.run_id}/-1/1"
    output = run["steps"]["trigger"]["output"]
    assert output["body"]["order"] == {"order_id": 42, "items": ["a", "b"]}  # the upstream XCom
    assert output["headers"]["x-source"] == "airflow" and "ap-parent-run-id" not in output["headers"]
    assert xcom(ti, "run_details")["status"] == "SUCCEEDED"
    assert xcom(ti, "run_url").endswith(f"/projects/{ap.PROJECT_ID}/runs/{run_id}")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [f"{run_id}/step_1.json", f"{run_id}/step_2.json", f"{run_id}/trigger.json"]
    assert json.loads((out / run_id / "trigger.json").read_text())["body"]["order"]["order_id"] == 42
    stats = vendor(activepieces)
    assert stats["runs_created"] == 1 and stats["public_calls_with_credentials"] == 0


@pytest.mark.usefixtures("airflow_db")
def test_sync_trigger_pushes_the_flows_response(activepieces):
    tis = _run("activepieces_sync")
    ti = tis["trigger"]
    assert ti.state == "success"
    response = xcom(ti, "response")
    assert response["status_code"] == 200 and response["body"]["received"] == {"qty": 3}
    assert response["body"]["runId"] == xcom(ti) == xcom(ti, "run_id")


@pytest.mark.usefixtures("airflow_db")
def test_failing_run_fails_the_task_with_the_failed_step_and_its_error(activepieces, capfd):
    tis = _run("activepieces_failing")
    assert tis["trigger"].state == "failed"
    out = capfd.readouterr().out
    assert "failed at step Send to CRM (step_2): TypeError: Cannot read properties of undefined" in out
    assert xcom(tis["trigger"], "run_details")["failed_step"] == "step_2"


@pytest.mark.usefixtures("airflow_db")
def test_pause_can_fail_the_task_or_be_waited_through(activepieces):
    tis = _run("activepieces_pauses")
    assert tis["fail_on_pause"].state == "failed"
    assert xcom(tis["fail_on_pause"], "run_details")["pause"]["type"] == "WEBHOOK"
    assert tis["wait_through_delay"].state == "success"
    assert xcom(tis["wait_through_delay"], "run_details")["status"] == "SUCCEEDED"


@pytest.mark.usefixtures("airflow_db")
def test_pause_returns_then_the_resume_task_answers_and_waits(activepieces):
    tis = _run("activepieces_approve", run_conf={"approver": "ops"})
    assert {t: ti.state for t, ti in tis.items()} == {"ask": "success", "answer": "success"}
    run_id = xcom(tis["ask"])
    assert xcom(tis["ask"], "run_details")["pause"]["waitpointId"]
    run = ActivepiecesHook().get_run(run_id)
    assert run["status"] == "SUCCEEDED"
    assert run["steps"]["step_2"]["output"]["body"] == {"approved": True, "by": "ops"}
    assert xcom(tis["answer"], "response")["body"] == {"message": ap.RECORDED}
    assert vendor(activepieces)["resumes"] == 1 and vendor(activepieces)["public_calls_with_credentials"] == 0


@pytest.mark.usefixtures("airflow_db")
def test_retry_strategies_follow_the_right_run(activepieces):
    hook = ActivepiecesHook(**FAST)
    flaky, broken, broken_too = (trigger(hook, f) for f in (ap.FLOW_FLAKY, ap.FLOW_BROKEN, ap.FLOW_BROKEN))
    for run_id in (flaky, broken, broken_too):
        wait_status(hook, run_id, {"FAILED"})
    tis = _run("activepieces_retry", run_conf={"flaky": flaky, "broken": broken, "broken_too": broken_too})
    assert {t: ti.state for t, ti in tis.items()} == {
        "flaky_same_id": "success",
        "broken_latest": "success",
        "broken_again": "failed",
    }
    assert xcom(tis["flaky_same_id"]) == flaky
    new_id = xcom(tis["broken_latest"])
    assert new_id != broken and xcom(tis["broken_latest"], "retried_run_id") == broken
    assert (
        hook.get_run(new_id)["steps"]["trigger"]["output"]
        == hook.get_run(broken)["steps"]["trigger"]["output"]
    )
    assert hook.get_status(RunRef(broken_too)).vendor_status == "FAILED"


@pytest.mark.usefixtures("airflow_db")
def test_bulk_cancel_says_what_it_skipped_then_retry_and_archive(activepieces):
    hook = ActivepiecesHook(**FAST)
    slow, paused = trigger(hook, ap.FLOW_SLOW), trigger(hook, ap.FLOW_APPROVAL)
    done = trigger(hook, ap.FLOW_OK)
    failed = [trigger(hook, ap.FLOW_FLAKY) for _ in range(3)]
    queued = (
        hook.trigger_webhook(ap.FLOW_BACKLOG, {})
        and next(hook.list_runs(RunFilter.build(flow_ids=[ap.FLOW_BACKLOG])))["id"]
    )
    wait_status(hook, paused, {"PAUSED"})
    for run_id in [done, *failed]:
        wait_status(hook, run_id, {"SUCCEEDED", "FAILED"})
    missing = ap.ap_id("missingRun")
    tis = _run(
        "activepieces_bulk",
        run_conf={
            "cancel": [slow, paused, queued, done, missing],
            "flows": [ap.FLOW_FLAKY],
            "keep": [failed[0]],
            "archive": [done],
        },
    )
    assert {t: ti.state for t, ti in tis.items()} == {
        "cancel": "success",
        "retry": "success",
        "archive": "success",
    }
    cancelled = xcom(tis["cancel"])
    assert cancelled["cancelled"] == sorted([paused, queued])
    skipped = {s["id"]: s for s in cancelled["skipped"]}
    assert set(skipped) == {slow, done, missing}
    assert skipped[slow]["status"] == "RUNNING" and "only PAUSED or QUEUED" in skipped[slow]["reason"]
    assert (
        "already finished (SUCCEEDED)" in skipped[done]["reason"]
        and "not found" in skipped[missing]["reason"]
    )
    retried = xcom(tis["retry"])
    assert sorted(r["id"] for r in retried) == sorted(failed[1:])  # FROM_FAILED_STEP keeps the ids
    assert hook.get_status(RunRef(failed[0])).vendor_status == "FAILED"
    assert xcom(tis["archive"]) == [done]
    assert hook.get_run(done)["archivedAt"]


def test_bulk_retry_answers_a_retry_from_the_store_and_a_clear_anew(activepieces):
    """Bulk retry is not idempotent. A try that dies after the call went through must not retry the
    runs again (its next try returns the stored answer), but clearing the task after it succeeded
    asks for a new bulk retry, which the stored answer must not swallow."""
    hook = ActivepiecesHook(**FAST)
    failed = [trigger(hook, ap.FLOW_BROKEN) for _ in range(2)]  # fails on every attempt
    for run_id in failed:
        wait_status(hook, run_id, {"FAILED"})
    op = ActivepiecesBulkRetryFlowRunsOperator(task_id="retry", flow_run_ids=failed)
    context = {"task_state_store": TaskStateStore()}
    first = op.execute(context)
    assert sorted(r["id"] for r in first) == sorted(failed) and vendor(activepieces)["retries"] == 2
    # The try died before it succeeded (no post_execute): the next try answers from the store.
    assert op.execute(context) == first and vendor(activepieces)["retries"] == 2
    op.post_execute(context, first)  # this try succeeded
    for run_id in failed:
        wait_status(hook, run_id, {"FAILED"})
    again = op.execute(context)  # the user cleared the task
    assert sorted(r["id"] for r in again) == sorted(failed) and vendor(activepieces)["retries"] == 4
    assert op.execute(context) == again  # and that clear's answer is stored in turn


@pytest.mark.usefixtures("airflow_db")
def test_sensor_fails_on_a_failed_run_and_may_accept_a_pause(activepieces, capfd):
    hook = ActivepiecesHook(**FAST)
    bad, paused = trigger(hook, ap.FLOW_BROKEN), trigger(hook, ap.FLOW_APPROVAL)
    tis = _run("activepieces_sensor_failing", run_conf={"run": bad, "paused": paused})
    assert {t: ti.state for t, ti in tis.items()} == {"failing": "failed", "paused_ok": "success"}
    # failed for the vendor's reason: its failed step and error text, not a crash
    log = capfd.readouterr().out
    assert f"run {bad} failed (FAILED)" in log
    assert "TypeError: Cannot read properties of undefined (reading 'email')" in log
    assert vendor(activepieces)["runs_created"] == 2  # sensors never start runs


@pytest.mark.usefixtures("airflow_db")
def test_timeout_cancels_the_paused_run(activepieces):
    tis = _run("activepieces_timeout")
    assert tis["trigger"].state == "failed"
    run_id = xcom(tis["trigger"], "run_id")
    assert ActivepiecesHook().get_status(RunRef(run_id)).vendor_status == "CANCELED"
    assert vendor(activepieces)["cancelled"] == 1


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
@pytest.mark.usefixtures("airflow_db")
def test_retried_task_reattaches_instead_of_triggering_again(activepieces):
    """The first try dies after its run was found (a 403 on the status check that follows); the
    retry must follow that run, not call the webhook a second time. Correlation reads the run once
    (queued runs are skipped), so the harmless delay fault takes that read and the 403 the next."""
    activepieces.add_faults(
        {"kind": "delay", "delay": 0, "path": RUN_ROUTE, "method": "GET"},
        {"kind": "status", "status": 403, "path": RUN_ROUTE, "method": "GET"},
    )
    tis = _run("activepieces_durable")
    assert tis["trigger"].state == "success" and tis["trigger"].try_number == 2
    assert activepieces.stats()["faults_injected"] == {"delay": 1, "status": 1}
    assert vendor(activepieces)["webhooks"] == 1


def test_retry_without_a_state_store_finds_its_live_run_by_marker(activepieces):
    """Airflow < 3.3 (or a crash before the state store was written): try 2 finds try 1's run."""
    op = ActivepiecesTriggerFlowOperator(
        task_id="trigger", flow_id=ap.FLOW_APPROVAL, correlation_poll_interval=0.2
    )
    ti = SimpleNamespace(dag_id="d", task_id="trigger", run_id="manual__1", map_index=-1, try_number=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(start_date=utcnow())}
    hook = ActivepiecesHook(**FAST)
    first = op.submit(hook, context)
    ti.try_number = 2
    assert op._attach_or_submit(hook, context).run_id == first.run_id
    assert vendor(activepieces)["webhooks"] == 1
    ti.try_number = 1
    assert op.find_existing(hook, context) is None  # a first try never searches


@pytest.mark.usefixtures("airflow_db")
def test_example_dag_asks_resumes_and_retries(activepieces, monkeypatch):
    hook = ActivepiecesHook(**FAST)
    failed = trigger(hook, ap.FLOW_FLAKY)
    wait_status(hook, failed, {"FAILED"})
    tis = _run("example_activepieces_approval", "examples.py")
    assert all(ti.state == "success" for ti in tis.values()), {t: ti.state for t, ti in tis.items()}
    run_id = xcom(tis["request_approval"])
    run = hook.get_run(run_id)
    assert (
        run["status"] == "SUCCEEDED" and run["steps"]["trigger"]["output"]["body"]["expense"]["amount"] == 120
    )
    assert [r["id"] for r in xcom(tis["retry_failed_runs"])] == [failed]
    assert wait_status(hook, failed, {"SUCCEEDED"}) == "SUCCEEDED"
