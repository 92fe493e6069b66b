"""The Amperity emulator on its own, in-process: the contract the provider's Amperity tests rely on.

The rate-limit clock is frozen and moved by hand (0.2 s per request), so ordinary tests never hit
the 10 requests/second limit and the rate-limit test is exact whatever the machine's speed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_flowruns.testing.amperity_app import AmperityEmulator
from airflow_provider_flowruns.testing.server import EmulatorServer

HEADERS = {"amperity-tenant": "acme", "api-version": "2024-04-01", "Authorization": "Bearer amperity-token"}
OVERVIEW_KEYS = {"created_at", "ended_at", "id", "name", "state", "tenant", "type"}
WF_ID = re.compile(r"wf-\d{8}-\d{5}-[A-Za-z0-9]{6}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Api:
    """An httpx client on the in-process app plus the knobs tests turn: clocks and vendor state."""

    def __init__(self, server: EmulatorServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client
        vendor = server.emulators["amperity"]
        assert isinstance(vendor, AmperityEmulator)
        self.vendor = vendor

    async def request(
        self, method: str, path: str, *, pace: float = 0.2, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        self.vendor.wall_clock.advance(pace)
        merged = {**HEADERS, **(headers or {})}
        return await self.client.request(method, path, headers=merged, **kw)

    async def start(self, config_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.request("POST", "/workflow/runs", json={"config_id": config_id, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def get(self, run_id: str, view: str = "verbose") -> dict[str, Any]:
        response = await self.request("GET", f"/workflow/runs/{run_id}", params={"view": view})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def advance(self, seconds: float) -> None:
        self.server.clock.advance(seconds)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = EmulatorServer(["amperity"])
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emu/amperity/api") as client:
        result = Api(server, client)
        result.vendor.wall_clock.set_speed(1e-9)  # frozen; Api.request moves it
        yield result


def assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "message", "request_id", "trace_id"}
    assert body["status"] == status and fragment in body["message"]
    assert re.fullmatch(r"[0-9a-f-]{36}", body["request_id"]) and re.fullmatch(
        r"[0-9a-f]{32}", body["trace_id"]
    )


# -- headers -----------------------------------------------------------------------------------------
async def test_missing_tenant_header_is_400(api: Api) -> None:
    response = await api.client.get(
        "/workflow/runs", headers={"api-version": "2024-04-01", "Authorization": "Bearer amperity-token"}
    )
    assert_error(response, 400, "Missing amperity-tenant header")


async def test_tenant_header_is_case_insensitive(api: Api) -> None:
    response = await api.request("GET", "/workflow/runs", headers={"Amperity-Tenant": "acme"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("version", "fragment"), [("1999-01-01", "Unsupported API version"), ("", "Missing")]
)
async def test_bad_or_missing_api_version_is_400(api: Api, version: str, fragment: str) -> None:
    response = await api.request("GET", "/workflow/runs", headers={"api-version": version})
    assert_error(response, 400, fragment)


async def test_api_version_query_parameter_and_unstable_are_accepted(api: Api) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "api-version"}
    response = await api.client.get("/workflow/runs", params={"api_version": "unstable"}, headers=headers)
    assert response.status_code == 200


async def test_missing_or_unknown_token_is_401(api: Api) -> None:
    assert_error(await api.request("GET", "/workflow/runs", headers={"Authorization": ""}), 401, "bearer")
    assert_error(
        await api.request("GET", "/workflow/runs", headers={"Authorization": "Bearer nope"}), 401, ""
    )


async def test_unknown_route_answers_in_vendor_shape(api: Api) -> None:
    assert_error(await api.client.get("/ingest/nothing"), 404, "No such endpoint")
    assert_error(await api.client.delete("/workflow/runs/wf-x"), 405, "DELETE")


# -- start -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config_id", "kind"),
    [
        ("cg-sources", "courier.group/run"),
        ("og-braze", "amperity.orchestration.orchestration/run"),
        ("cc-spring", "campaign/run"),
    ],
)
async def test_start_returns_201_scheduled_workflow(api: Api, config_id: str, kind: str) -> None:
    run = await api.start(config_id)
    assert WF_ID.fullmatch(run["id"]) and TIMESTAMP.fullmatch(run["created_at"])
    assert run["state"] == "scheduled" and run["task_instances"] == []
    assert run["type"] == kind and run["tenant"] == "acme" and config_id[3:] in run["name"]
    assert api.vendor.stats()["runs_created"] == 1


async def test_start_echoes_range_and_run_mode(api: Api) -> None:
    run = await api.start(
        "cg-files", run_mode="source", range_from="2026-11-22", range_to="2026-11-23T00:00:00Z"
    )
    assert (run["run_mode"], run["range_from"], run["range_to"]) == (
        "source",
        "2026-11-22",
        "2026-11-23T00:00:00Z",
    )


async def test_start_parses_json_sent_as_form_and_real_form_fields(api: Api) -> None:
    curl_style = await api.request(
        "POST",
        "/workflow/runs",
        content=b'{"config_id": "cg-curl"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    form = await api.request("POST", "/workflow/runs", data={"config_id": "cg-form", "run_mode": "full"})
    assert (curl_style.status_code, form.status_code) == (201, 201)
    assert form.json()["run_mode"] == "full"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({}, "config_id is required"),
        ({"config_id": "xx-1"}, "Invalid config_id"),
        ({"config_id": "cg-1", "range_to": "2026-01-02"}, "range_to requires range_from"),
        ({"config_id": "cg-1", "range_from": "yesterday"}, "range_from is not a valid ISO-8601"),
        ({"config_id": "cg-1", "range_from": "2026-01-02", "range_to": "2026-01-01"}, "before range_to"),
        ({"config_id": "cg-1", "range_from": "2026-01-02", "range_to": "2026-01-02"}, "before range_to"),
        ({"config_id": "og-1", "run_mode": "full"}, "courier groups"),
        ({"config_id": "cg-1", "run_mode": "partial"}, "Invalid run_mode"),
    ],
)
async def test_start_validation_errors(api: Api, fields: dict[str, str], fragment: str) -> None:
    assert_error(await api.request("POST", "/workflow/runs", json=fields), 400, fragment)
    assert api.vendor.stats()["runs_created"] == 0


# -- progression and views ----------------------------------------------------------------------------
async def test_default_run_progresses_to_succeeded_with_its_tasks(api: Api) -> None:
    run_id = (await api.start("og-daily"))["id"]
    seen = []
    for step in (0.5, 2.0, 2.5, 10.0, 6.0):  # t = 0.5, 2.5, 5, 15, 21
        api.advance(step)
        seen.append((await api.get(run_id))["state"])
    assert seen == ["scheduled", "started", "in progress", "running", "succeeded"]
    final = await api.get(run_id)
    assert TIMESTAMP.fullmatch(final["ended_at"]) and "error" not in final
    tasks = final["task_instances"]
    assert [t["state"] for t in tasks] == ["succeeded", "succeeded"]
    assert all(t["id"].startswith("wft-") and t["workflow_id"] == run_id and t["ended_at"] for t in tasks)
    assert api.vendor.stats()["status_polls"] == 6


async def test_tasks_appear_as_they_start(api: Api) -> None:
    run_id = (await api.start("cg-daily"))["id"]
    api.advance(4)
    assert [t["state"] for t in (await api.get(run_id))["task_instances"]] == ["running"]
    api.advance(6)
    assert [t["state"] for t in (await api.get(run_id))["task_instances"]] == ["succeeded", "running"]


async def test_failed_run_carries_workflow_and_task_errors_in_verbose_view(api: Api) -> None:
    run_id = (await api.start("og-will-fail"))["id"]
    api.advance(21)
    run = await api.get(run_id)
    assert run["state"] == "failed"
    assert run["error"]["attribution"] == "customer"
    failed = [t for t in run["task_instances"] if t["state"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == {
        "attribution": "customer",
        "type": "amperity.workflow.task-instance/table",
        "message": "Table 'Unified_Coalesced' not found",
        "data": None,
    }


@pytest.mark.parametrize(
    ("style", "shown"), [("spaces", "running with failures"), ("hyphens", "running-with-failures")]
)
async def test_warn_run_shows_running_with_failures_then_fails(api: Api, style: str, shown: str) -> None:
    api.vendor.multiword_style = style  # type: ignore[assignment]
    run_id = (await api.start("og-warn"))["id"]
    api.advance(15)
    run = await api.get(run_id)
    assert run["state"] == shown and "error" not in run
    assert [t["state"] for t in run["task_instances"]] == ["failed", "running"]
    api.advance(6)
    assert (await api.get(run_id))["state"] == "failed"


async def test_slow_run_is_still_running_after_an_hour_minus_a_minute(api: Api) -> None:
    run_id = (await api.start("cg-slow"))["id"]
    api.advance(3540)
    assert (await api.get(run_id))["state"] == "running"
    api.advance(61)
    assert (await api.get(run_id))["state"] == "succeeded"


async def test_overview_is_the_default_and_has_only_summary_fields(api: Api) -> None:
    run_id = (await api.start("og-will-fail"))["id"]
    api.advance(21)
    response = await api.request("GET", f"/workflow/runs/{run_id}")
    assert set(response.json()) == OVERVIEW_KEYS
    verbose = await api.get(run_id, "verbose")
    assert OVERVIEW_KEYS | {"task_instances", "error", "run_mode", "range_from", "range_to"} <= set(verbose)
    assert_error(await api.request("GET", f"/workflow/runs/{run_id}", params={"view": "all"}), 400, "view")
    assert_error(await api.request("GET", "/workflow/runs/wf-missing"), 404, "wf-missing")


# -- stop --------------------------------------------------------------------------------------------
async def test_stop_goes_stopping_then_canceled(api: Api) -> None:
    run_id = (await api.start("og-slow"))["id"]
    api.advance(30)
    stopped = (await api.request("POST", f"/workflow/runs/{run_id}/stop")).json()
    assert stopped["state"] == "stopping"
    assert [t["state"] for t in stopped["task_instances"]] == ["stopping"]
    api.advance(2)
    run = await api.get(run_id)
    assert run["state"] == "canceled" and run["ended_at"]
    assert run["error"] == {
        "attribution": "customer",
        "type": "amperity.workflow.workflow.repository.core/cancel",
        "message": "Workflow manually stopped",
    }
    assert [t["state"] for t in run["task_instances"]] == ["canceled"]
    api.advance(3600)
    assert (await api.get(run_id))["state"] == "canceled"
    assert api.vendor.stats()["stops"] == 1


async def test_stopping_a_finished_run_changes_nothing(api: Api) -> None:
    run_id = (await api.start("og-quick"))["id"]
    api.advance(21)
    response = await api.request("POST", f"/workflow/runs/{run_id}/stop")
    assert response.status_code == 200 and response.json()["state"] == "succeeded"
    assert "error" not in response.json()


# -- list --------------------------------------------------------------------------------------------
async def test_list_pages_newest_first_with_next_token_and_total(api: Api) -> None:
    ids = []
    for i in range(5):
        ids.append((await api.start(f"og-{i}"))["id"])
        api.advance(1)
    pages, token = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "with_total": "true"}
        if token:
            params["next_token"] = token
        page = (await api.request("GET", "/workflow/runs", params=params)).json()
        pages.append(page)
        assert page["total"] == 5 and all(set(r) <= OVERVIEW_KEYS for r in page["data"])
        token = page.get("next_token")
        if not token:
            break
    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert [r["id"] for p in pages for r in p["data"]] == ids[::-1]
    no_total = (await api.request("GET", "/workflow/runs")).json()
    assert "total" not in no_total and "next_token" not in no_total and len(no_total["data"]) == 5


async def test_list_filters(api: Api) -> None:
    done = (await api.start("cg-early"))["id"]
    api.advance(30)
    middle = await api.start("og-middle")
    api.advance(5)
    late = (await api.start("og-late"))["id"]

    async def listed(**params: Any) -> list[str]:
        response = await api.request("GET", "/workflow/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert await listed(state="succeeded") == [done]
    assert await listed(state="in-progress") == [middle["id"]]  # any spelling of a multi-word state
    assert await listed(created_from=middle["created_at"]) == [late, middle["id"]]
    assert await listed(created_to=middle["created_at"]) == [done]
    assert await listed(type="courier.group/run") == [done]
    assert await listed(ended_from="2000-01") == [done]
    year = datetime.fromtimestamp(api.server.clock.now(), timezone.utc).year
    assert await listed(created_from=str(year + 1)) == []
    assert len(await listed(created_from=f"{year - 1}-12-31", created_to=str(year + 1))) == 3


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"next_token": "not-a-token"}, "next_token"),
        ({"created_from": "last week"}, "created_from"),
        ({"with_total": "maybe"}, "with_total"),
    ],
)
async def test_list_rejects_bad_parameters(api: Api, params: dict[str, Any], fragment: str) -> None:
    assert_error(await api.request("GET", "/workflow/runs", params=params), 400, fragment)


# -- limits, auth, isolation ----------------------------------------------------------------------------
async def test_more_than_10_requests_in_a_second_get_429(api: Api) -> None:
    api.server.clock.set_speed(1000)  # emulated time racing ahead must not loosen the limit
    codes = [(await api.request("GET", "/workflow/runs", pace=0.01)).status_code for _ in range(10)]
    assert codes == [200] * 10
    assert_error(await api.request("GET", "/workflow/runs", pace=0.01), 429, "Rate limit")
    stats = api.vendor.stats()
    assert stats["rate_limited"] == 1 and stats["max_rps_seen"] == 11
    other_tenant = await api.request("GET", "/workflow/runs", pace=0, headers={"amperity-tenant": "other"})
    assert other_tenant.status_code == 200  # the limit is per tenant
    assert (await api.request("GET", "/workflow/runs", pace=1.0)).status_code == 200


async def test_oauth_token_is_minted_used_and_expires(api: Api) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "amperity-client",
        "client_secret": "amperity-secret",
    }
    minted = await api.client.post("/v0/oauth2/token", data=form, headers={"X-Amperity-Tenant": "acme"})
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.request("GET", "/workflow/runs", headers=bearer)).status_code == 200
    wrong_tenant = {**bearer, "amperity-tenant": "other"}
    assert_error(await api.request("GET", "/workflow/runs", headers=wrong_tenant), 401, "tenant")
    api.advance(3601)
    assert_error(await api.request("GET", "/workflow/runs", headers=bearer), 401, "expired")
    stats = api.vendor.stats()
    assert stats["tokens_minted"] == 1 and stats["minted_tokens"] == [body["access_token"]]


@pytest.mark.parametrize(
    ("form", "headers", "status"),
    [
        ({"client_secret": "wrong"}, {"X-Amperity-Tenant": "acme"}, 401),
        ({"grant_type": "password"}, {"X-Amperity-Tenant": "acme"}, 400),
        ({}, {}, 400),
    ],
)
async def test_oauth_token_refusals(
    api: Api, form: dict[str, str], headers: dict[str, str], status: int
) -> None:
    base = {
        "grant_type": "client_credentials",
        "client_id": "amperity-client",
        "client_secret": "amperity-secret",
    }
    response = await api.client.post("/v0/oauth2/token", data={**base, **form}, headers=headers)
    assert_error(response, status, "")
    assert api.vendor.stats()["tokens_minted"] == 0


async def test_runs_are_invisible_to_other_tenants(api: Api) -> None:
    run_id = (await api.start("og-private"))["id"]
    other = {"amperity-tenant": "globex"}
    assert_error(await api.request("GET", f"/workflow/runs/{run_id}", headers=other), 404, run_id)
    assert_error(await api.request("POST", f"/workflow/runs/{run_id}/stop", headers=other), 404, run_id)
    assert (await api.request("GET", "/workflow/runs", headers=other)).json()["data"] == []
    assert (await api.get(run_id))["state"] == "scheduled"


async def test_reset_clears_runs_tokens_and_counters(api: Api) -> None:
    await api.start("og-gone")
    assert (await api.client.post("http://emu/_emulator/reset")).status_code == 200
    stats = api.vendor.stats()
    assert stats == {
        "tokens_minted": 0,
        "runs_created": 0,
        "status_polls": 0,
        "stops": 0,
        "rate_limited": 0,
        "runs": 0,
        "max_rps_seen": 0,
        "minted_tokens": [],
    }
