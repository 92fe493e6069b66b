"""Amperity against its own documented examples (tests/contracts/amperity/), served verbatim by the
uvicorn emulator: every hook call, the operator, the sensor and the trigger get the right result by
value or an error naming the field - never a success built from a shape we could not read."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from conftest import run_dag, xcom
from contract_examples import example

from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    RunCancelled,
    UnexpectedResponse,
)
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.hooks.amperity import AmperityHook, validate_start
from airflow_provider_flowruns.sensors.amperity import AmperityWorkflowRunSensor
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.triggers.run import FlowRunTrigger

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 1}
API = "/amperity/api"
START = example("amperity", "start_response")
VERBOSE = example("amperity", "workflow_verbose")
ERROR = example("amperity", "error_response")
TOKEN = example("amperity", "token_response")
START_ID = "wf-123456A-78901-2bcd3e"
VERBOSE_ID = "wf-20240603-12345-MNabc"
#: What the verbose example says about why it ended: its own error, then its failed task's.
VERBOSE_MESSAGE = "Workflow manually stopped; Sending treatment ... to destination - S3: ... (customer)"


@pytest.fixture(scope="module")
def server():
    with EmulatorProcess(["amperity"], speed=10) as emu:
        yield emu


def _conn(emu, **fields) -> str:
    extra = {"tenant": "socktown", **fields.pop("extra", {})}
    return json.dumps(
        {
            "conn_type": "amperity",
            "host": emu.url("amperity", "/api"),
            "password": "amperity-token",
            "extra": extra,
            **fields,
        }
    )


@pytest.fixture
def amperity(server, monkeypatch):
    server.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW_CONN_AMPERITY_DEFAULT", _conn(server))
    return server


def status_of(workflow_id: str, body, status: int = 200) -> dict:
    return {"method": "GET", "path": f"{API}/workflow/runs/{workflow_id}", "status": status, "body": body}


def start_answer(body, status: int = 201) -> dict:
    return {"method": "POST", "path": f"{API}/workflow/runs", "status": status, "body": body}


async def first_event(run_id: str) -> dict:
    trigger = FlowRunTrigger(
        hook_class_path=AmperityHook.class_path(),
        hook_kwargs=AmperityHook(**FAST).hook_kwargs(),
        run_ref=RunRef(run_id).to_dict(),
        schedule=PollSchedule.fixed(10.0, 0.0).to_dict(),
    )
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def without(body: dict, *path: str | int) -> dict:
    """The example with one field removed (``path`` into it): a shape the vendor did not document."""
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


# -- the start answer (seed 002) ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201], ids=["seed-200", "spec-201"])
def test_start_example_yields_its_run_id_and_reads_as_queued(amperity, status):
    amperity.serve_verbatim(start_answer(START.body, status), status_of(START_ID, START.body))
    hook = AmperityHook(**FAST)
    run = hook.start_workflow("cg-2efo5X8vo", run_mode="source")
    assert run["id"] == START_ID and run["state"] == "scheduled"
    status_now = hook.get_status(RunRef(START_ID))
    assert (status_now.state, status_now.vendor_status, status_now.message) == (
        RunState.QUEUED,
        "scheduled",
        None,
    )


@pytest.mark.usefixtures("airflow_db")
def test_operator_returns_the_start_examples_run_id(amperity):
    amperity.serve_verbatim(start_answer(START.body))
    ti = run_dag("contract_dags.py", "contract_amperity_start")["run"]
    assert ti.state == "success"
    assert xcom(ti) == START_ID and xcom(ti, "run_id") == START_ID


def test_start_answer_without_an_id_fails_naming_the_field(amperity):
    amperity.serve_verbatim(start_answer(without(START.body, "id")))
    with pytest.raises(UnexpectedResponse) as info:
        AmperityHook(**FAST).start_workflow("cg-2efo5X8vo")
    assert str(info.value).endswith(
        "Amperity start of cg-2efo5X8vo: unrecognised response: id: Field required"
    )
    assert vendor_runs(amperity) == 0


def test_start_request_example_is_the_body_the_hook_sends(amperity):
    request = example("amperity", "start_request")
    assert validate_start("cg-2efo5X8vo", "source") == request.body
    run = AmperityHook(**FAST).start_workflow(**request.body)  # the emulator's own route takes it
    assert run["run_mode"] == "source" and run["type"] == "courier.group/run"


# -- the verbose Workflow (vendor-apis.md §2.3) -----------------------------------------------------------
def test_verbose_example_reads_as_cancelled_with_its_messages(amperity):
    amperity.serve_verbatim(status_of(VERBOSE_ID, VERBOSE.body))
    status = AmperityHook(**FAST).get_status(RunRef(VERBOSE_ID))
    assert (status.state, status.vendor_status, status.stopping) == (RunState.CANCELLED, "canceled", False)
    assert status.message == VERBOSE_MESSAGE


async def test_trigger_ends_cancelled_on_the_verbose_example(amperity):
    amperity.serve_verbatim(status_of(VERBOSE_ID, VERBOSE.body))
    event = await first_event(VERBOSE_ID)
    assert {k: event[k] for k in ("status", "state", "run_id", "vendor_status", "message")} == {
        "status": "cancelled",
        "state": "CANCELLED",
        "run_id": VERBOSE_ID,
        "vendor_status": "canceled",
        "message": VERBOSE_MESSAGE,
    }


def test_sensor_fails_cancelled_on_the_verbose_example(amperity):
    amperity.serve_verbatim(status_of(VERBOSE_ID, VERBOSE.body))
    sensor = AmperityWorkflowRunSensor(task_id="watch", run_id=VERBOSE_ID, deferrable=False)
    with pytest.raises(RunCancelled) as info:
        sensor.poke({})
    assert str(info.value) == f"Amperity run {VERBOSE_ID} was cancelled (canceled): {VERBOSE_MESSAGE}"


@pytest.mark.usefixtures("airflow_db")
def test_operator_wait_ends_cancelled_with_the_examples_message(amperity, capfd):
    """Start answered by seed 002's example, the status read by the verbose one: the task fails as
    cancelled, saying "Workflow manually stopped"."""
    amperity.serve_verbatim(start_answer(START.body), status_of(START_ID, VERBOSE.body))
    ti = run_dag("contract_dags.py", "contract_amperity_wait")["run"]
    assert ti.state == "failed" and xcom(ti, "run_id") == START_ID
    assert f"Amperity run {START_ID} was cancelled (canceled): {VERBOSE_MESSAGE}" in capfd.readouterr().out


def test_stop_answered_with_the_verbose_example(amperity):
    amperity.serve_verbatim(
        {**status_of(VERBOSE_ID, VERBOSE.body), "method": "POST"}
        | {"path": f"{API}/workflow/runs/{VERBOSE_ID}/stop"}
    )
    stopped = AmperityHook(**FAST).stop_workflow(VERBOSE_ID)
    assert stopped["state"] == "canceled" and stopped["error"]["message"] == "Workflow manually stopped"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("state",), "state: Field required"),
        (("id",), "id: Field required"),
        (("task_instances", 0, "state"), "task_instances[0].state: Field required"),
        (("task_instances", 0, "id"), "task_instances[0].id: Field required"),
    ],
)
async def test_a_workflow_missing_a_field_we_read_fails_naming_it(amperity, path, named):
    """Before, a Workflow without ``state`` read as ``unknown`` and was waited on until the deadline."""
    amperity.serve_verbatim(status_of(VERBOSE_ID, without(VERBOSE.body, *path)))
    with pytest.raises(UnexpectedResponse) as info:
        AmperityHook(**FAST).get_status(RunRef(VERBOSE_ID))
    assert str(info.value).endswith(f"Amperity workflow {VERBOSE_ID} status: unrecognised response: {named}")
    event = await first_event(VERBOSE_ID)
    assert event["status"] == "error" and event["message"].endswith(named)


def test_an_error_that_is_not_an_object_fails_naming_it(amperity):
    amperity.serve_verbatim(status_of(VERBOSE_ID, {**VERBOSE.body, "error": "stopped"}))
    with pytest.raises(UnexpectedResponse, match=r"status: unrecognised response: error: Input should be"):
        AmperityHook(**FAST).get_status(RunRef(VERBOSE_ID))


# -- list pages (§2.4): built from the examples, not documented bodies themselves -------------------------
def test_a_list_page_of_the_examples_is_read_and_one_missing_created_at_is_named(amperity):
    page = {"data": [START.body, VERBOSE.body]}
    amperity.serve_verbatim({"method": "GET", "path": f"{API}/workflow/runs", "body": page, "times": 1})
    assert [r["id"] for r in AmperityHook(**FAST).list_workflows()] == [START_ID, VERBOSE_ID]
    broken = {"data": [START.body, without(VERBOSE.body, "created_at")]}
    amperity.serve_verbatim({"method": "GET", "path": f"{API}/workflow/runs", "body": broken})
    with pytest.raises(
        UnexpectedResponse, match=r"listing: unrecognised response: data\[1\]\.created_at: Field"
    ):
        list(AmperityHook(**FAST).list_workflows())


# -- the error body (§2.5) -------------------------------------------------------------------------------
def test_error_example_keeps_message_and_request_id(amperity):
    amperity.serve_verbatim(status_of("wf-x", ERROR.body, status=400))
    with pytest.raises(FlowRunsApiError) as info:
        AmperityHook(**FAST).get_status(RunRef("wf-x"))
    err = info.value
    assert (err.status, err.vendor_code, err.request_id) == (
        400,
        None,
        "1ab23456-c78d-9012-3456-78efg9hi01j2",
    )
    assert str(err) == (
        "GET workflow/runs/wf-x failed with HTTP 400: Error updating database: Cannot find campaign named "
        "'CampaignName'; request id 1ab23456-c78d-9012-3456-78efg9hi01j2"
    )


async def test_error_example_ends_the_trigger_and_fails_the_start_with_the_request_id(amperity):
    amperity.serve_verbatim(status_of("wf-x", ERROR.body, status=400), start_answer(ERROR.body, status=400))
    event = await first_event("wf-x")
    assert (
        event["status"] == "error" and "request id 1ab23456-c78d-9012-3456-78efg9hi01j2" in event["message"]
    )
    with pytest.raises(FlowRunsApiError) as info:
        AmperityHook(**FAST).start_workflow("cc-CampaignName")
    assert info.value.request_id == "1ab23456-c78d-9012-3456-78efg9hi01j2" and info.value.status == 400
    sensor = AmperityWorkflowRunSensor(task_id="watch", run_id="wf-x", deferrable=False)
    with pytest.raises(FlowRunsApiError, match="request id 1ab23456-c78d-9012-3456-78efg9hi01j2"):
        sensor.poke({})


def test_an_error_body_with_only_a_trace_id_reports_the_trace_id(amperity):
    body = without(ERROR.body, "request_id")
    amperity.serve_verbatim(status_of("wf-x", body, status=503))
    with pytest.raises(FlowRunsApiError) as info:
        AmperityHook(**FAST).get_status(RunRef("wf-x"))
    assert info.value.request_id == "1a2b3456789cd0ef1g234hijklm5nopq" and info.value.status == 503


# -- the token answer (§2.2) -----------------------------------------------------------------------------
def _oauth(amperity, monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMPERITY_DEFAULT",
        _conn(
            amperity,
            login=f"client-{uuid.uuid4().hex[:8]}",  # its own token cache entry
            password="ClientSecret",
            extra={"auth": "client_credentials"},
        ),
    )


def test_token_example_is_sent_as_the_bearer_token_and_kept_for_its_lifetime(amperity, monkeypatch):
    _oauth(amperity, monkeypatch)
    amperity.serve_verbatim(
        {"method": "POST", "path": f"{API}/v0/oauth2/token", "body": TOKEN.body},
        {
            **status_of(START_ID, START.body),
            "request_headers": {"authorization": "Bearer N88Du6L1xsmA5DRZrtxSGYmbHP"},
        },
    )
    hook = AmperityHook(**FAST)
    assert hook.get_status(RunRef(START_ID)).vendor_status == "scheduled"
    assert AmperityHook(**FAST).get_status(RunRef(START_ID)).vendor_status == "scheduled"
    assert amperity.stats()["requests"][f"POST {API}/v0/oauth2/token"] == 1  # 3600 s: minted once


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (without(TOKEN.body, "access_token"), "access_token: Field required"),
        ({**TOKEN.body, "access_token": ""}, "access_token: String should have at least 1 character"),
        (
            {**TOKEN.body, "expires_in": "soon"},
            "expires_in: Input should be a valid number, unable to parse string as a number",
        ),
        ({**TOKEN.body, "token_type": "mac"}, "token_type: 'mac' is not a bearer token"),
    ],
)
def test_a_token_answer_we_cannot_use_fails_naming_the_field(amperity, monkeypatch, body, named):
    _oauth(amperity, monkeypatch)
    amperity.serve_verbatim({"method": "POST", "path": f"{API}/v0/oauth2/token", "body": body})
    with pytest.raises(UnexpectedResponse) as info:
        AmperityHook(**FAST).get_status(RunRef(START_ID))
    assert str(info.value).endswith(f"Amperity token endpoint: unrecognised response: {named}")
    assert "ClientSecret" not in str(info.value)


def test_the_api_key_token_request_is_never_needed(amperity):
    """§2.2's ``{"expires-at": ...}`` mints tokens for an API key from an issuer token; the provider
    takes the UI-issued token (or OAuth) directly, so that endpoint is never called."""
    assert example("amperity", "api_key_token_request").body == {"expires-at": "<date>"}
    AmperityHook(**FAST).start_workflow("og-direct")
    assert not [k for k in amperity.stats()["requests"] if "api-keys" in k]


# -- the emulator answers in the examples' shape (where it disagreed, the example won) -----------------------
def vendor_runs(emu) -> int:
    return emu.stats()["vendors"]["amperity"].get("runs_created", 0)


def test_emulator_start_and_stop_answers_carry_every_field_of_the_examples(amperity):
    hook = AmperityHook(**FAST)
    started = hook.start_workflow("cg-shape", run_mode="source")
    assert set(START.body) <= set(started), set(START.body) - set(started)
    stopped = hook.stop_workflow(started["id"])
    amperity.control("POST", "clock", json={"advance": 5})
    final = hook.get_workflow(started["id"])
    assert final["state"] == "canceled" and set(VERBOSE.body) <= set(final), set(VERBOSE.body) - set(final)
    assert final["error"] == VERBOSE.body["error"] and stopped["id"] == started["id"]


def test_emulator_task_instances_carry_every_field_of_the_example(amperity):
    hook = AmperityHook(**FAST)
    run = hook.start_workflow("og-shape-fail")
    amperity.control("POST", "clock", json={"advance": 30})
    (*_, failed) = hook.get_workflow(run["id"])["task_instances"]
    (documented,) = VERBOSE.body["task_instances"]
    assert set(documented) <= set(failed), set(documented) - set(failed)
    assert set(failed["error"]) == set(documented["error"])


def test_emulator_error_body_has_the_examples_fields(amperity):
    with pytest.raises(FlowRunsApiError):
        AmperityHook(**FAST).get_status(RunRef("wf-missing"))
    import httpx

    answer = httpx.get(
        amperity.url("amperity", "/api/workflow/runs/wf-missing"),
        headers={
            "amperity-tenant": "t",
            "api-version": "2024-04-01",
            "authorization": "Bearer amperity-token",
        },
    )
    assert answer.status_code == 404 and set(answer.json()) == set(ERROR.body)
