"""The aiohttp transport under the shared async client, against real sockets on 127.0.0.1.

A raw asyncio server answers each test exactly as it needs (gzip, cookies, resets, stalls, cut
bodies, garbage, a proxy); the demo emulator (uvicorn) serves the hook-level checks. What matters
most is the exception mapping: the engine retries a non-idempotent create only on ``ConnectError``
or ``ConnectTimeout``, so nothing that may have reached the server may surface as one.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from functools import partial

import httpx
import pytest
from raw_http import answer, hanging_up, raw_server, replying, stalling

# A plain import: aiohttp is a dev dependency on every suite, so a broken module must fail the file,
# never skip it (importorskip would turn a renamed symbol into a quiet skip).
from airflow_provider_flowruns.core.aiohttp_transport import AiohttpTransport
from airflow_provider_flowruns.core.clients import async_transport
from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.testing.demo import DemoHook


@pytest.fixture(autouse=True)
def aiohttp_chosen(monkeypatch):
    """These tests are about the aiohttp transport, whichever one the suite runs on (the floor
    runs on httpx's own: ``make test-floor``)."""
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", "aiohttp")


def client(**kwargs) -> httpx.AsyncClient:
    transport = async_transport(keepalive_expiry=60)
    assert isinstance(transport, AiohttpTransport)
    return httpx.AsyncClient(transport=transport, **kwargs)


# -- what the client sends and gets ------------------------------------------------------------------------
async def test_sends_httpx_headers_and_body_once_and_decodes_gzip():
    body = gzip.compress(json.dumps({"status": "RUNNING"}).encode())
    reply = answer("200 OK", body, "Content-Encoding: gzip", "Content-Type: application/json")
    async with raw_server(replying(reply)) as server, client() as http:
        response = await http.post(
            f"http://127.0.0.1:{server.port}/runs?x=1", json={"name": "n"}, headers={"X-Custom": "a"}
        )
    assert response.status_code == 200 and response.json() == {"status": "RUNNING"}
    assert response.http_version == "HTTP/1.1" and response.reason_phrase == "OK"
    head, _, sent_body = server.requests[0].partition(b"\r\n\r\n")
    lines = [line.lower() for line in head.split(b"\r\n")]
    assert lines[0] == b"post /runs?x=1 http/1.1"
    assert json.loads(sent_body) == {"name": "n"}
    names = [line.split(b":", 1)[0] for line in lines[1:]]
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"content-type: application/json" in lines and b"x-custom: a" in lines
    assert b"user-agent: python-httpx/" + httpx.__version__.encode() in lines
    assert any(line.startswith(b"accept-encoding: gzip") for line in lines)


async def test_cookies_and_redirects_are_httpx_s():
    first = answer(
        "302 Found", b"", "Location: /next", "Set-Cookie: lb=a1; Path=/", "Set-Cookie: s=2; Path=/"
    )
    second = answer("200 OK", b"{}", "Content-Type: application/json")
    async with raw_server(replying(first, second)) as server, client(follow_redirects=True) as http:
        response = await http.get(f"http://127.0.0.1:{server.port}/start")
    assert response.status_code == 200 and str(response.url).endswith("/next")
    assert dict(http.cookies) == {"lb": "a1", "s": "2"}
    assert b"cookie: lb=a1; s=2" in server.requests[1].lower()


async def test_one_kept_alive_connection_serially_and_at_most_the_pool_size_at_once():
    reply = answer("200 OK", b"{}")
    async with raw_server(replying(reply)) as server, client() as http:
        for _ in range(20):
            (await http.get(f"http://127.0.0.1:{server.port}/s")).raise_for_status()
        assert server.connections == 1
        await asyncio.gather(*(http.get(f"http://127.0.0.1:{server.port}/s") for _ in range(60)))
        assert server.connections <= 8
    assert len(server.requests) == 80


# -- failures, as the engine needs to see them ------------------------------------------------------------
async def test_refused_connection_is_a_connect_error():
    async with raw_server(replying(b"")) as server:
        port = server.port
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/runs", json={})


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_request_that_reached_the_server_is_never_called_a_connect_error(reset):
    async with raw_server(partial(hanging_up, reset=reset)) as server, client() as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post(f"http://127.0.0.1:{server.port}/runs", json={"name": "n"})
    assert not isinstance(caught.value, (httpx.ConnectError, httpx.ConnectTimeout)), caught.value
    assert len(server.requests) == 1  # sent once: aiohttp did not resend the POST on its own


async def test_a_stalled_answer_is_a_read_timeout():
    async with raw_server(stalling) as server, client(timeout=httpx.Timeout(0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"http://127.0.0.1:{server.port}/s")


async def test_a_body_cut_short_is_a_protocol_error_while_reading():
    cut = answer("200 OK", b'{"status": "RUN')[:-4].replace(b"Length: 15", b"Length: 150")
    async with raw_server(replying(cut, keep_alive=False)) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"http://127.0.0.1:{server.port}/s")


async def test_garbage_instead_of_http_is_a_protocol_error():
    async with (
        raw_server(replying(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep_alive=False)) as server,
        client() as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"http://127.0.0.1:{server.port}/s")


# -- TLS and proxies ---------------------------------------------------------------------------------------
async def test_tls_is_verified_against_the_trust_store_httpx_uses(certificate, monkeypatch):
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with raw_server(replying(answer("200 OK", b"{}")), tls=tls) as server:
        url = f"https://127.0.0.1:{server.port}/s"
        async with client() as http:
            with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
                await http.get(url)
        assert not server.requests
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # a private CA, as httpx's trust_env reads it
        async with client() as http:
            assert (await http.get(url)).status_code == 200


async def test_proxies_come_from_the_environment(monkeypatch):
    via_proxy = replying(answer("200 OK", b'{"via": "proxy"}'), keep_alive=False)
    async with raw_server(via_proxy) as proxy, raw_server(replying(answer("200 OK", b"{}"))) as direct:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "localhost")
        async with client() as http:
            via = await http.get(f"http://127.0.0.1:{direct.port}/s")
            bypass = await http.get(f"http://localhost:{direct.port}/s")
    assert via.json() == {"via": "proxy"}
    assert proxy.requests[0].startswith(f"GET http://127.0.0.1:{direct.port}/s HTTP/1.1".encode())
    assert bypass.status_code == 200 and len(direct.requests) == 1


# -- choosing the transport ----------------------------------------------------------------------------------
async def test_config_chooses_the_transport(monkeypatch):
    monkeypatch.delenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", raising=False)
    assert isinstance(async_transport(keepalive_expiry=1), AiohttpTransport)
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", "httpx")
    assert async_transport(keepalive_expiry=1) is None
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", "curl")
    with pytest.raises(FlowRunsConfigError, match="auto, aiohttp, httpx"):
        async_transport(keepalive_expiry=1)


@pytest.mark.parametrize("choice", ["aiohttp", "httpx"])
async def test_a_hook_polls_the_emulator_over_either_transport(choice, demo, monkeypatch):
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", choice)
    hook = DemoHook()
    try:
        ref = await asyncio.to_thread(hook.start_run, "transport", duration=60)
        status = await hook.aget_status(ref)
        assert status.run_id == ref.run_id and status.state in {RunState.QUEUED, RunState.RUNNING}
        transport = (await hook.aget_client())._transport
        assert isinstance(transport, AiohttpTransport) is (choice == "aiohttp")
        with pytest.raises(FlowRunsApiError) as missing:
            await hook.aget_status(RunRef("no-such-run"))
        assert missing.value.status == 404
    finally:
        await hook.aclose()
