"""Rationed tokens shared across processes: many workers and triggerers, one Habu token."""

from __future__ import annotations

import asyncio
import json
import multiprocessing

import pytest
from token_workers import VariableStoreComms, call_habu

from airflow_provider_flowruns.core import shared_tokens
from airflow_provider_flowruns.core.auth import CachedToken, TokenMintError
from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.core.shared_tokens import SharedTokenCache
from airflow_provider_flowruns.hooks.habu import QUESTION_RUN, HabuHook
from airflow_provider_flowruns.testing.process import EmulatorProcess


@pytest.fixture(scope="module")
def habu_emulator():
    with EmulatorProcess(["habu"]) as emu:
        yield emu


def _conn(emu, secret: str = "habu-secret") -> str:
    return json.dumps(
        {
            "conn_type": "habu",
            "host": emu.url("habu", "/v1"),
            "login": "habu-client",
            "password": secret,
        }
    )


@pytest.mark.parametrize("hosts", ["one host", "six hosts"])
def test_six_processes_mint_one_token(habu_emulator, tmp_path, hosts):
    """Six processes (three sync workers, three async triggerers) start together with an empty
    cache. On one host the file lock orders them; on six (separate lock dirs) only the lease in the
    shared Variable does. Either way the API user mints exactly one token."""
    habu_emulator.control("POST", "reset")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        store, barrier = manager.dict(), manager.Barrier(6)
        jobs = [
            (
                _conn(habu_emulator),
                str(tmp_path / ("locks" if hosts == "one host" else f"host{i}")),
                store,
                barrier,
                i % 2 == 1,
            )
            for i in range(6)
        ]
        with ctx.Pool(6) as pool:
            results = pool.starmap(call_habu, jobs, chunksize=1)
        shared = dict(store)
    stats = habu_emulator.stats()["vendors"]["habu"]
    assert results.count("crq-reach") == 3 and results.count("FlowRunsApiError404") == 3, results
    assert stats["tokens_minted"] == 1, stats
    assert stats["unauthorized"] == 0
    (key,) = shared
    assert json.loads(shared[key])["token"] in stats["minted_tokens"]
    assert "lease_owner" not in json.loads(shared[key])  # the lease is gone once the token is there


def test_outside_airflow_the_cache_warns_once_and_stays_in_process(caplog):
    cache = SharedTokenCache()
    token = CachedToken("t", expires_at=4102444800.0)
    cache.put("k", token)
    assert cache.get("k") == token
    cache.discard("k", token)
    assert cache.get("k") is None
    warnings = [r for r in caplog.records if "not shared across processes" in r.getMessage()]
    assert len(warnings) == 1


# -- the cache is keyed by the credential, secret included -------------------------------------------
WRONG = "rotated-away-secret"


@pytest.fixture
def one_process(habu_emulator, monkeypatch, tmp_path):
    """This test process as one Airflow worker: an empty token memory, its own lock dir, a fresh
    emulator. Returns a function that forgets the memory, as a second process would start."""
    habu_emulator.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))

    def new_process() -> None:
        monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())

    new_process()
    return new_process


def _use(monkeypatch, emu, secret: str) -> HabuHook:
    monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", _conn(emu, secret))
    return HabuHook(retry_base_delay=0.01, retry_max_delay=0.05)


def _first_call(hook: HabuHook, use_async: bool) -> None:
    """A wrong secret's first call: a create (sync, a worker) or a status poll (async, a trigger)."""
    if use_async:

        async def poll() -> None:
            try:
                await hook.aget_status(RunRef("qr-missing", kind=QUESTION_RUN))
            finally:
                await hook.aclose()

        asyncio.run(poll())
    else:
        hook.create_question_run(
            "crq-reach",
            name="with-the-wrong-secret",
            parameters={"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"},
        )


def _assert_vendor_401(exc: TokenMintError, emu) -> None:
    assert exc.status == 401
    assert str(exc) == "POST /habu/v1/oauth/token failed with HTTP 401: Bad client credentials"
    assert WRONG not in str(exc) and "habu-secret" not in str(exc)
    stats = emu.stats()["vendors"]["habu"]
    assert stats["question_runs"] == 0  # nothing was created with the wrong secret
    assert stats["tokens_minted"] == 1 and stats["unauthorized"] == 1  # asked once, refused once


