"""The Amperity and Activepieces run watchers against their emulators (real HTTP, the hooks' own
listing calls): more runs than one listing page holds, so every event past the first page proves the
watcher followed the vendor's cursor (Amperity's ``next_token``, Activepieces' seek cursor ``next``);
runs that end in a state nobody asked for; and a listing outage that delays events and loses none.

Runs are started as a vendor's own scheduler, webhook or UI would start them: straight at the
emulator (Activepieces' public webhook, Amperity's start call), never through an operator.
The engine's rule itself is tested in test_watch.py; the real-Airflow path in tests/e2e/.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from watching import collect, never

from airflow_provider_flowruns.testing import activepieces_app as ap
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.triggers import watch as watch_triggers
from airflow_provider_flowruns.triggers.watch import (
    ActivepiecesFlowRunWatcher,
    AmperityWorkflowWatcher,
    FlowRunWatcher,
)

#: Emulated seconds per real second; each connection says the same (``emulator_time_scale``).
SPEED = 20
#: More runs than the hooks' watch page (100, the vendors' maximum ``limit``): the oldest five are
#: on the second page only.
MANY = 105
#: Quick retries for the outage tests, so one failed listing (six attempts) takes a second, not 31.
FAST = {"retry_base_delay": 0.05, "retry_max_delay": 0.2}
#: Listing attempts refused in a row: (1 attempt + 5 retries) x 2, so two polls fail outright.
OUTAGE = 12


def fast_retries(trigger: FlowRunWatcher) -> FlowRunWatcher:
    """The watcher as the triggerer rebuilds it from its serialized kwargs, with quick retries."""
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_flowruns.triggers.watch.FlowRunWatcher"
    kwargs["hook_kwargs"] = {**kwargs["hook_kwargs"], **FAST}
    return FlowRunWatcher(**kwargs)


# -- Amperity: next_token cursor, created_from, type filter, name told apart client-side ------------------
TENANT = "acme"
AMPERITY_RUN_URL = "https://app.amperity.com/#/{tenant}/workflows/{run_id}"
COURIER = "courier.group/run"


@pytest.fixture(scope="module")
def amperity_server():
    with EmulatorProcess(["amperity"], speed=SPEED) as emu:
        yield emu


@pytest.fixture
def amperity(amperity_server, monkeypatch):
    amperity_server.control("POST", "reset")
    conn = {
        "conn_type": "amperity",
        "host": amperity_server.url("amperity", "/api"),
        "password": "amperity-token",
        "extra": {"tenant": TENANT, "emulator_time_scale": SPEED, "ui_run_url_template": AMPERITY_RUN_URL},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AMPERITY_DEFAULT", json.dumps(conn))
    monkeypatch.setattr(watch_triggers, "_LOCAL", {})
    return amperity_server


class AmperityConsole:
    """Amperity's API as its own scheduler or a user in its UI would drive it (not our hook), kept
    under the documented 10 requests/second."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.base = emu.url("amperity", "/api")
        self.headers = {
            "amperity-tenant": TENANT,
            "api-version": "2024-04-01",
            "authorization": "Bearer amperity-token",
        }
        self._last = 0.0

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        time.sleep(max(0.0, self._last + 0.15 - time.monotonic()))  # about 7 a second
        self._last = time.monotonic()
        response = httpx.request(method, f"{self.base}/{path}", headers=self.headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def start(self, config_id: str) -> str:
        return str(self.call("POST", "workflow/runs", json={"config_id": config_id})["id"])

    def state(self, run_id: str) -> str:
        return str(self.call("GET", f"workflow/runs/{run_id}")["state"])

    def listed(self, workflow_type: str) -> dict[str, str]:
        """Run id -> state of every run of the type, page after page as the docs describe."""
        out: dict[str, str] = {}
        params: dict[str, Any] = {"limit": 100, "type": workflow_type}
        while True:
            page = self.call("GET", "workflow/runs", params=params)
            out.update({w["id"]: w["state"] for w in page["data"]})
            if not page.get("next_token"):
                return out
            params["next_token"] = page["next_token"]

    def wait_ended(self, run_ids: list[str], workflow_type: str = COURIER, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.listed(workflow_type)
            going = [r for r in run_ids if states.get(r) not in ("succeeded", "failed", "canceled")]
            if not going:
                return
            time.sleep(0.5)
        raise AssertionError(f"runs that never ended at the emulator: {going}")


async def test_amperity_watcher_follows_next_token_and_fires_each_finished_run_once(amperity):
    console = AmperityConsole(amperity)
    trigger = AmperityWorkflowWatcher(
        workflow_type=COURIER, name="Courier group nightly", poll_interval=10, confirm_seconds=0.5
    )
    assert await collect(trigger, until=never, timeout=3) == []  # deployed: nothing had run
    # The test's own calls run in a thread: the event loop stays free, as a triggerer's would be.
    started = await asyncio.to_thread(lambda: [console.start("cg-nightly") for _ in range(MANY)])
    others = await asyncio.to_thread(lambda: [console.start("cg-weekly") for _ in range(3)])  # same type
    await asyncio.to_thread(console.start, "og-hourly")  # another workflow type altogether
    await asyncio.to_thread(console.wait_ended, started + others)

    # The vendor's own first page of this listing: 100 runs, newest first, and a next_token.
    first = await asyncio.to_thread(
        console.call, "GET", "workflow/runs", params={"limit": 100, "type": COURIER}
    )
    assert len(first["data"]) == 100 and first["next_token"]
    assert started[0] not in {w["id"] for w in first["data"]}  # the oldest is on page 2 only

    events = await collect(trigger, until=lambda e: len(e) >= MANY, timeout=180)
    fired = [e["run_id"] for e in events]
    assert sorted(fired) == sorted(started)  # each once, page 2's too; no other group, no other type
    for event in events:
        assert event["vendor"] == "Amperity" and event["kind"] == "run"
        assert event["status"] == "succeeded" and event["vendor_status"] == "succeeded"
        assert event["run_name"] == "Courier group nightly"
        assert event["run_url"] == AMPERITY_RUN_URL.format(tenant=TENANT, run_id=event["run_id"])
        assert event["created_at"] < event["finished_at"]
    assert await collect(trigger, until=never, timeout=4) == []  # nothing more, restarted or not
    assert amperity.stats()["vendors"]["amperity"]["rate_limited"] == 0


async def test_amperity_runs_that_fail_or_are_stopped_fire_only_watchers_that_asked(amperity):
    console = AmperityConsole(amperity)

    def watcher(states: str) -> AmperityWorkflowWatcher:
        return AmperityWorkflowWatcher(
            workflow_type=COURIER, states=states, poll_interval=10, confirm_seconds=0.5
        )

    succeeded, failed, cancelled, terminal = (
        watcher(s) for s in ("succeeded", "failed", "cancelled", "terminal")
    )
    for trigger in (succeeded, failed, cancelled, terminal):
        assert await collect(trigger, until=never, timeout=2) == []
    ok, broken, stopped = [
        await asyncio.to_thread(console.start, config)
        for config in ("cg-nightly", "cg-nightly-fail", "cg-slow")
    ]
    # a user stops the slow one: stopping, then canceled
    await asyncio.to_thread(console.call, "POST", f"workflow/runs/{stopped}/stop")
    await asyncio.to_thread(console.wait_ended, [ok, broken, stopped])
    states = [await asyncio.to_thread(console.state, r) for r in (ok, broken, stopped)]
    assert states == ["succeeded", "failed", "canceled"]

    def seen(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((e["run_id"], e["status"], e["vendor_status"]) for e in events)

    assert seen(await collect(succeeded, until=lambda e: len(e) >= 1, timeout=60)) == [
        (ok, "succeeded", "succeeded")
    ]
    assert seen(await collect(failed, until=lambda e: len(e) >= 1, timeout=60)) == [
        (broken, "failed", "failed")
    ]
    assert seen(await collect(cancelled, until=lambda e: len(e) >= 1, timeout=60)) == [
        (stopped, "cancelled", "canceled")
    ]
    assert seen(await collect(terminal, until=lambda e: len(e) >= 3, timeout=60)) == sorted(
        [(ok, "succeeded", "succeeded"), (broken, "failed", "failed"), (stopped, "cancelled", "canceled")]
    )
    # Each watcher decided every run in the poll that fired: the others never fire it later.
    for trigger in (succeeded, failed, cancelled):
        assert await collect(trigger, until=never, timeout=3) == []


async def test_amperity_listing_outage_delays_the_event_and_loses_nothing(amperity):
    console = AmperityConsole(amperity)
    trigger = fast_retries(
        AmperityWorkflowWatcher(workflow_type=COURIER, poll_interval=10, confirm_seconds=0.5)
    )
    assert await collect(trigger, until=never, timeout=3) == []
    amperity.add_faults(
        {
            "kind": "status",
            "status": 503,
            "path": r"/amperity/api/workflow/runs$",
            "method": "GET",
            "times": OUTAGE,
        }
    )
    run_id = await asyncio.to_thread(console.start, "cg-nightly")
    events = await collect(trigger, until=lambda e: len(e) >= 1, timeout=120)
    assert [e["run_id"] for e in events] == [run_id]
    # Every refusal was met, and one listing call makes six attempts at most: at least two whole
    # polls failed, and the same run() went on to fire the run.
    assert amperity.stats()["faults_injected"] == {"status": OUTAGE}
    assert await collect(trigger, until=never, timeout=3) == []


# -- Activepieces: seek cursor ``next``, createdAfter, flowId filter -------------------------------------
@pytest.fixture(scope="module")
def ap_server():
    with EmulatorProcess(["activepieces"], speed=SPEED) as emu:
        yield emu


@pytest.fixture
def activepieces(ap_server, monkeypatch):
    ap_server.control("POST", "reset")
    conn = {
        "conn_type": "activepieces",
        "host": ap_server.url("activepieces", "/api"),
        "password": ap.API_KEY,
        "extra": {"project_id": ap.PROJECT_ID, "emulator_time_scale": SPEED},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ACTIVEPIECES_DEFAULT", json.dumps(conn))
    monkeypatch.setattr(watch_triggers, "_LOCAL", {})
    return ap_server


def fire_webhook(emu: EmulatorProcess, flow_id: str, i: int) -> None:
    """What starts an Activepieces run in the wild: its public webhook (no run id comes back)."""
    response = httpx.post(emu.url("activepieces", f"/api/v1/webhooks/{flow_id}"), json={"n": i}, timeout=30)
    assert response.status_code == 200 and response.json() == {}


def ap_runs(emu: EmulatorProcess, flow_id: str) -> dict[str, str]:
    """Run id -> status of every run of the flow, read through the vendor's own listing."""
    out: dict[str, str] = {}
    cursor = None
    while True:
        params = {"projectId": ap.PROJECT_ID, "flowId": flow_id, "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(
            emu.url("activepieces", "/api/v1/flow-runs"),
            params=params,
            headers={"authorization": f"Bearer {ap.API_KEY}"},
            timeout=30,
        ).json()
        out.update({r["id"]: r["status"] for r in page["data"]})
        cursor = page["next"]
        if not cursor:
            return out


async def wait_ap(
    emu: EmulatorProcess, flow_id: str, count: int, ended: set[str], timeout: float = 120
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = await asyncio.to_thread(ap_runs, emu, flow_id)
        if len(runs) >= count and all(s in ended for s in runs.values()):
            return runs
        await asyncio.sleep(0.5)
    raise AssertionError(f"runs of {flow_id} never ended in {ended}: {runs}")


async def test_activepieces_watcher_follows_the_seek_cursor_and_fires_each_finished_run_once(activepieces):
    trigger = ActivepiecesFlowRunWatcher(flow_id=ap.FLOW_OK, poll_interval=5, confirm_seconds=0.5)
    assert await collect(trigger, until=never, timeout=3) == []
    for i in range(MANY):
        await asyncio.to_thread(fire_webhook, activepieces, ap.FLOW_OK, i)
    await asyncio.to_thread(fire_webhook, activepieces, ap.FLOW_FLAKY, 0)  # another flow
    runs = await wait_ap(activepieces, ap.FLOW_OK, MANY, {"SUCCEEDED"})
    assert len(runs) == MANY

    first = await asyncio.to_thread(
        httpx.get,
        activepieces.url("activepieces", "/api/v1/flow-runs"),
        params={"projectId": ap.PROJECT_ID, "flowId": ap.FLOW_OK, "limit": "100"},
        headers={"authorization": f"Bearer {ap.API_KEY}"},
    )
    first = first.json()
    assert len(first["data"]) == 100 and first["next"] and first["previous"] is None

    events = await collect(trigger, until=lambda e: len(e) >= MANY, timeout=180)
    assert sorted(e["run_id"] for e in events) == sorted(runs)  # each once, the second page's too
    for event in events:
        assert event["vendor"] == "Activepieces" and event["status"] == "succeeded"
        assert event["vendor_status"] == "SUCCEEDED" and event["scope"] == {"flow_id": ap.FLOW_OK}
        base = activepieces.url("activepieces")
        assert event["run_url"] == f"{base}/projects/{ap.PROJECT_ID}/runs/{event['run_id']}"
        assert event["created_at"] < event["finished_at"]
    assert await collect(trigger, until=never, timeout=3) == []
    listings = activepieces.stats()["vendors"]["activepieces"]["list_calls"]
    assert listings >= 2  # the watcher's pages (and the test's own reads)


async def test_activepieces_failed_and_cancelled_runs_fire_only_watchers_that_asked(activepieces):
    ok_flaky = ActivepiecesFlowRunWatcher(flow_id=ap.FLOW_FLAKY, poll_interval=5, confirm_seconds=0.5)
    failed_flaky = ActivepiecesFlowRunWatcher(
        flow_id=ap.FLOW_FLAKY, states="failed", poll_interval=5, confirm_seconds=0.5
    )
    ok_backlog = ActivepiecesFlowRunWatcher(flow_id=ap.FLOW_BACKLOG, poll_interval=5, confirm_seconds=0.5)
    cancelled_backlog = ActivepiecesFlowRunWatcher(
        flow_id=ap.FLOW_BACKLOG, states="cancelled", poll_interval=5, confirm_seconds=0.5
    )
    watchers = (ok_flaky, failed_flaky, ok_backlog, cancelled_backlog)
    for trigger in watchers:
        assert await collect(trigger, until=never, timeout=2) == []
    await asyncio.to_thread(
        fire_webhook, activepieces, ap.FLOW_FLAKY, 1
    )  # fails at its CRM step (first attempt)
    await asyncio.to_thread(fire_webhook, activepieces, ap.FLOW_BACKLOG, 1)  # stays QUEUED for an hour...
    queued = await wait_ap(activepieces, ap.FLOW_BACKLOG, 1, {"QUEUED"})
    cancel = await asyncio.to_thread(  # ...until someone cancels it in the UI
        httpx.post,
        activepieces.url("activepieces", "/api/v1/flow-runs/cancel"),
        json={"projectId": ap.PROJECT_ID, "flowRunIds": list(queued)},
        headers={"authorization": f"Bearer {ap.API_KEY}"},
    )
    assert cancel.status_code == 200
    flaky = await wait_ap(activepieces, ap.FLOW_FLAKY, 1, {"FAILED"})
    await wait_ap(activepieces, ap.FLOW_BACKLOG, 1, {"CANCELED"})

    failed_events = await collect(failed_flaky, until=lambda e: len(e) >= 1, timeout=60)
    assert [(e["run_id"], e["status"], e["vendor_status"]) for e in failed_events] == [
        (next(iter(flaky)), "failed", "FAILED")
    ]
    cancelled_events = await collect(cancelled_backlog, until=lambda e: len(e) >= 1, timeout=60)
    assert [(e["run_id"], e["status"], e["vendor_status"]) for e in cancelled_events] == [
        (next(iter(queued)), "cancelled", "CANCELED")
    ]
    for trigger in watchers:  # the default (succeeded) watchers saw both ends and fired neither
        assert await collect(trigger, until=never, timeout=3) == []


async def test_activepieces_listing_outage_delays_the_event_and_loses_nothing(activepieces):
    trigger = fast_retries(
        ActivepiecesFlowRunWatcher(flow_id=ap.FLOW_OK, poll_interval=5, confirm_seconds=0.5)
    )
    assert await collect(trigger, until=never, timeout=3) == []
    activepieces.add_faults(
        {
            "kind": "status",
            "status": 503,
            "path": r"/activepieces/api/v1/flow-runs$",
            "method": "GET",
            "times": OUTAGE,
        }
    )
    await asyncio.to_thread(fire_webhook, activepieces, ap.FLOW_OK, 1)
    events = await collect(trigger, until=lambda e: len(e) >= 1, timeout=120)
    assert activepieces.stats()["faults_injected"] == {"status": OUTAGE}
    runs = await asyncio.to_thread(ap_runs, activepieces, ap.FLOW_OK)
    assert [e["run_id"] for e in events] == list(runs)
    assert await collect(trigger, until=never, timeout=3) == []
