"""Run watchers: the cursor rule (``core/watch.py``) as pure functions, and the watcher engine
(``triggers/watch.py``) driven as the triggerer drives it, against the Habu and Tableflow emulators
(real HTTP, the hooks' own listing calls); Amperity and Activepieces are test_watch_listings.py.
The real-Airflow path (AssetWatcher, scheduler,
triggerer restarts) is tests/e2e/test_watchers.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from watching import collect

from airflow_provider_flowruns.core import watch
from airflow_provider_flowruns.core.errors import FlowRunsConfigError, UnexpectedResponse
from airflow_provider_flowruns.core.runs import RunState
from airflow_provider_flowruns.core.watch import ListedRun
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.triggers import watch as watch_triggers
from airflow_provider_flowruns.triggers.watch import (
    AmperityWorkflowWatcher,
    FlowRunWatcher,
    HabuFlowRunWatcher,
    HabuQuestionRunWatcher,
    TableflowFlowRunWatcher,
    wanted_states,
)

SUCCEEDED = frozenset({RunState.SUCCEEDED})


def run(run_id: str, state: RunState, created: float, finished: float | None = None) -> ListedRun:
    return ListedRun(run_id, state, state.value, created, finished)


# -- the rule ------------------------------------------------------------------------------------------
def test_first_poll_fires_nothing_that_had_finished_and_later_polls_fire_each_run_once():
    listed = [run("old", RunState.SUCCEEDED, 100, 150), run("going", RunState.RUNNING, 200)]
    first = watch.plan({}, listed, wanted=SUCCEEDED, since=0, now=1000, owner="a")
    assert first.fire == []
    assert first.record["done"] == {"old": 100.0} and first.record["horizon"] == 200.0
    assert first.record["deployed_at"] == 1000

    listed = [run("old", RunState.SUCCEEDED, 100, 150), run("going", RunState.SUCCEEDED, 200, 300)]
    second = watch.plan(first.record, listed, wanted=SUCCEEDED, since=0, now=1100, owner="a")
    assert [r.run_id for r in second.fire] == ["going"]
    assert second.record["pending"] == {"going": [200.0, 1100, "a"]}
    third = watch.plan(second.record, listed, wanted=SUCCEEDED, since=0, now=1200, owner="a")
    assert third.fire == []  # pending, ours: not again
    confirmed = watch.confirm(third.record, ["going"], "a")
    assert confirmed["pending"] == {} and confirmed["done"]["going"] == 200.0
    assert watch.plan(confirmed, listed, wanted=SUCCEEDED, since=0, now=1300, owner="b").fire == []


def test_lookback_fires_runs_that_finished_within_it_at_first_deployment():
    listed = [run("recent", RunState.SUCCEEDED, 100, 950), run("older", RunState.SUCCEEDED, 50, 800)]
    first = watch.plan({}, listed, wanted=SUCCEEDED, since=0, now=1000, owner="a", lookback=100)
    assert [r.run_id for r in first.fire] == ["recent"]
    assert "older" in first.record["done"]


def test_unwanted_ends_never_fire_and_the_wanted_ones_do():
    deployed = watch.plan({}, [], wanted=SUCCEEDED, since=0, now=1, owner="a").record
    listed = [
        run("f", RunState.FAILED, 10, 20),
        run("c", RunState.CANCELLED, 11, 21),
        run("s", RunState.SUCCEEDED, 12, 22),
    ]
    failed = frozenset({RunState.FAILED})
    assert [
        r.run_id for r in watch.plan(deployed, listed, wanted=failed, since=0, now=2, owner="a").fire
    ] == ["f"]
    terminal = frozenset(watch_triggers.STATE_SETS["terminal"])
    fired = watch.plan(deployed, listed, wanted=terminal, since=0, now=2, owner="a").fire
    assert sorted(r.run_id for r in fired) == ["c", "f", "s"]


def test_a_rivals_unconfirmed_event_is_left_alone_until_it_times_out_then_fired_again():
    deployed = watch.plan({}, [], wanted=SUCCEEDED, since=0, now=0, owner="a").record
    listed = [run("r", RunState.SUCCEEDED, 10, 20)]
    by_a = watch.plan(deployed, listed, wanted=SUCCEEDED, since=0, now=100, owner="a")
    assert [r.run_id for r in by_a.fire] == ["r"]
    # b (another triggerer, or a's restart) sees a's pending event while a may still confirm it
    early = watch.plan(
        by_a.record, listed, wanted=SUCCEEDED, since=0, now=150, owner="b", pending_timeout=120
    )
    assert early.fire == [] and early.refired == []
    late = watch.plan(by_a.record, listed, wanted=SUCCEEDED, since=0, now=300, owner="b", pending_timeout=120)
    assert [r.run_id for r in late.fire] == ["r"] and late.refired == ["r"]
    assert late.record["pending"]["r"][2] == "b"
    # a's late confirmation does not take b's entry
    assert watch.confirm(late.record, ["r"], "a")["pending"]["r"][2] == "b"


def test_the_horizon_waits_for_the_oldest_run_still_going_and_never_moves_back():
    deployed = watch.plan({}, [], wanted=SUCCEEDED, since=0, now=0, owner="a").record
    listed = [run("long", RunState.RUNNING, 100), run("quick", RunState.SUCCEEDED, 200, 210)]
    one = watch.plan(deployed, listed, wanted=SUCCEEDED, since=0, now=1, owner="a")
    assert one.record["horizon"] == 100.0
    listed = [run("long", RunState.SUCCEEDED, 100, 400), run("quick", RunState.SUCCEEDED, 200, 210)]
    two = watch.plan(one.record, listed, wanted=SUCCEEDED, since=0, now=2, owner="a")
    assert [r.run_id for r in two.fire] == ["long"] and two.record["horizon"] == 200.0
    stale = watch.plan(
        two.record, [run("x", RunState.RUNNING, 150)], wanted=SUCCEEDED, since=0, now=3, owner="a"
    )
    assert stale.record["horizon"] == 200.0


def test_a_scan_cut_short_keeps_the_horizon_and_old_entries_are_forgotten_past_the_overlap():
    record = {
        "v": 1,
        "deployed_at": 0,
        "horizon": 100.0,
        "done": {"ancient": 1.0, "kept": 90.0},
        "pending": {},
    }
    cut = watch.plan(
        record,
        [run("new", RunState.RUNNING, 5000)],
        wanted=SUCCEEDED,
        since=0,
        now=1,
        owner="a",
        complete=False,
        overlap=50,
    )
    assert cut.record["horizon"] == 100.0 and set(cut.record["done"]) == {"kept"}
    whole = watch.plan(
        record, [run("new", RunState.RUNNING, 5000)], wanted=SUCCEEDED, since=0, now=1, owner="a", overlap=50
    )
    assert whole.record["horizon"] == 5000.0 and whole.record["done"] == {}


def test_states_shorthands_and_their_errors():
    assert wanted_states("succeeded") == ["SUCCEEDED"]
    assert wanted_states("terminal") == ["CANCELLED", "FAILED", "SUCCEEDED"]
    assert wanted_states(["failed", "CANCELLED"]) == ["CANCELLED", "FAILED"]
    with pytest.raises(FlowRunsConfigError, match="'paused' is not a state a run ends in"):
        wanted_states("paused")
    with pytest.raises(FlowRunsConfigError, match="'done' is not one of"):
        wanted_states("done")


def test_vendor_watchers_serialize_as_the_one_engine_with_plain_kwargs():
    trigger = HabuFlowRunWatcher(cleanroom_id="cr-acme", flow_id="flow-weekly", states="terminal")
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_flowruns.triggers.watch.FlowRunWatcher"
    assert kwargs["hook_class_path"] == "airflow_provider_flowruns.hooks.habu.HabuHook"
    assert kwargs["hook_kwargs"] == {"conn_id": "habu_default"}
    assert kwargs["scope"] == {"cleanroom_id": "cr-acme", "flow_id": "flow-weekly"}
    rebuilt = FlowRunWatcher(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (path, kwargs)
    # the cursor name does not depend on tuning knobs, so changing the interval keeps the cursor
    assert (
        HabuFlowRunWatcher(
            cleanroom_id="cr-acme", flow_id="flow-weekly", states="terminal", poll_interval=3600
        ).variable
        == trigger.variable
    )
    assert HabuFlowRunWatcher(cleanroom_id="cr-acme", flow_id="flow-weekly").variable != trigger.variable
    with pytest.raises(FlowRunsConfigError, match="flow_id is required"):
        HabuFlowRunWatcher(cleanroom_id="cr-acme", flow_id="")
    with pytest.raises(FlowRunsConfigError, match="workflow_type, name or both"):
        AmperityWorkflowWatcher()


# -- the engine against the emulators ------------------------------------------------------------------
CR = "cr-acme"
NODES = {"6f1c1b7e-0001-4000-8000-000000000001": {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}}


@pytest.fixture(scope="module")
def habu_server():
    with EmulatorProcess(["habu"], speed=600) as emu:
        yield emu


@pytest.fixture
def habu(habu_server, monkeypatch, tmp_path):
    from airflow_provider_flowruns.core import shared_tokens
    from airflow_provider_flowruns.hooks import habu as habu_hooks

    habu_server.control("POST", "reset")
    conn = {
        "conn_type": "habu",
        "host": habu_server.url("habu", "/v1"),
        "login": "habu-client",
        "password": "habu-secret",
        "extra": {"emulator_time_scale": 600},
    }
    monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())
    monkeypatch.setattr(habu_hooks.CREATE_BUDGET, "_memory", {})
    monkeypatch.setattr(watch_triggers, "_LOCAL", {})
    return habu_server


def habu_stats(emu) -> dict[str, Any]:
    return emu.stats()["vendors"]["habu"]


async def finished(run_id: str) -> None:
    from airflow_provider_flowruns.hooks.habu import HabuHook

    hook = HabuHook(conn_id="habu_default")
    for _ in range(120):
        if (await asyncio.to_thread(hook.get_flow_run, CR, run_id))["status"] == "COMPLETED":
            return
        await asyncio.sleep(1)
    raise AssertionError(f"run {run_id} did not complete at the emulator")


def start_habu_run(name: str, flow: str = "flow-weekly") -> str:
    from airflow_provider_flowruns.hooks.habu import HabuHook

    return str(HabuHook(conn_id="habu_default").create_flow_run(CR, flow, name=name, nodes=NODES)["id"])


async def test_habu_watcher_fires_once_per_finished_run_started_outside_airflow(habu):
    before = start_habu_run("before-deploy")  # finishes before the watcher's first look
    await finished(before)  # completed at the vendor before the watcher's first look
    trigger = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-weekly", confirm_seconds=0.5)
    first = await collect(trigger, until=lambda e: False, timeout=4)
    assert first == []  # the earlier run did not fire
    started = [start_habu_run(f"partner-{i}") for i in range(2)]
    events = await collect(trigger, until=lambda e: len(e) >= 2, timeout=90)
    assert sorted(e["run_id"] for e in events) == sorted(started)
    for event in events:
        assert event["vendor"] == "LiveRamp Clean Room" and event["status"] == "succeeded"
        assert event["vendor_status"] == "COMPLETED"
        assert event["run_url"] == f"https://app.habu.com/clean-rooms/{CR}/flows/runs/{event['run_id']}"
        assert event["created_at"].endswith("Z") and event["finished_at"] > event["created_at"]
    # A new instance (a restarted triggerer) with the same cursor fires nothing more.
    again = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-weekly", confirm_seconds=0.5)
    assert await collect(again, until=lambda e: False, timeout=5) == []
    assert before not in [e["run_id"] for e in events]
    stats = habu_stats(habu)
    assert stats["tokens_minted"] == 1  # one token for the creates and every listing


async def test_a_failed_run_fires_only_a_watcher_that_asked_for_failures(habu):
    ok = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-fail", confirm_seconds=0.5)
    failed = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-fail", states="failed", confirm_seconds=0.5)
    assert await collect(ok, until=lambda e: False, timeout=3) == []
    assert await collect(failed, until=lambda e: False, timeout=3) == []
    run_id = start_habu_run("broken", flow="flow-fail")
    events = await collect(failed, until=lambda e: len(e) >= 1, timeout=60)
    assert [(e["run_id"], e["status"], e["vendor_status"]) for e in events] == [(run_id, "failed", "FAILED")]
    assert await collect(ok, until=lambda e: False, timeout=4) == []


async def test_a_vendor_outage_delays_the_event_and_loses_nothing(habu):
    trigger = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-weekly", confirm_seconds=0.5)
    assert await collect(trigger, until=lambda e: False, timeout=3) == []
    listing = "cleanroom-flows/flow-weekly/cleanroom-flow-runs$"
    habu.add_faults({"kind": "status", "status": 503, "path": listing, "method": "GET", "times": 1000})
    run_id = start_habu_run("during-outage")
    assert await collect(trigger, until=lambda e: False, timeout=10) == []  # listing fails: nothing
    assert habu.stats()["faults_injected"]["status"] >= 1  # the listing really was refused
    habu.control("DELETE", "faults")
    events = await collect(trigger, until=lambda e: len(e) >= 1, timeout=90)
    assert [e["run_id"] for e in events] == [run_id]


async def test_an_answer_the_watcher_cannot_read_fires_nothing_and_says_which_field(habu, caplog):
    trigger = HabuFlowRunWatcher(cleanroom_id=CR, flow_id="flow-weekly", max_pages=1)
    from airflow_provider_flowruns.hooks.habu import HabuHook

    hook = HabuHook()
    with pytest.raises(UnexpectedResponse, match=r"cleanRoomFlowRuns\[0\]\.submittedAt: Field required"):
        hook.read_watch_page(
            trigger.kind,
            trigger.scope,
            {"cleanRoomFlowRuns": [{"id": "x", "status": "COMPLETED"}]},
            page=None,
        )


# -- Habu question runs: a bare array per page, filtered from the day of ``since`` -------------------------
DATES = {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}


async def question_ended(run_id: str) -> str:
    from airflow_provider_flowruns.hooks.habu import HabuHook

    hook = HabuHook(conn_id="habu_default")
    for _ in range(120):
        status = str((await asyncio.to_thread(hook.get_question_run, run_id))["status"])
        if status in ("COMPLETED", "FAILED"):
            return status
        await asyncio.sleep(1)
    raise AssertionError(f"question run {run_id} did not end at the emulator")


async def test_habu_question_watcher_fires_each_finished_question_run_once(habu):
    from airflow_provider_flowruns.hooks.habu import HabuHook

    hook = HabuHook(conn_id="habu_default")
    earlier = hook.create_question_run("crq-reach", name="before-deploy", parameters=DATES)["id"]
    assert await question_ended(str(earlier)) == "COMPLETED"
    trigger = HabuQuestionRunWatcher(question_id="crq-reach", cleanroom_id=CR, confirm_seconds=0.5)
    assert await collect(trigger, until=lambda e: False, timeout=3) == []  # the earlier run: no event
    started = [
        str(hook.create_question_run("crq-reach", name=f"partner-{i}", parameters=DATES)["id"])
        for i in range(2)
    ]
    hook.create_question_run("crq-partner", name="another-question", parameters=DATES)
    events = await collect(trigger, until=lambda e: len(e) >= 2, timeout=90)
    assert sorted(e["run_id"] for e in events) == sorted(started)
    for event in events:
        assert event["kind"] == "question_run" and event["status"] == "succeeded"
        assert event["vendor_status"] == "COMPLETED"
        assert event["scope"] == {"question_id": "crq-reach", "cleanroom_id": CR}
        assert event["run_url"] == f"https://app.habu.com/clean-rooms/{CR}/questions/runs/{event['run_id']}"
    again = HabuQuestionRunWatcher(question_id="crq-reach", cleanroom_id=CR, confirm_seconds=0.5)
    assert await collect(again, until=lambda e: False, timeout=4) == []
    assert habu_stats(habu)["tokens_minted"] == 1


async def test_a_failed_question_run_fires_only_a_question_watcher_that_asked_for_failures(habu):
    from airflow_provider_flowruns.hooks.habu import HabuHook

    ok = HabuQuestionRunWatcher(question_id="crq-fail", confirm_seconds=0.5)
    failed = HabuQuestionRunWatcher(question_id="crq-fail", states="failed", confirm_seconds=0.5)
    assert await collect(ok, until=lambda e: False, timeout=3) == []
    assert await collect(failed, until=lambda e: False, timeout=3) == []
    run_id = str(HabuHook().create_question_run("crq-fail", name="broken", parameters=DATES)["id"])
    assert await question_ended(run_id) == "FAILED"
    events = await collect(failed, until=lambda e: len(e) >= 1, timeout=60)
    assert [(e["run_id"], e["status"], e["vendor_status"]) for e in events] == [(run_id, "failed", "FAILED")]
    assert events[0]["run_url"] is None  # no clean room named: no guessed address
    assert await collect(ok, until=lambda e: False, timeout=4) == []


# -- Tableflow: newest first, offset pages, Unix timestamps ----------------------------------------------
@pytest.fixture(scope="module")
def tableflow_server():
    with EmulatorProcess(["tableflow"], speed=20) as emu:
        yield emu


@pytest.fixture
def tableflow(tableflow_server, monkeypatch):
    tableflow_server.control("POST", "reset")
    conn = {
        "conn_type": "tableflow",
        "host": tableflow_server.url("tableflow", "/v2"),
        "password": "tableflow-key",
        "extra": {"emulator_time_scale": 20},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TABLEFLOW_DEFAULT", json.dumps(conn))
    monkeypatch.setattr(watch_triggers, "_LOCAL", {})
    return tableflow_server


async def test_tableflow_watcher_reads_newest_first_pages_and_fires_each_finished_upload_once(
    tableflow, tmp_path
):
    from airflow_provider_flowruns.hooks.tableflow import TableflowHook

    hook = TableflowHook()
    flow = hook.list_flows()[0]
    key = flow["file_input_config"]["file_fields"][0]["key"]
    document = tmp_path / "po.pdf"
    document.write_bytes(b"%PDF-1.4\n" + b"0" * 2000)
    trigger = TableflowFlowRunWatcher(flow_id=flow["id"], confirm_seconds=0.5)
    assert await collect(trigger, until=lambda e: False, timeout=3) == []
    started = [
        str(hook.run_flow(flow["id"], {key: str(document)}, name=f"upload-{i}")["id"]) for i in range(2)
    ]
    events = await collect(trigger, until=lambda e: len(e) >= 2, timeout=120)
    assert sorted(e["run_id"] for e in events) == sorted(started)
    assert {e["vendor_status"] for e in events} == {"completed"}
    assert await collect(TableflowFlowRunWatcher(flow_id=flow["id"]), until=lambda e: False, timeout=3) == []