@pytest.mark.parametrize("use_async", [False, True], ids=["worker", "triggerer"])
def test_a_wrong_secret_is_not_answered_from_the_right_ones_token_in_memory(
    habu_emulator, one_process, monkeypatch, use_async
):
    """Same host, same client id, another secret, one process: the token the right secret minted
    stays in memory, but the wrong secret's first call asks the vendor and fails with its 401."""
    assert _use(monkeypatch, habu_emulator, "habu-secret").get_question("crq-reach")["id"] == "crq-reach"
    with pytest.raises(TokenMintError) as exc:
        _first_call(_use(monkeypatch, habu_emulator, WRONG), use_async)
    _assert_vendor_401(exc.value, habu_emulator)
    # The right secret still uses its token: no second mint.
    assert _use(monkeypatch, habu_emulator, "habu-secret").get_question("crq-reach")["id"] == "crq-reach"
    assert habu_emulator.stats()["vendors"]["habu"]["tokens_minted"] == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["worker", "triggerer"])
def test_a_wrong_secret_is_not_answered_from_the_right_ones_token_in_the_variable(
    habu_emulator, one_process, monkeypatch, use_async
):
    """The deployment-wide path: the right secret's token sits in the shared Variable and a second
    process (empty memory) with the wrong secret reads another Variable, finds nothing, and gets
    the vendor's 401. Neither Variable's name nor value holds either secret."""
    from airflow.sdk.execution_time import task_runner

    store: dict[str, str] = {}
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", VariableStoreComms(store), raising=False)
    _use(monkeypatch, habu_emulator, "habu-secret").get_question("crq-reach")
    ((right_name, right_record),) = store.items()
    assert json.loads(right_record)["token"] in habu_emulator.stats()["vendors"]["habu"]["minted_tokens"]

    one_process()  # a second process: only the Variable is shared
    with pytest.raises(TokenMintError) as exc:
        _first_call(_use(monkeypatch, habu_emulator, WRONG), use_async)
    _assert_vendor_401(exc.value, habu_emulator)
    assert store[right_name] == right_record  # untouched by the wrong secret
    tokens = {name: json.loads(value) for name, value in store.items() if "_token_" in name}
    assert tokens == {right_name: json.loads(right_record), **{n: {} for n in tokens if n != right_name}}
    assert len(tokens) == 2  # the wrong secret's own Variable holds nothing (only its released lease)
    for name, value in store.items():
        for secret in ("habu-secret", WRONG):
            assert secret not in name and secret not in value

    one_process()  # a third process with the right secret takes the shared token: no mint
    assert _use(monkeypatch, habu_emulator, "habu-secret").get_question("crq-reach")["id"] == "crq-reach"
    assert habu_emulator.stats()["vendors"]["habu"]["tokens_minted"] == 1


def test_the_cache_key_and_variable_name_change_with_the_secret_and_never_show_it():
    from airflow_provider_flowruns.core.auth import OAuth2ClientCredentials, secret_digest

    url = "https://api.habu.com/v1/oauth/token"
    a = OAuth2ClientCredentials(url, "client", "secret-a")
    b = OAuth2ClientCredentials(url, "client", "secret-b")
    assert a.cache_key == f"{url}|client|{secret_digest('secret-a')}" != b.cache_key
    names = {SharedTokenCache.variable_key(auth.cache_key) for auth in (a, b)}
    assert len(names) == 2
    for name in names:
        assert name.startswith("flowruns_token_") and len(name) == len("flowruns_token_") + 24
        assert "secret" not in name and "client" not in name
    # A record cached under the old key (host and client id only) is not read any more.
    assert SharedTokenCache.variable_key(f"{url}|client") not in names


def test_a_remembered_refusal_keeps_its_type_and_text_across_pickling():
    """Errors cross processes pickled (XCom, multiprocessing): a remembered refusal must not come
    back as a generic API error that prefixes "request failed" or loses its non-retryable kind."""
    import pickle

    from airflow_provider_flowruns.core.auth import TokenRefused

    refusal = TokenRefused("No token request was sent: ...", until=4102444800.0, remembered=True)
    again = pickle.loads(pickle.dumps(refusal))
    assert type(again) is TokenRefused and str(again) == str(refusal) == "No token request was sent: ..."
    assert again.status is None and not again.retryable and again.until == 4102444800.0
