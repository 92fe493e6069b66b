"""Rationed tokens shared across processes: many workers and triggerers, one Habu token."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from token_workers import call_habu

from airflow_provider_flowruns.core.auth import CachedToken
from airflow_provider_flowruns.core.shared_tokens import SharedTokenCache
from airflow_provider_flowruns.testing.process import EmulatorProcess


@pytest.fixture(scope="module")
def habu_emulator():
    with EmulatorProcess(["habu"]) as emu:
        yield emu


def _conn(emu) -> str:
    return json.dumps(
        {
            "conn_type": "habu",
            "host": emu.url("habu", "/v1"),
            "login": "habu-client",
            "password": "habu-secret",
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
