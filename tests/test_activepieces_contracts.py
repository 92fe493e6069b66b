"""Activepieces against its documented examples (tests/contracts/activepieces/), served verbatim by
the uvicorn emulator: the hook, the trigger, the sensor, the operators and the step-outputs transfer
each get the right result by value or an error naming the field. And the transfer is all or
nothing: a try that fails leaves none of its files in the destination, on file:// and on S3."""

from __future__ import annotations

import copy
import json
import os

import pytest
from airflow.sdk import ObjectStoragePath
from conftest import run_dag
from contract_examples import example

from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    RunFailed,
    UnexpectedResponse,
)
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook, NotResumable, RunFilter
from airflow_provider_flowruns.sensors.activepieces import ActivepiecesFlowRunSensor
from airflow_provider_flowruns.testing import activepieces_app as ap
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.transfers.activepieces import ActivepiecesStepOutputsToStorageOperator
from airflow_provider_flowruns.triggers.run import FlowRunTrigger

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 1}
API = "/activepieces/api"
RUN = example("activepieces", "flow_run")
NOT_FOUND = example("activepieces", "error_entity_not_found")
RUN_ID = "abc...21chars"  # the example's own id
PAUSED_MESSAGE = "paused, waiting for input (resume it with ActivepiecesResumeFlowRunOperator)"
FLOW = ap.ap_id("flowContract")


@pytest.fixture(scope="module")
def server():
    with EmulatorProcess(["activepieces"], speed=20) as emu:
        yield emu


@pytest.fixture
def activepieces(server, monkeypatch):
    server.control("POST", "reset")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACTIVEPIECES_DEFAULT",
        json.dumps(
            {
                "conn_type": "activepieces",
                "host": server.url("activepieces", "/api"),
                "password": "activepieces-key",
                "extra": {"project_id": ap.PROJECT_ID},
            }
        ),
    )
    return server


def run_answer(body, status: int = 200, run_id: str = RUN_ID) -> dict:
    return {"method": "GET", "path": f"{API}/v1/flow-runs/{run_id}", "status": status, "body": body}


def webhook_answer(name: str, *, sync: bool = False, **extra) -> dict:
    ex = example("activepieces", name)
    path = f"{API}/v1/webhooks/{FLOW}" + ("/sync" if sync else "")
    return {"method": "POST", "path": path, "status": ex.status, "body": ex.body, **extra}


def edited(**changes) -> dict:
    """The FlowRun example with fields changed (None removes one): an undocumented variant."""
    body = copy.deepcopy(RUN.body)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


async def first_event(run_id: str = RUN_ID, stop_states=()) -> dict:
    trigger = FlowRunTrigger(
        hook_class_path=ActivepiecesHook.class_path(),
        hook_kwargs=ActivepiecesHook(**FAST).hook_kwargs(),
        run_ref=RunRef(run_id).to_dict(),
        schedule=PollSchedule.fixed(5.0, 0.0).to_dict(),
        stop_states=stop_states,
    )
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


# -- the FlowRun example (vendor-apis.md §3.3) ---------------------------------------------------------
def test_flow_run_example_reads_as_paused_waiting_for_input(activepieces):
    """The example is PAUSED on a WEBHOOK and also names a failed step: it is described by its pause
    (before, the message said "failed at step Send email" about a run that had not failed)."""
    activepieces.serve_verbatim(run_answer(RUN.body))
    status = ActivepiecesHook(**FAST).get_status(RunRef(RUN_ID))
    assert (status.state, status.vendor_status, status.message) == (RunState.PAUSED, "PAUSED", PAUSED_MESSAGE)


async def test_trigger_stops_at_the_examples_pause(activepieces):
    activepieces.serve_verbatim(run_answer(RUN.body))
    event = await first_event(stop_states=["PAUSED"])
    assert {k: event[k] for k in ("status", "state", "run_id", "vendor_status", "message")} == {
        "status": "paused",
        "state": "PAUSED",
        "run_id": RUN_ID,
        "vendor_status": "PAUSED",
        "message": PAUSED_MESSAGE,
    }


