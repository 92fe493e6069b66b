"""The Activepieces emulator on its own, in-process: the contract the provider's Activepieces tests
rely on.

Time only moves when a test calls ``advance`` (the emulated clock runs at a negligible speed), so
checks right at a boundary are exact whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airflow_provider_flowruns.testing import activepieces_app as ap
from airflow_provider_flowruns.testing.server import EmulatorServer

AUTH = {"Authorization": "Bearer activepieces-key"}
RUN_ID = re.compile(r"[0-9A-Za-z]{21}")


class Api:
    def __init__(self, server: EmulatorServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client
        vendor = server.emulators["activepieces"]
        assert isinstance(vendor, ap.ActivepiecesEmulator)
        self.vendor = vendor

    async def trigger(self, flow_id: str, body: Any = None, **params: str) -> str:
        """Call the webhook and return the id of the run it created (the answer has none)."""
        before = set(self.vendor.runs)
        response = await self.client.post(f"/v1/webhooks/{flow_id}", json=body, params=params)
        assert response.status_code == 200 and response.json() == {}, response.text
        assert RUN_ID.fullmatch(response.headers["x-webhook-id"])
        (run_id,) = set(self.vendor.runs) - before
        return run_id

    async def run(self, run_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/flow-runs/{run_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def list(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            "/v1/flow-runs", params={"projectId": ap.PROJECT_ID, **params}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json={"projectId": ap.PROJECT_ID, **body}, headers=AUTH)

    def advance(self, seconds: float) -> None:
        self.server.clock.advance(seconds)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = EmulatorServer(["activepieces"])
    server.clock.set_speed(1e-9)  # frozen; tests move it with advance()
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emu/activepieces/api") as client:
        yield Api(server, client)


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "params"} and body["code"] == code
    assert fragment in body["params"]["message"]


def assert_fastify(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert (
        body["statusCode"] == 400 and body["code"] == "FST_ERR_VALIDATION" and body["error"] == "Bad Request"
    )
    assert fragment in body["message"]


def test_seeded_ids_have_activepieces_length():
    assert all(RUN_ID.fullmatch(i) for i in [*ap.FLOWS, ap.PROJECT_ID])


# -- auth and errors -----------------------------------------------------------------------------------
async def test_flow_run_routes_need_the_key_and_the_project(api: Api) -> None:
    assert_error(
        await api.client.get("/v1/flow-runs", params={"projectId": ap.PROJECT_ID}),
        401,
        "INVALID_BEARER_TOKEN",
    )
    wrong = await api.client.get(
        "/v1/flow-runs", params={"projectId": ap.PROJECT_ID}, headers={"Authorization": "Bearer nope"}
    )
    assert_error(wrong, 401, "INVALID_API_KEY")
    other = await api.client.get("/v1/flow-runs", params={"projectId": ap.ap_id("other")}, headers=AUTH)
    assert_error(other, 403, "PERMISSION_DENIED")
    assert_fastify(await api.client.get("/v1/flow-runs", headers=AUTH), "projectId")


async def test_unknown_run_and_route(api: Api) -> None:
    assert_error(
        await api.client.get(f"/v1/flow-runs/{ap.ap_id('nope')}", headers=AUTH), 404, "ENTITY_NOT_FOUND"
    )
    response = await api.client.get("/v1/flows", headers=AUTH)
    assert response.status_code == 404 and response.json()["message"] == "Route GET:/api/v1/flows not found"


# -- webhooks --------------------------------------------------------------------------------------------
async def test_async_webhook_queues_a_run_whose_trigger_output_is_the_request(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_OK, {"order": 7}, airflow_run_key="k-1")
    queued = await api.run(run_id)
    assert queued["status"] == "QUEUED" and queued["steps"] is None and queued["startTime"] is None
    api.advance(1.0)
    running = await api.run(run_id)
    assert running["status"] == "RUNNING"
    output = running["steps"]["trigger"]["output"]
    assert output["body"] == {"order": 7} and output["queryParams"] == {"airflow_run_key": "k-1"}
    assert output["method"] == "POST" and output["headers"]["content-type"] == "application/json"
    api.advance(4.0)
    done = await api.run(run_id)
    assert done["status"] == "SUCCEEDED" and done["finishTime"] and done["tags"] == ["orders"]
    assert [s["status"] for s in done["steps"].values()] == ["SUCCEEDED"] * 3
    assert api.vendor.stats()["public_calls_with_credentials"] == 0


async def test_webhook_counts_calls_that_carried_credentials(api: Api) -> None:
    await api.client.post(f"/v1/webhooks/{ap.FLOW_OK}", json={}, headers=AUTH)
    assert api.vendor.stats()["public_calls_with_credentials"] == 1


async def test_nested_run_headers(api: Api) -> None:
    before = set(api.vendor.runs)
    parent = ap.ap_id("parent")
    await api.client.post(
        f"/v1/webhooks/{ap.FLOW_OK}",
        json={},
        headers={"ap-parent-run-id": parent, "ap-fail-parent-on-failure": "true"},
    )
    (run_id,) = set(api.vendor.runs) - before
    run = await api.run(run_id)
    assert (run["parentRunId"], run["failParentOnFailure"]) == (parent, True)


@pytest.mark.parametrize(
    ("flow_id", "status", "body"),
    [
        (ap.ap_id("unknownFlow"), 410, {}),
        (ap.FLOW_DISABLED, 404, {}),
        (ap.FLOW_QUOTA, 402, {"code": "QUOTA_EXCEEDED", "params": {"metric": "tasks"}}),
    ],
)
async def test_webhook_errors(api: Api, flow_id: str, status: int, body: dict) -> None:
    response = await api.client.post(f"/v1/webhooks/{flow_id}", json={"a": 1})
    assert (response.status_code, response.json()) == (status, body)
    assert api.vendor.stats()["runs_created"] == 0


async def test_oversized_payload_is_413(api: Api) -> None:
    response = await api.client.post(f"/v1/webhooks/{ap.FLOW_OK}", content=b"x" * (ap.MAX_PAYLOAD_BYTES + 1))
    assert (response.status_code, response.json()) == (413, {"message": "Payload too large"})


async def _sync(api: Api, path: str, advance: float, **kwargs: Any) -> httpx.Response:
    """A sync call waits on the emulated clock: start it, move time, collect the answer."""
    call = asyncio.create_task(api.client.post(path, **kwargs))
    await asyncio.sleep(0.1)
    assert not call.done()
    api.advance(advance)
    return await asyncio.wait_for(call, 10)


async def test_sync_webhook_returns_the_flows_response(api: Api) -> None:
    response = await _sync(api, f"/v1/webhooks/{ap.FLOW_RESPONDS}/sync", 6.0, json={"qty": 3})
    assert response.status_code == 200 and RUN_ID.fullmatch(response.headers["x-webhook-id"])
    body = response.json()
    assert body["ok"] is True and body["received"] == {"qty": 3} and body["runId"] in api.vendor.runs


async def test_sync_webhook_times_out_with_204_after_30_seconds(api: Api) -> None:
    response = await _sync(api, f"/v1/webhooks/{ap.FLOW_BACKLOG}/sync", ap.WEBHOOK_TIMEOUT + 1, json={})
    assert response.status_code == 204 and response.content == b""
    (run,) = api.vendor.runs.values()
    assert run.status(api.server.clock.now()) == "QUEUED"  # the run goes on regardless


# -- pauses and resume -----------------------------------------------------------------------------------
async def test_approval_pauses_and_resumes_through_its_waitpoint(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_APPROVAL, {"amount": 120})
    api.advance(5.0)
    paused = await api.run(run_id)
    meta = paused["pauseMetadata"]
    assert paused["status"] == "PAUSED" and meta["type"] == "WEBHOOK" and meta["requestId"]
    assert paused["steps"]["step_2"]["status"] == "PAUSED" and "step_3" not in paused["steps"]
    wrong = await api.client.post(f"/v1/flow-runs/{run_id}/waitpoints/{ap.ap_id('x')}", json={})
    assert_error(wrong, 404, "ENTITY_NOT_FOUND", "Waitpoint not found")
    assert wrong.json()["params"]["entityType"] == "waitpoint"
    resumed = await api.client.post(
        f"/v1/flow-runs/{run_id}/waitpoints/{meta['waitpointId']}", json={"approved": True}
    )
    assert resumed.json() == {"message": ap.RECORDED}
    assert (await api.run(run_id))["status"] == "QUEUED"
    api.advance(5.0)
    done = await api.run(run_id)
    assert done["status"] == "SUCCEEDED" and done["pauseMetadata"] is None
    assert done["steps"]["step_2"]["output"]["body"] == {"approved": True}
    again = await api.client.post(f"/v1/flow-runs/{run_id}/waitpoints/{meta['waitpointId']}", json={})
    assert again.json() == {"message": ap.EXPIRED}
    assert api.vendor.stats()["resumes"] == 1


async def test_legacy_pause_has_no_waitpoint_and_resumes_through_requests(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_LEGACY_APPROVAL, {})
    api.advance(5.0)
    meta = (await api.run(run_id))["pauseMetadata"]
    assert "waitpointId" not in meta
    refused = await api.client.post(f"/v1/flow-runs/{run_id}/waitpoints/{meta['requestId']}", json={})
    assert refused.status_code == 404
    # requestId is not validated by Activepieces: the unguessable run id is the access control.
    ok = await api.client.post(f"/v1/flow-runs/{run_id}/requests/anything", json={"approved": False})
    assert ok.json() == {"message": ap.RECORDED}
    assert api.vendor.stats()["legacy_resumes"] == 1


async def test_delay_pause_ends_by_itself(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_DELAY, {})
    api.advance(5.0)
    paused = await api.run(run_id)
    assert paused["status"] == "PAUSED" and paused["pauseMetadata"]["type"] == "DELAY"
    assert paused["pauseMetadata"]["resumeDateTime"].endswith("Z")
    legacy = await api.client.post(f"/v1/flow-runs/{run_id}/requests/x", json={})
    assert legacy.json() == {"message": ap.EXPIRED}
    api.advance(ap.DELAY_SECONDS + 1)
    assert (await api.run(run_id))["status"] == "SUCCEEDED"


async def test_slow_run_hits_the_flow_timeout(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_SLOW, {})
    api.advance(1.0 + ap.FLOW_TIMEOUT - 1)
    assert (await api.run(run_id))["status"] == "RUNNING"
    api.advance(2)
    assert (await api.run(run_id))["status"] == "TIMEOUT"


# -- retry -------------------------------------------------------------------------------------------------
async def test_failed_run_names_its_failed_step(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_FLAKY, {})
    api.advance(6.0)
    run = await api.run(run_id)
    assert run["status"] == "FAILED"
    assert run["failedStep"] == {"name": "step_2", "displayName": "Send to CRM"}
    assert run["steps"]["step_2"]["errorMessage"] == "CRM answered 503 Service Unavailable"


async def test_from_failed_step_keeps_the_id_on_latest_version_makes_a_new_one(api: Api) -> None:
    flaky, broken = await api.trigger(ap.FLOW_FLAKY, {"n": 1}), await api.trigger(ap.FLOW_BROKEN, {"n": 2})
    api.advance(6.0)
    same = await api.post(f"/v1/flow-runs/{flaky}/retry", {"strategy": "FROM_FAILED_STEP"})
    assert same.json()["id"] == flaky and same.json()["status"] == "QUEUED"
    again = await api.post(f"/v1/flow-runs/{broken}/retry", {"strategy": "FROM_FAILED_STEP"})
    latest = await api.post(f"/v1/flow-runs/{broken}/retry", {"strategy": "ON_LATEST_VERSION"})
    assert again.json()["id"] == broken
    assert latest.status_code == 409  # the same run is live again: retry it once it ends
    api.advance(5.0)
    assert (await api.run(flaky))["status"] == "SUCCEEDED"
    assert (await api.run(broken))["status"] == "FAILED"  # same version, same bug
    fresh = (await api.post(f"/v1/flow-runs/{broken}/retry", {"strategy": "ON_LATEST_VERSION"})).json()
    assert fresh["id"] != broken and fresh["flowVersionId"] != (await api.run(broken))["flowVersionId"]
    api.advance(6.0)
    new_run = await api.run(fresh["id"])
    assert new_run["status"] == "SUCCEEDED"
    assert new_run["steps"]["trigger"]["output"]["body"] == {"n": 2}  # the old trigger payload


async def test_retry_errors(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_FLAKY, {})
    assert_fastify(await api.post(f"/v1/flow-runs/{run_id}/retry", {"strategy": "AGAIN"}), "strategy")
    assert_error(
        await api.post(f"/v1/flow-runs/{run_id}/retry", {"strategy": "FROM_FAILED_STEP"}), 409, "VALIDATION"
    )
    assert_error(
        await api.post(f"/v1/flow-runs/{ap.ap_id('gone')}/retry", {"strategy": "FROM_FAILED_STEP"}),
        404,
        "ENTITY_NOT_FOUND",
    )


async def test_retention_purges_step_data_and_refuses_retries(api: Api) -> None:
    run_id = await api.trigger(ap.FLOW_FLAKY, {})
    api.advance(ap.RETENTION_SECONDS + 10)
    run = await api.run(run_id)
    assert run["status"] == "FAILED" and run["steps"] is None
    response = await api.post(f"/v1/flow-runs/{run_id}/retry", {"strategy": "FROM_FAILED_STEP"})
    assert_error(response, 410, "FLOW_RUN_RETRY_OUTSIDE_RETENTION", "retention")


# -- list ---------------------------------------------------------------------------------------------------
async def test_list_pages_newest_first_through_the_cursor(api: Api) -> None:
    ids = []
    for _ in range(5):
        ids.append(await api.trigger(ap.FLOW_OK, {}))
        api.advance(0.01)
    first = await api.list(limit=2)
    assert [r["id"] for r in first["data"]] == ids[::-1][:2] and first["previous"] is None
    assert all("steps" not in r for r in first["data"])
    await api.trigger(ap.FLOW_OK, {})  # a new run does not shift later pages
    second = await api.list(limit=2, cursor=first["next"])
    third = await api.list(limit=2, cursor=second["next"])
    assert [r["id"] for r in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["next"] is None and second["previous"]
    assert len((await api.list())["data"]) == 6  # default limit 10


async def test_list_filters(api: Api) -> None:
    ok = await api.trigger(ap.FLOW_OK, {})
    api.advance(10.0)
    flaky = await api.trigger(ap.FLOW_FLAKY, {})
    paused = await api.trigger(ap.FLOW_APPROVAL, {})
    api.advance(6.0)
    cut = ap.iso(api.server.clock.now())
    api.advance(1.0)
    queued = await api.trigger(ap.FLOW_BACKLOG, {})

    async def ids(**params: Any) -> set[str]:
        return {r["id"] for r in (await api.list(**params))["data"]}

    assert await ids(flowId=[ap.FLOW_OK, ap.FLOW_FLAKY]) == {ok, flaky}
    assert await ids(status=["FAILED", "PAUSED"]) == {flaky, paused}
    assert await ids(tags="orders") == {ok}
    assert await ids(failedStepName="step_2") == {flaky}
    assert await ids(createdAfter=cut) == {queued}
    assert await ids(createdBefore=cut) == {ok, flaky, paused}
    assert await ids(flowRunIds=[ok, queued]) == {ok, queued}
    assert await ids(**{"status[]": "QUEUED"}) == {queued}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "STOPPED"}, "status"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
        ({"cursor": "!!"}, "cursor"),
    ],
)
async def test_list_rejects_bad_parameters(api: Api, params: dict[str, Any], fragment: str) -> None:
    response = await api.client.get(
        "/v1/flow-runs", params={"projectId": ap.PROJECT_ID, **params}, headers=AUTH
    )
    assert_fastify(response, fragment)


# -- bulk ---------------------------------------------------------------------------------------------------
async def test_bulk_cancel_takes_paused_and_queued_runs_only(api: Api) -> None:
    slow = await api.trigger(ap.FLOW_SLOW, {})
    paused = await api.trigger(ap.FLOW_APPROVAL, {})
    api.advance(6.0)
    queued = await api.trigger(ap.FLOW_BACKLOG, {})
    response = await api.post("/v1/flow-runs/cancel", {"flowRunIds": [slow, paused, queued]})
    assert sorted(r["id"] for r in response.json()) == sorted([paused, queued])
    assert {(await api.run(i))["status"] for i in (paused, queued)} == {"CANCELED"}
    assert (await api.run(slow))["status"] == "RUNNING"
    assert (await api.run(paused))["steps"]["step_2"]["status"] == "PAUSED"  # as it was when cancelled
    assert_fastify(await api.post("/v1/flow-runs/cancel", {"status": ["RUNNING"]}), "status")
    assert api.vendor.stats()["cancelled"] == 2


async def test_bulk_cancel_by_filter_honours_exclusions(api: Api) -> None:
    a, b, c = [await api.trigger(ap.FLOW_BACKLOG, {}) for _ in range(3)]
    response = await api.post(
        "/v1/flow-runs/cancel", {"flowId": [ap.FLOW_BACKLOG], "status": ["QUEUED"], "excludeFlowRunIds": [b]}
    )
    assert sorted(r["id"] for r in response.json()) == sorted([a, c])
    assert (await api.run(b))["status"] == "QUEUED"


async def test_bulk_retry_and_archive(api: Api) -> None:
    failed = [await api.trigger(ap.FLOW_FLAKY, {}) for _ in range(3)]
    ok = await api.trigger(ap.FLOW_OK, {})
    api.advance(6.0)
    response = await api.post(
        "/v1/flow-runs/retry",
        {"strategy": "ON_LATEST_VERSION", "status": ["FAILED"], "excludeFlowRunIds": [failed[0]]},
    )
    fresh = response.json()
    assert len(fresh) == 2 and not {r["id"] for r in fresh} & set(failed)
    assert_fastify(await api.post("/v1/flow-runs/retry", {"status": ["FAILED"]}), "strategy")
    archived = await api.post("/v1/flow-runs/archive", {"flowRunIds": [ok, failed[0]]})
    assert sorted(r["id"] for r in archived.json()) == sorted([ok, failed[0]])
    assert all(r["archivedAt"] for r in archived.json())
    visible = {r["id"] for r in (await api.list())["data"]}
    assert ok not in visible and failed[1] in visible
    assert ok in {r["id"] for r in (await api.list(includeArchived="true"))["data"]}


async def test_stats_start_at_zero_and_reset_clears_everything(api: Api) -> None:
    assert api.vendor.stats() == {**dict.fromkeys(ap.COUNTERS, 0), "runs": 0}
    await api.trigger(ap.FLOW_OK, {})
    api.vendor.reset()
    assert api.vendor.stats()["runs"] == 0 and api.vendor.stats()["webhooks"] == 0
