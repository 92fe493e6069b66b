"""The base hook against a live emulator: retries, Retry-After, create safety, errors, auth, clients."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import httpx
import pytest
import respx
from conftest import demo_stats

from airflow_provider_flowruns.core.clients import REGISTRY
from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import USER_AGENT, Call
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.demo import DemoHook

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}


def _requests(emu, key):
    return emu.stats()["requests"].get(key, 0)


def test_get_is_retried_through_server_errors_drops_and_garbage(demo):
    hook = DemoHook(**FAST)
    ref = hook.start_run("r", duration=100)
    demo.add_faults(
        {"kind": "status", "status": 503, "path": "/runs/run_", "method": "GET"},
        {"kind": "status", "status": 502, "path": "/runs/run_", "method": "GET"},
        {"kind": "drop", "path": "/runs/run_", "method": "GET"},
        {"kind": "malformed", "path": "/runs/run_", "method": "GET"},
    )
    status = hook.get_status(ref)
    assert status.state in {RunState.QUEUED, RunState.RUNNING}
    assert demo.stats()["faults_injected"] == {"status": 2, "drop": 1, "malformed": 1}


def test_retry_after_is_honoured(demo, capfd):
    hook = DemoHook(retry_base_delay=0.01, retry_max_delay=2.0)
    demo.add_faults({"kind": "status", "status": 429, "retry_after": 1, "path": "/runs$", "method": "GET"})
    started = time.monotonic()
    hook.call(Call("GET", "runs"))
    waited = time.monotonic() - started
    assert "HTTP 429; retry 1/5 in 1.0s" in capfd.readouterr().out
    # The vendor's second is slept, not only logged: without Retry-After the back-off is 0.01 s.
    # A lower bound only, which a loaded machine cannot break.
    assert waited >= 1.0
    assert demo.stats()["faults_injected"] == {"status": 1}


def test_retries_give_up_with_the_vendor_error(demo):
    hook = DemoHook(max_retries=2, **FAST)
    demo.add_faults({"kind": "status", "status": 500, "path": "/runs$", "times": 5, "message": "db down"})
    with pytest.raises(FlowRunsApiError) as info:
        hook.call(Call("GET", "runs"))
    assert info.value.status == 500 and "db down" in str(info.value)
    assert _requests(demo, "GET /demo/v1/runs") == 0  # all three attempts were answered by the fault
    assert demo.stats()["faults_injected"]["status"] == 3


def test_create_is_not_repeated_after_an_ambiguous_failure(demo):
    hook = DemoHook(**FAST)
    demo.add_faults({"kind": "status", "status": 503, "path": "/runs$", "method": "POST"})
    with pytest.raises(FlowRunsApiError) as info:
        hook.start_run("once")
    assert info.value.status == 503
    assert demo.stats()["faults_injected"]["status"] == 1  # exactly one POST went out


def test_create_is_retried_after_429_where_the_vendor_allows(demo):
    hook = DemoHook(**FAST)
    demo.add_faults({"kind": "status", "status": 429, "path": "/runs$", "method": "POST"})
    ref = hook.start_run("after-429")
    assert ref.run_id.startswith("run_")
    assert demo_stats(demo)["runs_created"] == 1


def test_non_retryable_errors_are_mapped_not_retried(demo):
    hook = DemoHook(**FAST)
    with pytest.raises(FlowRunsApiError) as info:
        hook.get_status(RunRef("run_missing"))
    err = info.value
    assert (err.status, err.vendor_code, err.method, err.path) == (
        404,
        "NOT_FOUND",
        "GET",
        "runs/run_missing",
    )
    assert "run run_missing not found" in err.message
    assert DEMO_TOKEN_ABSENT(str(err))


def DEMO_TOKEN_ABSENT(text: str) -> bool:
    return "demo-token" not in text and "demo-secret" not in text


def test_bad_credentials_fail_clearly(demo, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT",
        f'{{"conn_type": "flowruns_demo", "host": "{demo.url("demo", "/v1")}", "password": "wrong-token"}}',
    )
    with pytest.raises(FlowRunsApiError) as info:
        DemoHook(**FAST).get_status(RunRef("x"))
    assert info.value.status == 401 and "wrong-token" not in str(info.value)


def test_missing_connection_fields_name_the_field(demo, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT", '{"conn_type": "flowruns_demo", "host": "http://x"}'
    )
    with pytest.raises(FlowRunsConfigError, match="password"):
        DemoHook().get_client()


def _client_credentials(monkeypatch, demo):
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT",
        f'{{"conn_type": "flowruns_demo", "host": "{demo.url("demo", "/v1")}", "login": "demo-client",'
        f' "password": "demo-secret", "extra": {{"auth": "client_credentials"}}}}',
    )


async def test_oauth_mints_once_for_many_concurrent_async_callers(demo, monkeypatch):
    _client_credentials(monkeypatch, demo)
    setup = DemoHook(**FAST)
    refs = [setup.start_run(f"c{i}", duration=100) for i in range(3)]
    minted_by_setup = demo_stats(demo)["tokens_minted"]
    from airflow_provider_flowruns.core.auth import PROCESS_TOKEN_CACHE

    PROCESS_TOKEN_CACHE._tokens.clear()  # a fresh process: nothing cached
    hooks = [DemoHook(**FAST) for _ in range(40)]
    statuses = await asyncio.gather(*(h.aget_status(refs[i % 3]) for i, h in enumerate(hooks)))
    assert {s.run_id for s in statuses} == {r.run_id for r in refs}
    assert demo_stats(demo)["tokens_minted"] == minted_by_setup + 1
    for h in hooks:
        await h.aclose()


def test_oauth_refreshes_once_on_401_after_expiry(demo, monkeypatch):
    _client_credentials(monkeypatch, demo)
    from airflow_provider_flowruns.core.auth import PROCESS_TOKEN_CACHE

    PROCESS_TOKEN_CACHE._tokens.clear()
    hook = DemoHook(**FAST)
    ref = hook.start_run("expiring", duration=100000)
    assert demo_stats(demo)["tokens_minted"] == 1
    demo.control("POST", "clock", json={"advance": 7200})  # the emulator's tokens live 1 h
    assert hook.get_status(ref).state is RunState.RUNNING
    assert demo_stats(demo)["tokens_minted"] == 2


async def test_one_shared_async_client_per_connection_closed_by_the_last_user(demo):
    before = REGISTRY.open_async_clients()
    a, b = DemoHook(), DemoHook()
    ca, cb = await a.aget_client(), await b.aget_client()
    assert ca is cb and REGISTRY.open_async_clients() == before + 1
    await a.aclose()
    assert not ca.is_closed
    await b.aclose()
    assert ca.is_closed and REGISTRY.open_async_clients() == before


def test_one_shared_sync_client_per_connection(demo):
    assert DemoHook().get_client() is DemoHook().get_client()


def test_a_forked_child_never_sends_on_the_parent_s_connections(demo):
    """The parent's shared client is not the child's: sharing one kept-alive socket between two
    processes would hand each the other's answers. Both go on working, each on its own."""
    import os

    parent = DemoHook()
    parent_client = parent.get_client()
    parent.start_run("before-fork", duration=0.1)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            child_client = DemoHook().get_client()
            child_run = DemoHook().start_run("in-child", duration=0.1)
            os.write(write_end, f"{child_client is not parent_client} {child_run.run_id}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 200).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0 and answer.startswith("True "), answer
    assert parent.get_client() is parent_client
    assert parent.start_run("after-fork", duration=0.1).run_id != answer.split()[1]


@respx.mock
def test_user_agent_tls_and_timeouts(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT",
        '{"conn_type": "flowruns_demo", "host": "https://vendor.example/api", "password": "t0k"}',
    )
    route = respx.get("https://vendor.example/api/runs/r1").mock(
        return_value=httpx.Response(200, json={"status": "RUNNING"})
    )
    hook = DemoHook(timeout=12, connect_timeout=3)
    assert hook.get_status(RunRef("r1")).state is RunState.RUNNING
    sent = route.calls.last.request
    assert sent.headers["user-agent"] == USER_AGENT
    assert sent.headers["authorization"] == "Bearer t0k"
    client = hook.get_client()
    assert client.timeout.connect == 3 and client.timeout.read == 12
    assert client._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"


async def test_async_client_keeps_cookies_a_response_sets(tableflow_fr1):
    """The cookie jar skips responses without Set-Cookie (CPU per poll) but still stores real ones."""
    route = tableflow_fr1(
        {"id": "fr1", "status": "processing"},
        httpx.Response(200, json={"id": "fr1", "status": "processing"}, headers={"Set-Cookie": "lb=a1"}),
        {"id": "fr1", "status": "completed"},
    )
    hook = TableflowHook()
    try:
        for _ in range(3):
            await hook.aget_status(RunRef("fr1"))
        client = await hook.aget_client()
        assert client.cookies.get("lb") == "a1"
        assert [str(c.request.url) for c in route.calls] == [
            "https://api.tableflow.com/v2/flows/runs/fr1"
        ] * 3
        assert route.calls[2].request.headers.get("cookie") == "lb=a1"
        assert route.calls[0].request.headers["authorization"] == "Bearer k"
    finally:
        await hook.aclose()


@pytest.fixture
def no_cyclic_gc():
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_read_response_is_freed_without_the_cyclic_gc(demo):
    """A report's pages must not pile up until a full collection (their peak grew with length)."""
    hook = DemoHook()
    ref = await asyncio.to_thread(hook.start_run, "gc", duration=60)
    seen: list[weakref.ref[httpx.Response]] = []

    def keep_ref(response: httpx.Response) -> dict:
        seen.append(weakref.ref(response))
        return response.json()

    call = Call("GET", f"runs/{ref.run_id}")
    try:
        assert (await asyncio.to_thread(hook.call, call, parse=keep_ref))["id"] == ref.run_id
        assert (await hook.acall(call, parse=keep_ref))["id"] == ref.run_id
    finally:
        await hook.aclose()
    assert len(seen) == 2 and [r() for r in seen] == [None, None]