def test_sensor_on_the_example_succeeds_on_pause_or_keeps_waiting(activepieces):
    activepieces.serve_verbatim(run_answer(RUN.body))
    accepting = ActivepiecesFlowRunSensor(task_id="s", run_id=RUN_ID, on_pause="succeed", deferrable=False)
    assert accepting.poke({}) is True
    assert ActivepiecesFlowRunSensor(task_id="s2", run_id=RUN_ID, deferrable=False).poke({}) is False
    failing = ActivepiecesFlowRunSensor(task_id="s3", run_id=RUN_ID, on_pause="fail", deferrable=False)
    with pytest.raises(
        RunFailed, match=f"Activepieces run {RUN_ID} is paused \\(PAUSED\\) and on_pause='fail'"
    ):
        failing.poke({})


def test_older_schema_failed_step_name_is_read(activepieces):
    """The old "Flow Run Schema" page names the failed step ``failedStepName`` (no ``failedStep``)."""
    older = edited(status="FAILED", failedStep=None, pauseMetadata=None, failedStepName="step_3")
    activepieces.serve_verbatim(run_answer(older))
    status = ActivepiecesHook(**FAST).get_status(RunRef(RUN_ID))
    assert (status.state, status.message) == (RunState.FAILED, "failed at step step_3")
    sensor = ActivepiecesFlowRunSensor(task_id="s", run_id=RUN_ID, deferrable=False)
    with pytest.raises(RunFailed) as info:
        sensor.poke({})
    assert str(info.value) == f"Activepieces run {RUN_ID} failed (FAILED): failed at step step_3"


def test_current_schema_failed_step_is_read_with_its_display_name(activepieces):
    failed = edited(status="FAILED", pauseMetadata=None)
    activepieces.serve_verbatim(run_answer(failed))
    assert ActivepiecesHook(**FAST).get_status(RunRef(RUN_ID)).message == "failed at step Send email (step_3)"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (edited(status=None), "status: Field required"),
        (edited(id=None), "id: Field required"),
        (edited(failedStep={"displayName": "Send email"}), "failedStep.name: Field required"),
        (edited(pauseMetadata={"requestId": "r"}), "pauseMetadata.type: Field required"),
        (edited(steps=["step_1"]), "steps: Input should be a valid dictionary"),
    ],
)
async def test_a_run_missing_a_field_we_read_fails_naming_it(activepieces, body, named):
    """Before, a run without ``status`` read as ``UNKNOWN`` and was waited on until the deadline."""
    activepieces.serve_verbatim(run_answer(body))
    with pytest.raises(UnexpectedResponse) as info:
        ActivepiecesHook(**FAST).get_status(RunRef(RUN_ID))
    assert f"Activepieces run {RUN_ID} status: unrecognised response: {named}" in str(info.value)
    event = await first_event()
    assert event["status"] == "error" and named in event["message"]


def test_resume_of_the_example_posts_to_its_request_and_returns_the_recorded_answer(activepieces):
    recorded = example("activepieces", "resume_recorded")
    activepieces.serve_verbatim(
        run_answer(RUN.body),
        {"method": "POST", "path": f"{API}/v1/flow-runs/{RUN_ID}/waitpoints/...", "body": recorded.body},
    )
    answer = ActivepiecesHook(**FAST).resume_run(RUN_ID, {"approved": True})
    assert (answer.status_code, answer.body) == (200, recorded.body)


def test_resume_answered_expired_fails_with_the_vendors_words(activepieces):
    expired = example("activepieces", "resume_expired")
    activepieces.serve_verbatim(
        run_answer(RUN.body),
        {"method": "POST", "path": f"{API}/v1/flow-runs/{RUN_ID}/waitpoints/...", "body": expired.body},
    )
    with pytest.raises(NotResumable) as info:
        ActivepiecesHook(**FAST).resume_run(RUN_ID, {})
    assert str(info.value) == (
        f"Activepieces refused to resume run {RUN_ID}: This link has expired. "
        "The action may have already been processed."
    )


def test_retry_answered_with_the_example_follows_its_run_id(activepieces):
    activepieces.serve_verbatim(
        {"method": "POST", "path": f"{API}/v1/flow-runs/oldRun/retry", "body": edited(status="QUEUED")}
    )
    assert ActivepiecesHook(**FAST).retry_run("oldRun", "ON_LATEST_VERSION")["id"] == RUN_ID
    activepieces.serve_verbatim(
        {"method": "POST", "path": f"{API}/v1/flow-runs/oldRun2/retry", "body": edited(id=None)}
    )
    with pytest.raises(UnexpectedResponse, match="retry of run oldRun2: unrecognised response: id: Field"):
        ActivepiecesHook(**FAST).retry_run("oldRun2", "FROM_FAILED_STEP")


