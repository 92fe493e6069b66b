"""The Habu (LiveRamp Clean Room) emulator on its own, in-process: the contract the provider's Habu
client relies on.

Time only moves when a test calls ``advance`` (the emulated clock runs at a negligible speed), so
status checks right at a boundary are exact whatever the machine's speed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_flowruns.testing import habu_app
from airflow_provider_flowruns.testing.habu_app import (
    AWKWARD_NOTES,
    HOSTILE_OUTPUTS,
    STREAM_CHUNK,
    HabuEmulator,
    big_file_chunks,
    file_bytes,
)
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.testing.server import EmulatorServer

CR = "/cleanrooms/cr-acme"
NODE = "6f1c1b7e-0001-4000-8000-00000000000"
MATCH, REACH, OVERLAP = f"{NODE}1", f"{NODE}2", f"{NODE}3"
DATES = {"START_DATE": "2025-01-01", "END_DATE": "2025-01-31"}
BASIC = "Basic " + base64.b64encode(b"habu-client:habu-secret").decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FLOW_RUN_KEYS = {
    "id",
    "name",
    "status",
    "submittedAt",
    "executedAt",
    "completedAt",
    "flowRunParameters",
    "runMessage",
}
QUESTION_RUN_KEYS = {
    "id",
    "name",
    "status",
    "submittedAt",
    "executedAt",
    "completedAt",
    "parameters",
    "partitionParameters",
    "runMetadata",
    "failureReason",
    "isRetryable",
    "runMessage",
    "questionVersion",
}
FR_ID = re.compile(r"fr-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
QR_ID = re.compile(r"qr-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


class Api:
    """An httpx client on the in-process app plus the knobs tests turn: the clock and vendor state."""

    def __init__(self, server: EmulatorServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client
        vendor = server.emulators["habu"]
        assert isinstance(vendor, HabuEmulator)
        self.vendor = vendor
        self.auth: dict[str, str] = {}

    async def mint(self, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/oauth/token",
            content="grant_type=client_credentials",
            headers={**FORM, "Authorization": BASIC, **headers},
        )

    async def login(self) -> str:
        response = await self.mint()
        assert response.status_code == 200, response.text
        token = str(response.json()["accessToken"])
        self.auth = {"Authorization": f"Bearer {token}"}
        return token

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth)

    async def post(self, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return await self.client.post(path, json=body, params=params, headers=self.auth)

    async def ok(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def create(self, flow: str = "flow-weekly", **body: Any) -> dict[str, Any]:
        payload = {"name": "weekly", "nodes": [{"nodeIdentifier": MATCH, "parameters": DATES}], **body}
        response = await self.post(f"{CR}/cleanroom-flows/{flow}/cleanroom-flow-runs", payload)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.ok(f"{CR}/cleanroom-flow-runs/{run_id}"))

    async def status(self, run_id: str) -> str:
        return str((await self.ok(f"{CR}/cleanroom-flow-runs/{run_id}/status"))["status"])

    async def nodes(self, run_id: str) -> dict[str, str]:
        nodes = await self.ok(f"{CR}/cleanroom-flow-runs/{run_id}/output-nodes")
        return {n["node"]["label"]: n["runStatus"] for n in nodes}

    async def ask(self, crq: str = "crq-reach", **body: Any) -> httpx.Response:
        payload = {"name": "reach", "parameters": dict(DATES), **body}
        return await self.post(f"/cleanroom-questions/{crq}/create-run", payload)

    async def question_run(self, crq: str = "crq-reach", **body: Any) -> dict[str, Any]:
        response = await self.ask(crq, **body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def advance(self, seconds: float) -> None:
        self.server.clock.advance(seconds)

    def now(self) -> float:
        return self.server.clock.now()


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = EmulatorServer(["habu"])
    server.clock.set_speed(1e-9)  # frozen; tests move it with advance()
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emu/habu/v1") as client:
        result = Api(server, client)
        await result.login()
        yield result


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert fragment in body["message"], body


def stats(api: Api) -> dict[str, Any]:
    return api.vendor.stats()


# -- health and tokens ----------------------------------------------------------------------------------
async def test_health_needs_no_auth(api: Api) -> None:
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "UP",
        "statusCode": 200,
        "description": "External API is available",
        "version": "v1.0.0",
    }


async def test_token_is_camel_case_and_valid_until_it_expires(api: Api) -> None:
    minted_at = api.now()
    response = await api.mint()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn", "expiresAt"}
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 86400
    assert ISO.fullmatch(body["expiresAt"])
    expires = datetime.fromisoformat(body["expiresAt"]).timestamp()
    assert abs(expires - (minted_at + 86400)) < 0.01
    first = api.auth
    second = {"Authorization": f"Bearer {body['accessToken']}"}
    assert body["accessToken"] != first["Authorization"].split()[1]
    # Both tokens are valid at once, and both appear in stats for leak scans.
    for headers in (first, second):
        assert (
            await api.client.get(f"{CR}/cleanroom-flows/flow-weekly/cleanroom-flow-runs", headers=headers)
        ).status_code == 200
    assert stats(api)["minted_tokens"] == sorted([first["Authorization"][7:], body["accessToken"]])
    assert stats(api)["tokens_minted"] == 2
    api.advance(86400)
    response = await api.client.get(f"{CR}/cleanroom-flows/flow-weekly/cleanroom-flow-runs", headers=second)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("headers", "content", "status", "body"),
    [
        (
            {"Content-Type": "application/json"},
            '{"grant_type": "client_credentials"}',
            415,
            {"status": "UNSUPPORTED_MEDIA_TYPE"},
        ),
        ({"Authorization": ""}, "grant_type=client_credentials", 400, {"code": "BAD_REQUEST"}),
        ({"Authorization": "Basic !!!"}, "grant_type=client_credentials", 400, {"code": "BAD_REQUEST"}),
        ({}, "grant_type=password", 400, {"code": "BAD_REQUEST"}),
        (
            {"Authorization": "Basic " + base64.b64encode(b"habu-client:wrong").decode()},
            "grant_type=client_credentials",
            401,
            {"code": "UNAUTHORIZED"},
        ),
    ],
    ids=["json-415", "no-auth-400", "bad-basic-400", "grant-400", "bad-secret-401"],
)
async def test_token_refusals(
    api: Api, headers: dict[str, str], content: str, status: int, body: dict[str, str]
) -> None:
    response = await api.client.post(
        "/oauth/token", content=content, headers={**FORM, "Authorization": BASIC, **headers}
    )
    assert response.status_code == status, response.text
    assert set(response.json()) == {*body, "message"}
    assert body.items() <= response.json().items()
    assert stats(api)["tokens_minted"] == 1  # only the fixture's


async def test_third_token_in_24_hours_is_429_until_the_window_frees(api: Api) -> None:
    api.advance(3600)  # the fixture minted the first an hour ago
    assert (await api.mint()).status_code == 200
    refused = await api.mint()
    assert refused.status_code == 429
    assert refused.json() == {
        "code": "TOO_MANY_REQUESTS",
        "message": "Token issuance limit reached: 2 tokens per 24 hours",
    }
    assert "retry-after" not in refused.headers
    api.advance(86400 - 3600 - 1)
    assert (await api.mint()).status_code == 429
    api.advance(1)  # the first token's slot frees, 24 hours after it was minted
    assert (await api.mint()).status_code == 200
    assert (await api.mint()).status_code == 429  # the second still holds its slot
    api.advance(3600)
    assert (await api.mint()).status_code == 200
    assert stats(api)["tokens_minted"] == 4 and stats(api)["token_refused"] == 3


async def test_missing_or_bad_bearer_gets_the_observed_401_body(api: Api) -> None:
    path = f"{CR}/cleanroom-flow-runs/fr-x"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": BASIC}):
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body == {
            "status": "UNAUTHORIZED",
            "code": 401,
            "timestamp": body["timestamp"],
            "message": "Full authentication is required to access this resource",
            "details": f"uri=/v1{path}",
        }
        now = datetime.fromtimestamp(api.now(), timezone.utc)
        assert body["timestamp"] == now.strftime("%d-%m-%Y %H:%M:%S")
    assert stats(api)["unauthorized"] == 3


async def test_unknown_routes_and_methods_answer_in_return_object_shape(api: Api) -> None:
    assert_error(await api.get("/cleanrooms/cr-acme/nothing"), 404, "NOT_FOUND", "No such endpoint")
    assert_error(await api.client.get("/oauth/token"), 405, "METHOD_NOT_ALLOWED", "GET")
    assert (await api.client.get("/cleanrooms/cr-acme/nothing")).status_code == 401


# -- flow runs: creation ------------------------------------------------------------------------------
async def test_flow_run_parameters_list_every_node(api: Api) -> None:
    body = await api.ok(f"{CR}/cleanroom-flows/flow-weekly/flow-run-parameters")
    params = {p["nodeId"]: p for p in body["flowRunParameters"]}
    assert list(params) == [MATCH, REACH, OVERLAP]
    match = params[MATCH]["parameterMetadataList"]
    assert [(p["name"], p["fieldType"], p["parameterType"], p["index"]) for p in match] == [
        ("START_DATE", "DATE", "PARTITION_PARAMETER", 0),
        ("END_DATE", "DATE", "PARTITION_PARAMETER", 1),
    ]
    assert set(match[0]) == {"Id", "name", "displayName", "index", "fieldType", "parameterType"}
    assert [
        (p["name"], p["fieldType"], p["parameterType"]) for p in params[REACH]["parameterMetadataList"]
    ] == [("BRAND", "STRING", "RUN_TIME_PARAMETER")]
    assert params[OVERLAP]["parameterMetadataList"] == []
    assert_error(
        await api.get("/cleanrooms/cr-other/cleanroom-flows/flow-weekly/flow-run-parameters"),
        404,
        "NOT_FOUND",
        "cr-other",
    )
    assert_error(
        await api.get(f"{CR}/cleanroom-flows/flow-nope/flow-run-parameters"), 404, "NOT_FOUND", "flow-nope"
    )


SPEC_BODY = {
    "name": "Brand Analysis",
    "pauseLevelID": "Level-1",
    "nodes": [
        {"nodeIdentifier": f"{MATCH}_1", "parameters": DATES},
        {"nodeIdentifier": REACH, "parameters": {"BRAND": "nike"}},
    ],
    "branches": "nike_branch",
    "excludeNodesWithoutTags": True,
}
SEED_BODY = {
    "name": "Brand Analysis",
    "flowRunParameters": [
        {
            "nodeId": MATCH,
            "parameters": {"START_DATE": {"value": "2025-01-01", "parameterType": "PARTITION_PARAMETER"}},
        },
        {
            "nodeId": MATCH,
            "parameters": {"END_DATE": {"value": "2025-01-31", "parameterType": "PARTITION_PARAMETER"}},
        },
        {"nodeId": REACH, "parameters": {"BRAND": {"value": "nike", "parameterType": "RUNTIME_PARAMETER"}}},
    ],
    "startLevelId": 1,
    "pauseLevelId": 1,
}


@pytest.mark.parametrize("body", [SPEC_BODY, SEED_BODY], ids=["spec-body", "seed-body"])
@pytest.mark.parametrize("path", ["cleanroom-flow-runs", "clean-room-flow-runs"])
async def test_both_create_paths_take_both_body_shapes(api: Api, path: str, body: dict[str, Any]) -> None:
    response = await api.post(f"{CR}/cleanroom-flows/flow-weekly/{path}", body)
    assert response.status_code == 200, response.text
    if path == "clean-room-flow-runs":
        assert set(response.json()) == {"response"} and set(response.json()["response"]) == {"Id"}
        run_id = response.json()["response"]["Id"]
        wrapped = await api.ok(f"{CR}/cleanroom-flows/flow-weekly/clean-room-flow-runs/{run_id}")
        assert wrapped == {"response": await api.flow_run(run_id)}
        run = wrapped["response"]
    else:
        run = response.json()
    assert set(run) == FLOW_RUN_KEYS
    assert FR_ID.fullmatch(run["id"])
    assert run["name"] == "Brand Analysis" and run["status"] == "QUEUED" and run["runMessage"] == ""
    assert ISO.fullmatch(run["submittedAt"]) and run["executedAt"] is None and run["completedAt"] is None
    assert run["flowRunParameters"] == [
        {"nodeId": MATCH, "parameters": DATES},
        {"nodeId": REACH, "parameters": {"BRAND": "nike"}},
    ]
    api.advance(60 + 1800)
    assert (await api.flow_run(run["id"]))["status"] == "PAUSED"  # both shapes carried the pause level


async def test_duplicate_names_make_separate_runs_and_list_searches_newest_first(api: Api) -> None:
    first = await api.create(name="Weekly Nike")
    second = await api.create(name="Weekly Nike")
    third = await api.create(name="adidas")
    assert len({first["id"], second["id"], third["id"]}) == 3
    listing = await api.ok(f"{CR}/cleanroom-flows/flow-weekly/cleanroom-flow-runs", search="nIKe")
    assert listing["count"] == 2
    assert [r["id"] for r in listing["cleanRoomFlowRuns"]] == [second["id"], first["id"]]
    page = await api.ok(f"{CR}/cleanroom-flows/flow-weekly/cleanroom-flow-runs", limit=1, offset=1)
    assert page["count"] == 3 and [r["id"] for r in page["cleanRoomFlowRuns"]] == [second["id"]]
    other = await api.ok(f"{CR}/cleanroom-flows/flow-slow/cleanroom-flow-runs")
    assert other == {"cleanRoomFlowRuns": [], "count": 0}
    assert stats(api)["status_polls"] == 0  # listing is not polling


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": None}, "name is required"),
        ({"name": "  "}, "name is required"),
        ({"nodes": [{"nodeIdentifier": "nope", "parameters": {}}]}, "Unknown node 'nope'"),
        (
            {"nodes": [{"nodeIdentifier": MATCH, "parameters": {**DATES, "COLOR": "x"}}]},
            "Unknown parameter 'COLOR'",
        ),
        ({"nodes": [{"nodeIdentifier": OVERLAP, "parameters": {"BRAND": "x"}}]}, "Unknown parameter 'BRAND'"),
        ({"nodes": []}, "Missing required partition parameters for node Match"),
        ({"nodes": [{"nodeIdentifier": MATCH, "parameters": {"START_DATE": "2025-01-01"}}]}, ": END_DATE"),
        (
            {"nodes": [{"nodeIdentifier": MATCH, "parameters": {**DATES, "END_DATE": "31/01/2025"}}]},
            "yyyy-MM-dd",
        ),
        (
            {"nodes": [{"nodeIdentifier": MATCH, "parameters": {**DATES, "END_DATE": "2024-12-31"}}]},
            "before START_DATE",
        ),
        ({"pauseLevelID": "2"}, "pauseLevelID must be 'Level-N'"),
        ({"pauseLevelID": 2}, "pauseLevelID must be 'Level-N'"),
        ({"pauseLevelId": "two"}, "pauseLevelId must be 'Level-N' or an integer"),
        ({"pauseLevelID": "Level-4"}, "beyond the flow's 3 levels"),
        ({"pauseLevelId": 0}, "beyond the flow's 3 levels"),
        ({"startLevelID": "Level-2"}, "starts at Level-1"),
    ],
)
async def test_create_validation_errors_are_400_naming_the_problem(
    api: Api, change: dict[str, Any], fragment: str
) -> None:
    body = {"name": "weekly", "nodes": [{"nodeIdentifier": MATCH, "parameters": DATES}], **change}
    for path in ("cleanroom-flow-runs", "clean-room-flow-runs"):
        response = await api.post(f"{CR}/cleanroom-flows/flow-weekly/{path}", body)
        assert_error(response, 400, "BAD_REQUEST", fragment)
    assert stats(api)["runs_created"] == 0


async def test_missing_required_partition_parameters_are_named(api: Api) -> None:
    response = await api.post(f"{CR}/cleanroom-flows/flow-weekly/cleanroom-flow-runs", {"name": "x"})
    assert_error(response, 400, "BAD_REQUEST", f"node Match ({MATCH}): START_DATE, END_DATE")


async def test_unknown_clean_room_flow_or_run_is_404(api: Api) -> None:
    body = {"name": "x", "nodes": [{"nodeIdentifier": MATCH, "parameters": DATES}]}
    assert_error(
        await api.post("/cleanrooms/cr-x/cleanroom-flows/flow-weekly/cleanroom-flow-runs", body),
        404,
        "NOT_FOUND",
        "cr-x",
    )
    assert_error(
        await api.post(f"{CR}/cleanroom-flows/flow-x/cleanroom-flow-runs", body), 404, "NOT_FOUND", "flow-x"
    )
    for suffix in ("", "/status", "/output-nodes"):
        assert_error(await api.get(f"{CR}/cleanroom-flow-runs/fr-x{suffix}"), 404, "NOT_FOUND", "fr-x")
    run = await api.create()
    assert_error(await api.get(f"/cleanrooms/cr-x/cleanroom-flow-runs/{run['id']}"), 404, "NOT_FOUND", "cr-x")
    wrong_flow = f"{CR}/cleanroom-flows/flow-slow/clean-room-flow-runs/{run['id']}"
    assert_error(await api.get(wrong_flow), 404, "NOT_FOUND", run["id"])


# -- flow runs: progress, pause, resume, replay ---------------------------------------------------------
async def test_run_is_queued_then_runs_its_levels_then_completes(api: Api) -> None:
    created = api.now()
    run = await api.create()
    api.advance(59)
    assert await api.status(run["id"]) == "QUEUED"
    assert await api.nodes(run["id"]) == {"Match": "QUEUED", "Reach": "QUEUED", "Overlap": "QUEUED"}
    api.advance(1)
    view = await api.flow_run(run["id"])
    assert (
        view["status"] == "RUNNING"
        and abs(datetime.fromisoformat(view["executedAt"]).timestamp() - (created + 60)) < 0.01
    )
    assert await api.nodes(run["id"]) == {"Match": "RUNNING", "Reach": "QUEUED", "Overlap": "QUEUED"}
    api.advance(1800)
    assert await api.nodes(run["id"]) == {"Match": "COMPLETED", "Reach": "RUNNING", "Overlap": "QUEUED"}
    api.advance(1800)
    assert await api.nodes(run["id"]) == {"Match": "COMPLETED", "Reach": "COMPLETED", "Overlap": "RUNNING"}
    api.advance(1799)
    assert (await api.flow_run(run["id"]))["completedAt"] is None
    api.advance(1)
    view = await api.flow_run(run["id"])
    assert view["status"] == "COMPLETED" and view["runMessage"] == ""
    assert abs(datetime.fromisoformat(view["completedAt"]).timestamp() - (created + 60 + 5400)) < 0.01
    assert set(await api.nodes(run["id"])) == {"Match", "Reach", "Overlap"}
    assert set((await api.nodes(run["id"])).values()) == {"COMPLETED"}


async def test_failing_flow_ends_failed_with_the_node_message(api: Api) -> None:
    run = await api.create("flow-fail")
    api.advance(60 + 3600 - 1)
    assert await api.status(run["id"]) == "RUNNING"
    api.advance(1)
    view = await api.flow_run(run["id"])
    assert view["status"] == "FAILED" and view["completedAt"] is not None
    assert view["runMessage"] == "Node Reach failed: dataset BRAND_EXPOSURES is empty"
    assert await api.nodes(run["id"]) == {"Match": "COMPLETED", "Reach": "FAILED"}


async def test_slow_flow_takes_six_hours(api: Api) -> None:
    run = await api.create("flow-slow")
    api.advance(60 + 6 * 3600 - 1)
    assert await api.status(run["id"]) == "RUNNING"
    api.advance(1)
    assert await api.status(run["id"]) == "COMPLETED"


async def test_pause_then_resume_to_a_further_level_then_to_the_end(api: Api) -> None:
    run = await api.create(pauseLevelID="Level-1")
    api.advance(60 + 1800)
    view = await api.flow_run(run["id"])
    assert view["status"] == "PAUSED" and view["runMessage"] == "Paused at Level-1"
    assert view["completedAt"] is None
    assert await api.nodes(run["id"]) == {
        "Match": "COMPLETED",
        "Reach": "NOT_STARTED",
        "Overlap": "NOT_STARTED",
    }
    api.advance(7 * 3600)  # a pause lasts until someone resumes
    assert await api.status(run["id"]) == "PAUSED"

    response = await api.post(
        f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", {"pauseLevelID": "Level-2"}
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    # Straight to RUNNING at Level-2; Match is not run again.
    assert await api.status(run["id"]) == "RUNNING"
    assert await api.nodes(run["id"]) == {"Match": "COMPLETED", "Reach": "RUNNING", "Overlap": "NOT_STARTED"}
    api.advance(1800)
    view = await api.flow_run(run["id"])
    assert view["status"] == "PAUSED" and view["runMessage"] == "Paused at Level-2"

    response = await api.post(f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", {})
    assert response.status_code == 200
    api.advance(1799)
    assert await api.status(run["id"]) == "RUNNING"
    api.advance(1)
    view = await api.flow_run(run["id"])
    assert view["status"] == "COMPLETED" and view["runMessage"] == "" and view["completedAt"] is not None
    assert stats(api)["resumes"] == 2 and stats(api)["runs_created"] == 1
    assert api.vendor.create_limit.accepted == 1  # resuming is not creating


async def test_resume_refusals(api: Api) -> None:
    run = await api.create(pauseLevelID="Level-2")
    api.advance(60)
    response = await api.post(f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", {})
    assert response.status_code == 409
    assert response.json() == {
        "code": "CONFLICT",
        "message": f"Flow run {run['id']} is not paused (status RUNNING)",
    }
    api.advance(3600)
    for level in ("Level-1", "Level-2"):
        response = await api.post(
            f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", {"pauseLevelID": level}
        )
        assert_error(response, 400, "BAD_REQUEST", "must be after the level paused at (Level-2)")
    response = await api.post(
        f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", {"pauseLevelID": "Level-9"}
    )
    assert_error(response, 400, "BAD_REQUEST", "beyond")
    assert_error(
        await api.post(f"{CR}/cleanroom-flow-runs/fr-x/resume-flow-run", {}), 404, "NOT_FOUND", "fr-x"
    )
    assert await api.status(run["id"]) == "PAUSED" and stats(api)["resumes"] == 0


async def test_a_resumed_failing_flow_fails_at_its_broken_level(api: Api) -> None:
    run = await api.create("flow-fail", pauseLevelId=1)
    api.advance(60 + 1800)
    assert await api.status(run["id"]) == "PAUSED"
    assert (await api.post(f"{CR}/cleanroom-flow-runs/{run['id']}/resume-flow-run", None)).status_code == 200
    api.advance(1800)
    assert await api.status(run["id"]) == "FAILED"


async def test_replay_makes_a_new_run_that_reuses_the_parents_levels(api: Api) -> None:
    parent = await api.create(name="weekly nike", pauseLevelID="Level-1")
    replay_path = f"{CR}/cleanroom-flow-runs/{parent['id']}/replay-flow-run"
    api.advance(60)
    assert_error(await api.post(replay_path, {}), 409, "CONFLICT", "(status RUNNING)")
    api.advance(1800)
    parent_nodes = await api.ok(f"{CR}/cleanroom-flow-runs/{parent['id']}/output-nodes")

    response = await api.post(replay_path, {})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "cleanRoomFlowRunID"} and body["success"] is True
    child_id = body["cleanRoomFlowRunID"]
    assert FR_ID.fullmatch(child_id) and child_id != parent["id"]
    child = await api.flow_run(child_id)
    assert child["parentFlowRunId"] == parent["id"] and child["name"] == "weekly nike (replay)"
    assert child["status"] == "QUEUED" and child["flowRunParameters"] == parent["flowRunParameters"]
    # Level 1 comes from the parent (same node run), the rest runs anew.
    child_nodes = await api.ok(f"{CR}/cleanroom-flow-runs/{child_id}/output-nodes")
    assert child_nodes[0]["runStatus"] == "COMPLETED" and child_nodes[0]["runID"] == parent_nodes[0]["runID"]
    assert child_nodes[1]["runStatus"] == "QUEUED" and child_nodes[1]["runID"] != parent_nodes[1]["runID"]
    api.advance(60 + 2 * 1800)
    assert await api.status(child_id) == "COMPLETED"
    assert await api.status(parent["id"]) == "PAUSED"  # the parent is untouched
    assert "parentFlowRunId" not in await api.flow_run(parent["id"])
    assert stats(api)["replays"] == 1 and stats(api)["runs_created"] == 2


async def test_replay_options_and_refusals(api: Api) -> None:
    parent = await api.create("flow-fail")
    api.advance(60 + 3600)
    path = f"{CR}/cleanroom-flow-runs/{parent['id']}/replay-flow-run"
    assert_error(await api.post(path, {"startLevelID": "Level-3"}), 400, "BAD_REQUEST", "beyond")
    response = await api.post(path, {"startLevelID": "Level-2", "pauseLevelID": "Level-1"})
    assert_error(response, 400, "BAD_REQUEST", "before startLevelID")
    response = await api.post(
        path,
        {
            "name": "retry",
            "startLevelID": "Level-2",
            "nodes": [{"nodeIdentifier": "Q-1002", "parameters": {"BRAND": "puma"}}],
        },
    )
    assert response.status_code == 200, response.text
    child = await api.flow_run(response.json()["cleanRoomFlowRunID"])
    assert child["name"] == "retry"
    assert child["flowRunParameters"] == [
        {"nodeId": MATCH, "parameters": DATES},
        {"nodeId": REACH, "parameters": {"BRAND": "puma"}},
    ]
    # A completed level can be reused, a failed one cannot.
    grandchild_path = f"{CR}/cleanroom-flow-runs/{parent['id']}/replay-flow-run"
    assert (await api.post(grandchild_path, {"startLevelID": "Level-2"})).status_code == 200
    weekly = await api.create(pauseLevelID="Level-1")
    api.advance(60 + 1800)
    response = await api.post(
        f"{CR}/cleanroom-flow-runs/{weekly['id']}/replay-flow-run", {"startLevelID": "Level-3"}
    )
    assert_error(response, 400, "BAD_REQUEST", "Cannot reuse Level-2")


# -- limits and polling -------------------------------------------------------------------------------
async def test_create_limit_is_20_per_hour_shared_by_flow_question_and_replay_creates(api: Api) -> None:
    parent = await api.create()
    api.advance(60 + 5400)  # the parent completes and its slot frees
    for i in range(9):
        await api.create(name=f"flow {i}")
    for i in range(10):
        await api.question_run(name=f"question {i}")
    replay = f"{CR}/cleanroom-flow-runs/{parent['id']}/replay-flow-run"
    assert (await api.post(replay, {})).status_code == 200
    refusals = [
        await api.post(
            f"{CR}/cleanroom-flows/flow-weekly/clean-room-flow-runs",
            {"name": "x", "nodes": [{"nodeIdentifier": MATCH, "parameters": DATES}]},
        ),
        await api.ask(),
        await api.post(replay, {}),
    ]
    for response in refusals:
        assert response.status_code == 429
        assert response.json()["code"] == "TOO_MANY_REQUESTS" and set(response.json()) == {"code", "message"}
        assert "retry-after" not in response.headers
        assert "20 run creations per hour" in response.json()["message"]
    assert stats(api)["creates_refused"] == 3 and stats(api)["runs_created"] == 21
    api.advance(3599)
    assert (await api.ask()).status_code == 429
    api.advance(1)
    assert (await api.ask()).status_code == 200
    assert stats(api)["creates_refused"] == 4


async def test_polls_are_recorded_per_run_never_refused(api: Api) -> None:
    run = await api.create()
    other = await api.create()
    seed_get = f"{CR}/cleanroom-flows/flow-weekly/clean-room-flow-runs/{run['id']}"
    await api.flow_run(run["id"])
    api.advance(299)
    await api.status(run["id"])  # 299 s after the last poll: too frequent
    await api.status(other["id"])  # another run's first poll is fine
    api.advance(300)
    await api.ok(seed_get)
    api.advance(300)
    await api.flow_run(run["id"])
    assert_error(await api.get(f"{CR}/cleanroom-flow-runs/fr-x"), 404, "NOT_FOUND", "fr-x")
    assert stats(api)["status_polls"] == 5 and stats(api)["polls_too_frequent"] == 1
    assert stats(api)["max_polls_per_run_hour"] == 4
    # Polling every 5 minutes for well over an hour peaks at 12 polls in any hour.
    for _ in range(20):
        api.advance(300)
        await api.status(other["id"])
    assert stats(api)["max_polls_per_run_hour"] == 12 and stats(api)["polls_too_frequent"] == 1
    question = await api.question_run()
    await api.ok(f"/cleanroom-question-runs/{question['id']}")
    await api.ok(f"/cleanroom-question-runs/{question['id']}")
    assert stats(api)["status_polls"] == 27 and stats(api)["polls_too_frequent"] == 2


# -- reports and node files -----------------------------------------------------------------------------
async def completed_weekly(api: Api) -> str:
    run = await api.create()
    api.advance(60 + 5400)
    return str(run["id"])


async def test_report_pages_through_all_1234_reach_rows_as_strings(api: Api) -> None:
    run_id = await completed_weekly(api)
    path = f"{CR}/cleanroom-flow-runs/{run_id}/report"
    rows: list[dict[str, Any]] = []
    for offset in (0, 500, 1000):
        page = await api.ok(path, node="Q-1002", limit=500, offset=offset)
        assert set(page) == {"metadata", "stats", "count", "multipleOutputs"}
        assert page["count"] == 1234 and page["multipleOutputs"] == []
        rows += page["stats"]
    assert [len(rows), len({(r["brand"], r["date"], r["reach"], r["note"]) for r in rows})] == [1234, 1234]
    assert page["metadata"] == [
        {"fieldName": c, "dataType": t, "columnName": c}
        for c, t in (("brand", "STRING"), ("date", "DATE"), ("reach", "LONG"), ("note", "STRING"))
    ]
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert all(set(r) == {"brand", "date", "reach", "note"} for r in rows)
    notes = {r["note"] for r in rows}
    assert set(AWKWARD_NOTES) <= notes
    assert {"", "comma, inside", 'say "hello"', "line one\nline two", "café ✓"} <= notes
    assert (await api.ok(path, node="Q-1002", offset=1234))["stats"] == []
    assert stats(api)["report_pages"] == 4
    # The same node by UUID, with the instance suffix, or by display id with the suffix.
    first = (await api.ok(path, node="Q-1002", limit=3))["stats"]
    for node in (REACH, f"{REACH}_1", "Q-1002_1"):
        assert (await api.ok(path, node=node, limit=3))["stats"] == first


async def test_match_and_overlap_reports(api: Api) -> None:
    run_id = await completed_weekly(api)
    path = f"{CR}/cleanroom-flow-runs/{run_id}/report"
    match = await api.ok(path, node=MATCH)
    assert match["stats"] == [{"matched_ids": "576"}] and match["count"] == 1
    overlap = await api.ok(path, node="Q-1003")
    assert overlap["count"] == 2 and len(overlap["stats"]) == 2
    assert overlap["multipleOutputs"] == ["overlap_summary.csv", "overlap_by_day.csv"]
    assert all(isinstance(v, str) for r in overlap["stats"] for v in r.values())


async def test_report_refusals(api: Api) -> None:
    run = await api.create()
    path = f"{CR}/cleanroom-flow-runs/{run['id']}/report"
    api.advance(60 + 1800)
    assert_error(await api.get(path, node="Q-1002"), 400, "NODE_NOT_READY", "status RUNNING")
    assert_error(await api.get(path, node="Q-1003"), 400, "NODE_NOT_READY", "status QUEUED")
    assert (await api.get(path, node="Q-1001")).status_code == 200
    assert_error(await api.get(path, node="Q-9999"), 404, "NOT_FOUND", "Q-9999")
    assert_error(await api.get(path, node=f"{REACH}_2"), 404, "NOT_FOUND", "_2")
    assert_error(await api.get(path), 400, "BAD_REQUEST", "node")
    assert_error(await api.get(path, node="Q-1001", limit=1001), 400, "BAD_REQUEST", "limit")
    assert_error(await api.get(path, node="Q-1001", offset=-1), 400, "BAD_REQUEST", "offset")
    assert (await api.get(path, node="Q-1001", limit=1000)).status_code == 200


async def test_output_nodes_describe_every_node(api: Api) -> None:
    run = await api.create()
    nodes = await api.ok(f"{CR}/cleanroom-flow-runs/{run['id']}/output-nodes")
    assert [n["node"]["id"] for n in nodes] == [MATCH, REACH, OVERLAP]
    for level, (entry, label) in enumerate(zip(nodes, ("Match", "Reach", "Overlap"), strict=True), start=1):
        assert set(entry) == {"node", "runStatus", "runID"} and entry["runID"]
        node = entry["node"]
        assert {
            "id",
            "flowId",
            "label",
            "nodeType",
            "referenceId",
            "level",
            "title",
            "cleanroomQuestionId",
        } <= set(node)
        assert (node["flowId"], node["label"], node["nodeType"], node["level"]) == (
            "flow-weekly",
            label,
            "QUESTION",
            level,
        )


async def test_node_file_download(api: Api) -> None:
    run = await api.create()
    base = f"{CR}/cleanroom-flow-runs/{run['id']}/node"
    assert_error(
        await api.get(f"{base}/Q-1003/download/overlap_summary.csv"), 400, "NODE_NOT_READY", "Overlap"
    )
    api.advance(60 + 5400)
    for node in (OVERLAP, "Q-1003_1"):
        response = await api.get(f"{base}/{node}/download/overlap_by_day.csv")
        assert response.status_code == 200
        assert response.content == file_bytes("overlap_by_day.csv")
        assert response.headers["content-length"] == str(len(response.content))
    summary = (await api.get(f"{base}/Q-1003/download/overlap_summary.csv")).content
    assert summary != file_bytes("overlap_by_day.csv") and summary.startswith(b"file,row,value\n")
    assert_error(await api.get(f"{base}/Q-1003/download/other.csv"), 404, "NOT_FOUND", "other.csv")
    assert_error(await api.get(f"{base}/Q-1001/download/overlap_summary.csv"), 404, "NOT_FOUND", "")
    assert stats(api)["downloads"] == 3


# -- questions ------------------------------------------------------------------------------------------
async def test_question_and_its_parameters(api: Api) -> None:
    question = await api.ok("/cleanroom-questions/crq-reach")
    assert (
        question["id"] == "crq-reach"
        and question["status"] == "READY"
        and question["cleanroomId"] == "cr-acme"
    )
    body = await api.ok("/cleanroom-questions/crq-reach/cleanroom-question-parameters")
    assert set(body) == {"name", "displayId", "parameters"}
    params = {p["Name"]: p for p in body["parameters"]}
    assert (params["START_DATE"]["DataType"], params["START_DATE"]["ParameterType"]) == (
        "DATE",
        "PARTITION_PARAMETER",
    )
    assert params["START_DATE"]["partitionFieldConfig"]["type"] == "Range"
    assert (params["END_DATE"]["DataType"], params["END_DATE"]["ParameterType"]) == (
        "DATE",
        "PARTITION_PARAMETER",
    )
    assert (params["BRAND"]["DataType"], params["BRAND"]["ParameterType"]) == ("STRING", "RUNTIME_PARAMETER")
    assert params["BRAND"]["DefaultValue"] == "all"
    assert_error(await api.get("/cleanroom-questions/crq-nope"), 404, "NOT_FOUND", "crq-nope")


async def test_question_run_is_created_queued_and_completes(api: Api) -> None:
    run = await api.question_run(parameters={**DATES, "BRAND": "nike"})
    assert set(run) == QUESTION_RUN_KEYS and QR_ID.fullmatch(run["id"])
    assert (run["name"], run["status"], run["runMessage"], run["questionVersion"]) == (
        "reach",
        "QUEUED",
        "",
        1,
    )
    assert run["executedAt"] is None and run["completedAt"] is None and run["runMetadata"] is None
    assert run["failureReason"] is None and run["isRetryable"] is False
    assert run["parameters"] == {**DATES, "BRAND": "nike"}
    assert run["partitionParameters"] == [
        {"name": "START_DATE", "value": "2025-01-01", "dataType": "DATE"},
        {"name": "END_DATE", "value": "2025-01-31", "dataType": "DATE"},
    ]
    poll = f"/cleanroom-question-runs/{run['id']}"
    api.advance(60)
    assert (await api.ok(poll))["status"] == "RUNNING"
    api.advance(1799)
    assert (await api.ok(poll))["status"] == "RUNNING"
    api.advance(1)
    done = await api.ok(poll)
    assert (
        done["status"] == "COMPLETED"
        and ISO.fullmatch(done["completedAt"])
        and ISO.fullmatch(done["executedAt"])
    )
    # The docs' example wraps the request in "response"; that is accepted too.
    wrapped = await api.post(
        "/cleanroom-questions/crq-reach/create-run", {"response": {"name": "w", "parameters": DATES}}
    )
    assert wrapped.status_code == 200 and wrapped.json()["name"] == "w"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"parameters": DATES}, "name is required"),
        ({"name": "x", "parameters": {**DATES, "COLOR": "red"}}, "Unknown parameter 'COLOR'"),
        ({"name": "x", "parameters": {"START_DATE": "2025-01-01"}}, "END_DATE"),
        ({"name": "x"}, "START_DATE, END_DATE"),
        ({"name": "x", "parameters": {**DATES, "START_DATE": "Jan 1"}}, "yyyy-MM-dd"),
        ({"name": "x", "parameters": ["START_DATE"]}, "parameters must be an object"),
    ],
)
async def test_create_question_run_validation(api: Api, body: dict[str, Any], fragment: str) -> None:
    assert_error(
        await api.post("/cleanroom-questions/crq-reach/create-run", body), 400, "BAD_REQUEST", fragment
    )
    assert stats(api)["runs_created"] == 0


async def test_question_missing_datasets_answers_412(api: Api) -> None:
    response = await api.ask("crq-missing")
    assert_error(response, 412, "PRECONDITION_FAILED", "MISSING_DATASETS")
    assert_error(await api.ask("crq-nope"), 404, "NOT_FOUND", "crq-nope")
    assert stats(api)["runs_created"] == 0 and api.vendor.create_limit.accepted == 0


async def test_partner_question_goes_through_partner_stages(api: Api) -> None:
    run = await api.question_run("crq-partner")
    seen = []
    for _ in range(5):
        seen.append((await api.ok(f"/cleanroom-question-runs/{run['id']}"))["status"])
        api.advance(600)
    assert seen == ["QUEUED", "PARTNER_QUEUED", "PARTNER_RUNNING", "PARTNER_COMPLETED", "COMPLETED"]


async def test_failed_question_run_carries_reason_and_is_not_retryable(api: Api) -> None:
    run = await api.question_run("crq-fail")
    api.advance(60 + 1800 - 1)
    running = await api.ok(f"/cleanroom-question-runs/{run['id']}")
    assert running["status"] == "RUNNING" and running["failureReason"] is None
    api.advance(1)
    failed = await api.ok(f"/cleanroom-question-runs/{run['id']}")
    assert failed["status"] == "FAILED"
    assert failed["failureReason"] == "Query failed: column BRAND_ID not found"
    assert failed["isRetryable"] is False and failed["completedAt"] is not None
    assert_error(
        await api.get(f"/cleanroom-question-runs/{run['id']}/data"), 400, "RUN_NOT_COMPLETED", "FAILED"
    )


async def test_list_question_runs_filters_pages_and_limits(api: Api) -> None:
    path = "/cleanroom-questions/crq-reach/cleanroom-question-runs"
    first_day = datetime.fromtimestamp(api.now(), timezone.utc).date().isoformat()
    old = await api.question_run(name="old")
    api.advance(2 * 86400)
    await api.login()  # the first token expired
    new = [await api.question_run(name=f"new {i}") for i in range(3)]
    await api.question_run("crq-partner")
    listing = await api.ok(path)
    assert isinstance(listing, list)
    assert [r["id"] for r in listing] == [r["id"] for r in reversed(new)] + [old["id"]]
    for key in ("status", "questionRunStatus"):
        assert [r["id"] for r in await api.ok(path, **{key: "COMPLETED"})] == [old["id"]]
        assert len(await api.ok(path, **{key: "QUEUED"})) == 3
    assert [r["id"] for r in await api.ok(path, startDate=first_day, endDate=first_day)] == [old["id"]]
    assert len(await api.ok(path, startDate=new[0]["submittedAt"][:10])) == 3
    assert [r["id"] for r in await api.ok(path, limit=2, offset=1)] == [new[1]["id"], new[0]["id"]]
    assert len(await api.ok(path, limit=100)) == 4
    assert_error(await api.get(path, limit=101), 400, "BAD_REQUEST", "limit")
    assert_error(await api.get(path, status="DONE"), 400, "BAD_REQUEST", "status")
    assert_error(await api.get(path, startDate="01-01-2025"), 400, "BAD_REQUEST", "startDate")


async def test_question_data_pages_and_count(api: Api) -> None:
    run = await api.question_run()
    base = f"/cleanroom-question-runs/{run['id']}"
    assert_error(await api.get(f"{base}/data"), 400, "RUN_NOT_COMPLETED", "QUEUED")
    assert_error(await api.get(f"{base}/data/count"), 400, "RUN_NOT_COMPLETED", "QUEUED")
    assert_error(await api.get(f"{base}/download/reach_by_day.csv"), 400, "RUN_NOT_COMPLETED", "")
    api.advance(60 + 1800)
    count = await api.get(f"{base}/data/count")
    assert count.status_code == 200 and count.text == "2500"
    rows: list[dict[str, Any]] = []
    for offset in range(0, 2500, 1000):
        page = await api.ok(f"{base}/data", limit=1000, offset=offset)
        assert page["count"] == 2500 and page["multipleOutputs"] == ["reach_by_day.csv", "reach_summary.csv"]
        rows += page["stats"]
    assert len(rows) == 2500 and all(set(r) == {"brand", "day", "reach"} for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert len((await api.ok(f"{base}/data"))["stats"]) == 500  # the default page
    assert_error(await api.get(f"{base}/data", limit=1001), 400, "BAD_REQUEST", "limit")
    download = await api.get(f"{base}/download/reach_summary.csv")
    assert download.status_code == 200 and download.content == file_bytes("reach_summary.csv")


async def test_hostile_output_names_are_served_url_encoded(api: Api) -> None:
    run = await api.question_run("crq-files")
    api.advance(120)
    base = f"/cleanroom-question-runs/{run['id']}"
    data = await api.ok(f"{base}/data")
    assert data["multipleOutputs"] == ["../../escape.csv", "sub/dir/out.csv", "résumé ✓.csv", ".hidden"]
    for name in HOSTILE_OUTPUTS:
        response = await api.get(f"{base}/download/{quote(name, safe='')}")
        assert response.status_code == 200, name
        assert response.content == file_bytes(name)
        assert response.headers["content-length"] == str(len(file_bytes(name)))
    assert (await api.get(f"{base}/download/sub/dir/out.csv")).content == file_bytes("sub/dir/out.csv")
    assert_error(await api.get(f"{base}/download/escape.csv"), 404, "NOT_FOUND", "escape.csv")
    assert stats(api)["downloads"] == 5


async def test_big_file_is_streamed_with_its_content_length(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(habu_app, "BIG_FILE_MB", 2)
    run = await api.question_run("crq-big")
    api.advance(120)
    assert (await api.ok(f"/cleanroom-question-runs/{run['id']}/data"))["multipleOutputs"] == ["big.bin"]
    response = await api.get(f"/cleanroom-question-runs/{run['id']}/download/big.bin")
    assert response.status_code == 200
    size = 2 * 1024 * 1024
    assert response.headers["content-length"] == str(size) and len(response.content) == size
    expected = hashlib.sha256()
    chunks = list(big_file_chunks(size))
    for chunk in chunks:
        expected.update(chunk)
    assert hashlib.sha256(response.content).hexdigest() == expected.hexdigest()
    assert len(chunks) == size // STREAM_CHUNK and max(map(len, chunks)) == STREAM_CHUNK


async def test_delete_question_run(api: Api) -> None:
    run = await api.question_run()
    response = await api.client.delete(f"/cleanroom-question-runs/{run['id']}", headers=api.auth)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert_error(await api.get(f"/cleanroom-question-runs/{run['id']}"), 404, "NOT_FOUND", run["id"])
    assert await api.ok("/cleanroom-questions/crq-reach/cleanroom-question-runs") == []


@pytest.mark.parametrize("id_param", ["questionId", "questionID"])
async def test_provisioned_question_becomes_ready_after_both_dataset_calls(api: Api, id_param: str) -> None:
    created = await api.post("/question", {"questionDetails": {"title": "API reach"}}, cleanRoomID="cr-acme")
    assert created.status_code == 200
    body = created.json()
    assert (body["success"], body["message"]) == (True, "Question created successfully")
    assert body["questionID"].startswith("q-")
    response = await api.post(
        "/cleanrooms/cr-acme/cleanroom-questions", None, **{id_param: body["questionID"]}, isEditable="true"
    )
    assert response.status_code == 200, response.text
    crq = response.json()
    assert crq["id"].startswith("crq-") and crq["stage"] == "MISSING_DATASETS"
    assert (crq["questionId"], crq["cleanRoomId"], crq["title"], crq["isEditable"]) == (
        body["questionID"],
        "cr-acme",
        "API reach",
        True,
    )
    assert_error(await api.ask(crq["id"]), 412, "PRECONDITION_FAILED", "")
    owned = await api.post(
        f"/cleanroom-questions/{crq['id']}/datasets-ownership",
        [{"organizationId": "org-1", "macro": "exposures"}],
    )
    assert owned.status_code == 200 and isinstance(owned.json(), list)
    assert (await api.ok(f"/cleanroom-questions/{crq['id']}"))["status"] == "MISSING_DATASETS"
    configured = await api.post(
        f"/cleanroom-questions/{crq['id']}/datasets",
        [{"datasetId": "ds-1", "macro": "exposures", "fields": []}],
    )
    assert configured.status_code == 200
    assert (await api.ok(f"/cleanroom-questions/{crq['id']}"))["status"] == "READY"
    run = await api.question_run(crq["id"])
    api.advance(60 + 1800)
    assert (await api.ok(f"/cleanroom-question-runs/{run['id']}"))["status"] == "COMPLETED"


async def test_provisioning_refusals(api: Api) -> None:
    assert_error(await api.post("/question", {"title": "x"}), 400, "BAD_REQUEST", "questionDetails")
    assert_error(
        await api.post("/question", {"questionDetails": {}}, cleanRoomID="cr-x"), 404, "NOT_FOUND", "cr-x"
    )
    assert_error(
        await api.post("/cleanrooms/cr-acme/cleanroom-questions", None, questionId="q-x"),
        404,
        "NOT_FOUND",
        "q-x",
    )
    assert_error(
        await api.post("/cleanrooms/cr-acme/cleanroom-questions", None), 400, "BAD_REQUEST", "questionId"
    )
    response = await api.post("/cleanroom-questions/crq-missing/datasets", {"datasetId": "ds-1"})
    assert_error(response, 400, "BAD_REQUEST", "JSON array")


# -- stats and reset ------------------------------------------------------------------------------------
async def test_stats_start_at_zero_and_reset_keeps_only_fixtures(api: Api) -> None:
    token = api.auth["Authorization"][7:]
    assert stats(api) == {
        "tokens_minted": 1,
        "token_refused": 0,
        "runs_created": 0,
        "creates_refused": 0,
        "status_polls": 0,
        "polls_too_frequent": 0,
        "run_listings": 0,
        "max_polls_per_run_hour": 0,
        "max_creates_in_an_hour": 0,
        "resumes": 0,
        "replays": 0,
        "report_pages": 0,
        "downloads": 0,
        "unauthorized": 0,
        "flow_runs": 0,
        "question_runs": 0,
        "minted_tokens": [token],
    }
    run = await api.create()
    await api.flow_run(run["id"])
    await api.question_run()
    await api.ok("/cleanroom-questions/crq-reach/cleanroom-question-runs")  # a watcher's listing
    assert stats(api)["run_listings"] == 1
    await api.post("/cleanroom-questions/crq-missing/datasets-ownership", [])
    await api.post("/cleanroom-questions/crq-missing/datasets", [])
    assert (await api.ok("/cleanroom-questions/crq-missing"))["status"] == "READY"
    response = await api.client.post("http://emu/_emulator/reset")
    assert response.status_code == 200
    assert stats(api)["runs_created"] == 0 and stats(api)["minted_tokens"] == []
    assert stats(api)["flow_runs"] == 0 and stats(api)["max_polls_per_run_hour"] == 0
    assert stats(api)["max_creates_in_an_hour"] == 0
    assert (await api.get(f"{CR}/cleanroom-flow-runs/{run['id']}")).status_code == 401  # tokens are gone
    await api.login()
    assert_error(await api.get(f"{CR}/cleanroom-flow-runs/{run['id']}"), 404, "NOT_FOUND", run["id"])
    assert (await api.ok("/cleanroom-questions/crq-missing"))["status"] == "MISSING_DATASETS"
    assert api.vendor.create_limit.accepted == 0
    server_stats = (await api.client.get("http://emu/_emulator/stats")).json()
    assert server_stats["vendors"]["habu"]["tokens_minted"] == 1


# -- over real HTTP -------------------------------------------------------------------------------------
def test_served_by_uvicorn_with_encoded_names_and_a_streamed_big_file() -> None:
    """What the in-process client cannot show: real percent-decoding of hostile names by uvicorn,
    the env knobs read at start-up, and the vendor registered for ``flowruns-emulator serve``."""
    env = {"FLOWRUNS_HABU_BIG_FILE_MB": "1", "FLOWRUNS_HABU_CLIENT_SECRET": "s3ntinel-secret"}
    with (
        EmulatorProcess(["habu"], speed=1e-9, env=env) as emu,
        httpx.Client(base_url=emu.url("habu", "/v1")) as http,
    ):
        basic = base64.b64encode(b"habu-client:s3ntinel-secret").decode()
        token = http.post(
            "/oauth/token",
            content="grant_type=client_credentials",
            headers={**FORM, "Authorization": f"Basic {basic}"},
        ).json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for crq in ("crq-files", "crq-big"):
            response = http.post(
                f"/cleanroom-questions/{crq}/create-run",
                json={"name": crq, "parameters": DATES},
                headers=auth,
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        emu.control("POST", "clock", json={"advance": 120})
        for name in HOSTILE_OUTPUTS:
            response = http.get(
                f"/cleanroom-question-runs/{ids[0]}/download/{quote(name, safe='')}", headers=auth
            )
            assert response.status_code == 200 and response.content == file_bytes(name), name
        with http.stream(
            "GET", f"/cleanroom-question-runs/{ids[1]}/download/big.bin", headers=auth
        ) as response:
            assert response.headers["content-length"] == str(1024 * 1024)
            assert sum(len(chunk) for chunk in response.iter_bytes()) == 1024 * 1024
        habu = emu.stats()["vendors"]["habu"]
        assert habu["minted_tokens"] == [token] and habu["downloads"] == 5