def test_a_seek_page_of_the_example_is_read_and_a_page_without_data_is_named(activepieces):
    listed = {"method": "GET", "path": f"{API}/v1/flow-runs", "query": {"projectId": ap.PROJECT_ID}}
    page = {"data": [edited(steps=None)], "next": None, "previous": None}
    activepieces.serve_verbatim({**listed, "body": page, "times": 1})
    runs = list(ActivepiecesHook(**FAST).list_runs(RunFilter.build(flow_ids=["..."])))
    assert [(r["id"], r["status"]) for r in runs] == [(RUN_ID, "PAUSED")]
    activepieces.serve_verbatim({**listed, "body": {"items": page["data"]}})
    with pytest.raises(
        UnexpectedResponse, match="flow runs listing: unrecognised response: data: Field required"
    ):
        list(ActivepiecesHook(**FAST).list_runs())


# -- the error body (§3.4) --------------------------------------------------------------------------------
async def test_entity_not_found_example_is_a_clear_404_everywhere(activepieces):
    activepieces.serve_verbatim(run_answer(NOT_FOUND.body, status=404))
    with pytest.raises(FlowRunsApiError) as info:
        ActivepiecesHook(**FAST).get_status(RunRef(RUN_ID))
    err = info.value
    assert (err.status, err.vendor_code, err.message) == (404, "ENTITY_NOT_FOUND", "Flow run not found")
    assert str(err) == f"GET v1/flow-runs/{RUN_ID} failed with HTTP 404: ENTITY_NOT_FOUND: Flow run not found"
    event = await first_event()
    assert event["status"] == "error" and event["message"] == str(err)
    with pytest.raises(FlowRunsApiError, match="ENTITY_NOT_FOUND: Flow run not found"):
        ActivepiecesFlowRunSensor(task_id="s", run_id=RUN_ID, deferrable=False).poke({})


# -- webhook answers (§3.2) ----------------------------------------------------------------------------------
def test_async_webhook_example_is_accepted_with_its_request_id(activepieces):
    activepieces.serve_verbatim(webhook_answer("webhook_async_accepted", headers={"x-webhook-id": "req-1"}))
    answer = ActivepiecesHook(**FAST).trigger_webhook(FLOW, {"a": 1}, marker="m")
    assert (answer.status_code, answer.body, answer.request_id) == (200, {}, "req-1")


def test_sync_webhook_timeout_example_is_a_204_without_a_response(activepieces):
    activepieces.serve_verbatim(webhook_answer("webhook_sync_timeout", sync=True))
    answer = ActivepiecesHook(**FAST).trigger_webhook(FLOW, {"a": 1}, sync=True)
    assert (answer.status_code, answer.body) == (204, None)


@pytest.mark.parametrize(
    ("name", "status", "text"),
    [
        ("webhook_flow_not_found", 410, f"Activepieces flow {FLOW} does not exist (HTTP 410)"),
        ("webhook_flow_disabled", 404, f"Activepieces flow {FLOW} is disabled (HTTP 404)"),
        ("webhook_payload_too_large", 413, "the payload is too large for Activepieces (HTTP 413)"),
        ("webhook_quota_exceeded", 402, "QUOTA_EXCEEDED: metric=tasks"),
    ],
)
def test_webhook_error_examples_fail_clearly(activepieces, name, status, text):
    activepieces.serve_verbatim(webhook_answer(name))
    with pytest.raises(FlowRunsApiError) as info:
        ActivepiecesHook(**FAST).trigger_webhook(FLOW, {"a": 1})
    assert info.value.status == status and text in str(info.value)
    assert activepieces.stats()["vendors"]["activepieces"]["runs_created"] == 0


@pytest.mark.usefixtures("airflow_db")
def test_trigger_operator_fails_on_the_quota_example_without_looking_for_a_run(activepieces, capfd):
    activepieces.serve_verbatim(webhook_answer("webhook_quota_exceeded"))
    ti = run_dag("contract_dags.py", "contract_activepieces_trigger", run_conf={"flow": FLOW})["trigger"]
    assert ti.state == "failed"
    assert "failed with HTTP 402: QUOTA_EXCEEDED: metric=tasks" in capfd.readouterr().out
    assert activepieces.stats()["requests"].get(f"GET {API}/v1/flow-runs", 0) == 0


# -- the step-outputs transfer ---------------------------------------------------------------------------------
def files_under(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_transfer_of_the_example_fails_naming_the_step_without_output(activepieces, tmp_path):
    """The example's ``step_1`` is ``{"...": "..."}``: no ``output``. Before, it was written as a
    guessed ``null`` and the task succeeded; now the task fails naming it and writes nothing."""
    activepieces.serve_verbatim(run_answer(RUN.body))
    op = ActivepiecesStepOutputsToStorageOperator(task_id="save", run_id=RUN_ID, destination=str(tmp_path))
    with pytest.raises(UnexpectedResponse) as info:
        op.execute({})
    assert str(info.value).endswith(
        f"Activepieces run {RUN_ID} step data: unrecognised response: steps.step_1.output: Field required"
    )
    assert files_under(tmp_path) == []


def test_transfer_writes_each_documented_output_and_a_null_one_as_null(activepieces, tmp_path):
    steps = {"trigger": {"output": {"body": {"a": 1}}}, "step_1": {"output": None}, "step_2": {"output": [1]}}
    activepieces.serve_verbatim(run_answer(edited(status="SUCCEEDED", steps=steps)))
    written = ActivepiecesStepOutputsToStorageOperator(
        task_id="save", run_id=RUN_ID, destination=str(tmp_path)
    ).execute({})
    assert [w["uri"].rsplit("/", 1)[-1] for w in written] == ["trigger.json", "step_1.json", "step_2.json"]
    folder = tmp_path / RUN_ID
    assert json.loads((folder / "trigger.json").read_text()) == {"body": {"a": 1}}
    assert (folder / "step_1.json").read_text() == "null" and json.loads(
        (folder / "step_2.json").read_text()
    ) == [1]


def objects_under(prefix: ObjectStoragePath) -> dict[str, bytes]:
    fs = prefix.fs
    fs.invalidate_cache()
    if not fs.exists(prefix.path):
        return {}
    return {p[len(prefix.path) + 1 :]: fs.cat_file(p) for p in fs.find(prefix.path)}


def test_refused_second_of_three_step_files_leaves_nothing_of_the_try(activepieces, destination):
    """overwrite=False refuses the 2nd of 3 files (it exists from an earlier run): the 1st, already
    written and verified, is not left behind, and the earlier file is untouched."""
    steps = {name: {"output": {"step": name}} for name in ("trigger", "step_1", "step_2")}
    activepieces.serve_verbatim(run_answer(edited(status="SUCCEEDED", steps=steps)))
    earlier = destination / RUN_ID / "step_1.json"
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_bytes(b'"from an earlier run"')
    op = ActivepiecesStepOutputsToStorageOperator(
        task_id="save", run_id=RUN_ID, destination=str(destination), overwrite=False
    )
    with pytest.raises(FlowRunsConfigError, match=r"step_1\.json already exists and overwrite=False"):
        op.execute({})
    assert objects_under(destination) == {f"{RUN_ID}/step_1.json": b'"from an earlier run"'}


def test_storage_failure_on_the_third_step_file_leaves_nothing_of_the_try(activepieces, tmp_path):
    """The 3rd file cannot be stored: its folder is deep enough that the 1st and 2nd fit under
    PATH_MAX and the 3rd's long name does not (OSError). The two files staged before it are
    removed, and the same run with a storable third name lands whole. (On S3 a failed try's staged
    objects go the same way: tests/test_storage_s3.py; moto accepts every key, so no write fails
    part-way there, and the refusal test above covers the transfer on S3.)"""
    root = tmp_path / "out"
    folder_len = 4000  # the run's folder; + "/<200-byte name>.json" and its temporary sibling > 4095
    pad = folder_len - len(f"{root}/") - len(f"/{RUN_ID}")
    deep = "/".join(["d" * 200] * (pad // 201)) + "/" + "e" * (pad % 201 - 1)
    assert 3950 <= len(f"{root}/{deep}/{RUN_ID}") <= folder_len
    long_name = "x" * 240  # kept to 200 bytes by the file-name sanitizer
    steps = {"trigger": {"output": 1}, "step_1": {"output": 2}, long_name: {"output": 3}}
    activepieces.serve_verbatim(
        run_answer(edited(status="SUCCEEDED", steps=steps), run_id=RUN_ID) | {"times": 1}
    )
    op = ActivepiecesStepOutputsToStorageOperator(task_id="save", run_id=RUN_ID, destination=f"{root}/{deep}")
    with pytest.raises(OSError, match="File name too long"):
        op.execute({})
    assert files_under(tmp_path) == []
    short = {"trigger": {"output": 1}, "step_1": {"output": 2}, "step_2": {"output": 3}}
    activepieces.serve_verbatim(run_answer(edited(status="SUCCEEDED", steps=short)))
    op.execute({})
    assert files_under(root) == [f"{deep}/{RUN_ID}/{name}.json" for name in ("step_1", "step_2", "trigger")]


# -- the emulator answers in the examples' shape (where it disagreed, the example won) ----------------------------
def test_emulator_not_found_body_is_the_examples_shape(activepieces):
    import httpx

    missing = ap.ap_id("missingRun")
    answer = httpx.get(
        activepieces.url("activepieces", f"/api/v1/flow-runs/{missing}"),
        headers={"authorization": "Bearer activepieces-key"},
    )
    assert answer.status_code == 404
    assert answer.json() == {
        "code": "ENTITY_NOT_FOUND",
        "params": {"entityType": "flow_run", "entityId": missing, "message": "Flow run not found"},
    }


def test_emulator_paused_run_carries_every_field_of_the_example(activepieces):
    hook = ActivepiecesHook(**FAST)
    hook.trigger_webhook(ap.FLOW_APPROVAL, {})
    activepieces.control("POST", "clock", json={"advance": 10})
    (listed,) = hook.list_runs(RunFilter.build(flow_ids=[ap.FLOW_APPROVAL]))
    run = hook.get_run(listed["id"])
    assert run["status"] == "PAUSED"
    assert set(RUN.body) <= set(run), set(RUN.body) - set(run)
    assert set(RUN.body["pauseMetadata"]) <= set(run["pauseMetadata"])
    assert set(RUN.body["failedStep"]) == {"name", "displayName"}


# -- the operators' submit steps on the examples ------------------------------------------------------------------
class _Ti:
    """What the operators use of Airflow's task instance here: its identity and ``xcom_push``."""

    dag_id, task_id, run_id, map_index, try_number = "d", "t", "manual__1", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_trigger_operator_finds_its_run_after_the_async_example(activepieces):
    """Webhook answered ``200 {}`` (the example: no run id); the run is then found by the marker in
    its trigger output: the FlowRun example plus a trigger step, as a listing and a get."""
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator

    op = ActivepiecesTriggerFlowOperator(task_id="t", flow_id=FLOW, payload={"a": 1}, correlation_timeout=5)
    ti = _Ti()
    marker = f"{op.marker_prefix({'ti': ti})}1"
    trigger_step = {"output": {"body": {"a": 1}, "queryParams": {"airflow_run_key": marker}}}
    detail = edited(steps={"trigger": trigger_step, **RUN.body["steps"]})
    activepieces.serve_verbatim(
        webhook_answer("webhook_async_accepted", headers={"x-webhook-id": "req-7"}),
        {
            "method": "GET",
            "path": f"{API}/v1/flow-runs",
            "body": {"data": [edited(steps=None)], "next": None},
        },
        run_answer(detail),
    )
    ref = op.submit(ActivepiecesHook(**FAST), {"ti": ti})
    assert ref.run_id == RUN_ID


def test_resume_operator_on_the_example_pushes_the_recorded_answer(activepieces):
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesResumeFlowRunOperator

    recorded = example("activepieces", "resume_recorded")
    activepieces.serve_verbatim(
        run_answer(RUN.body),
        {"method": "POST", "path": f"{API}/v1/flow-runs/{RUN_ID}/waitpoints/...", "body": recorded.body},
    )
    ti = _Ti()
    op = ActivepiecesResumeFlowRunOperator(
        task_id="t", run_id=RUN_ID, payload={"ok": True}, on_pause="succeed"
    )
    assert op.submit(ActivepiecesHook(**FAST), {"ti": ti}).run_id == RUN_ID
    assert ti.pushed["response"] == {"status_code": 200, "body": recorded.body, "request_id": None}


def test_retry_operator_follows_the_run_the_example_names(activepieces):
    from airflow_provider_flowruns.operators.activepieces import ActivepiecesRetryFlowRunOperator

    activepieces.serve_verbatim(
        {"method": "POST", "path": f"{API}/v1/flow-runs/oldRun/retry", "body": edited(status="QUEUED")}
    )
    ti = _Ti()
    op = ActivepiecesRetryFlowRunOperator(task_id="t", run_id="oldRun", strategy="ON_LATEST_VERSION")
    assert op.submit(ActivepiecesHook(**FAST), {"ti": ti}).run_id == RUN_ID
    assert ti.pushed["retried_run_id"] == "oldRun"
