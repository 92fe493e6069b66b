"""The download transport under the shared sync client, against real sockets on 127.0.0.1.

The raw server runs on the test's event loop; the sync client runs in a thread, as on a worker.
What matters: only GETs marked as downloads leave httpx's transport, what goes on the wire is what
httpx would send, the body read into a reused buffer arrives whole and unmixed, and every failure
surfaces as the httpx exception the engine and ``download_to`` handle - never a connect error once
the request may have reached the server.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import re
import ssl
from contextlib import contextmanager
from functools import partial
from types import SimpleNamespace

import httpx
import pytest
from airflow.sdk import ObjectStoragePath
from raw_http import RawServer, answer, hanging_up, raw_server, replying, stalling

from airflow_provider_flowruns.core import storage
from airflow_provider_flowruns.core.clients import sync_mounts, tls_context
from airflow_provider_flowruns.core.download_transport import DOWNLOAD, READINTO
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call
from airflow_provider_flowruns.core.storage import READ_BUFFER_SIZE, IncompleteTransfer, download_to
from airflow_provider_flowruns.testing.demo import DemoHook


@pytest.fixture(autouse=True)
def _download_transport(monkeypatch):
    """This module tests the http.client path, whatever the suite runs with (the floor: httpx's)."""
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__DOWNLOAD_TRANSPORT", "http.client")


def client(**kwargs) -> httpx.Client:
    return httpx.Client(mounts=sync_mounts(tls_context()), **kwargs)


def download(http: httpx.Client, url: str, *, method: str = "GET", marked: bool = True) -> httpx.Response:
    """Send like ``FlowRunsHook.stream`` does and read the whole body into a small reused buffer."""
    request = http.build_request(method, url, extensions={DOWNLOAD: True} if marked else {})
    response = http.send(request, stream=True)
    try:
        readinto = response.extensions.get(READINTO)
        if readinto is None:
            response.read()
            return response
        view, parts = memoryview(bytearray(1000)), []
        while n := readinto(view):
            parts.append(bytes(view[:n]))
        response._content = b"".join(parts)
        return response
    finally:
        response.close()


def in_thread(fn, *args, **kwargs):
    return asyncio.to_thread(partial(fn, *args, **kwargs))


def sent_lines(server: RawServer, index: int = 0) -> list[bytes]:
    head = server.requests[index].partition(b"\r\n\r\n")[0]
    return [line.lower() for line in head.split(b"\r\n")]


# -- what goes on the wire, and what comes back ---------------------------------------------------------
async def test_a_marked_get_sends_httpx_headers_once_and_reads_into_the_buffer():
    body = os.urandom(5 * 1000 + 17)  # several buffer fills and a short last one
    async with raw_server(replying(answer("200 OK", body), keep_alive=False)) as server:
        with client(headers={"Authorization": "Bearer t0k"}) as http:
            response = await in_thread(
                download, http, f"http://127.0.0.1:{server.port}/f/a%20b.csv?x=1&y=%2F"
            )
    assert READINTO in response.extensions and response.content == body
    assert response.http_version == "HTTP/1.1" and response.reason_phrase == "OK"
    lines = sent_lines(server)
    assert lines[0] == b"get /f/a%20b.csv?x=1&y=%2f http/1.1"
    names = [line.split(b":", 1)[0] for line in lines[1:]]
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"authorization: bearer t0k" in lines and b"connection: keep-alive" in lines
    assert b"user-agent: python-httpx/" + httpx.__version__.encode() in lines


async def test_only_marked_gets_leave_httpx_s_transport():
    async with raw_server(replying(answer("200 OK", b"{}"))) as server:
        url = f"http://127.0.0.1:{server.port}/s"
        with client() as http:
            for response in [
                await in_thread(download, http, url, marked=False),
                await in_thread(download, http, url, method="POST"),
                await in_thread(download, http, url, method="DELETE"),
            ]:
                assert READINTO not in response.extensions and response.status_code == 200
    assert server.connections == 1  # httpx's pool kept the connection alive for all three


async def test_iterating_the_body_gives_fresh_bytes_chunked_and_gzip_too():
    """``read()`` collects the chunks it iterates: a reused buffer there would repeat the last one."""
    data = os.urandom(200_000)
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:70_000], data[70_000:]))
        + b"0\r\n\r\n"
    )
    zipped = answer("200 OK", gzip.compress(data), "Content-Encoding: gzip")
    async with raw_server(replying(chunked, zipped, keep_alive=False)) as server:
        url = f"http://127.0.0.1:{server.port}/f"
        with client() as http:

            def read_all() -> list[bytes]:
                bodies = []
                for _ in range(2):
                    request = http.build_request("GET", url, extensions={DOWNLOAD: True})
                    response = http.send(request, stream=True)
                    assert READINTO in response.extensions
                    bodies.append(response.read())
                    response.close()
                return bodies

            plain, decoded = await in_thread(read_all)
    assert plain == data and decoded == data


async def test_a_redirect_keeps_the_download_path_and_drops_credentials_across_origins():
    async with raw_server(replying(answer("200 OK", b"payload"), keep_alive=False)) as store:
        moved = answer("302 Found", b"", f"Location: http://localhost:{store.port}/signed?sig=abc")
        async with raw_server(replying(moved, keep_alive=False)) as api:
            with client(headers={"Authorization": "Bearer t0k"}, follow_redirects=True) as http:
                response = await in_thread(download, http, f"http://127.0.0.1:{api.port}/file")
    assert response.content == b"payload" and READINTO in response.extensions
    assert b"authorization: bearer t0k" in sent_lines(api)
    assert not any(line.startswith(b"authorization") for line in sent_lines(store))
    assert sent_lines(store)[0] == b"get /signed?sig=abc http/1.1"


async def test_download_transport_httpx_leaves_downloads_on_httpx_s_own_transport(monkeypatch):
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__DOWNLOAD_TRANSPORT", "httpx")
    assert sync_mounts(tls_context()) == {}
    async with raw_server(replying(answer("200 OK", b"payload"))) as server:
        with client() as http:
            response = await in_thread(download, http, f"http://127.0.0.1:{server.port}/f")
    assert response.content == b"payload" and READINTO not in response.extensions


def test_an_unknown_download_transport_is_a_config_error_naming_the_choices(monkeypatch):
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__DOWNLOAD_TRANSPORT", "curl")
    with pytest.raises(FlowRunsConfigError, match=r"download_transport must be one of http\.client, httpx"):
        sync_mounts(tls_context())


# -- connections kept between downloads ------------------------------------------------------------------------
async def test_downloads_from_one_origin_share_one_kept_alive_connection_closed_with_the_client():
    """A document's tables are many small files from one host: one handshake, not one per file."""
    bodies = [os.urandom(3000), b"", os.urandom(10)]
    async with raw_server(replying(*(answer("200 OK", b) for b in bodies))) as server:
        with client() as http:
            got = [await in_thread(download, http, f"http://127.0.0.1:{server.port}/{i}") for i in range(3)]
            assert server.finished == 0  # idle, kept open
        for _ in range(100):  # closing the client closed it: the server's read sees the end
            if server.finished:
                break
            await asyncio.sleep(0.02)
    assert [r.content for r in got] == bodies and all(READINTO in r.extensions for r in got)
    assert server.connections == 1 and server.finished == 1 and len(server.requests) == 3


async def test_a_kept_tls_connection_is_reused_without_a_second_handshake(certificate, monkeypatch):
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    async with raw_server(replying(answer("200 OK", b"one"), answer("200 OK", b"two")), tls=tls) as server:
        with client() as http:
            got = [await in_thread(download, http, f"https://127.0.0.1:{server.port}/{i}") for i in range(2)]
    assert [r.content for r in got] == [b"one", b"two"] and server.connections == 1


async def test_a_body_left_unread_is_never_taken_for_the_next_answer():
    async with raw_server(replying(answer("200 OK", b"x" * 50_000), answer("200 OK", b"second"))) as server:
        url = f"http://127.0.0.1:{server.port}/f"
        with client() as http:

            def partly_then_another() -> httpx.Response:
                response = http.send(http.build_request("GET", url, extensions={DOWNLOAD: True}), stream=True)
                response.extensions[READINTO](memoryview(bytearray(100)))
                response.close()
                return download(http, url)

            second = await in_thread(partly_then_another)
    assert second.content == b"second" and server.connections == 2


@pytest.mark.parametrize("why", ["connection-close", "expired"])
async def test_a_connection_is_not_reused_when_the_server_said_close_or_it_sat_idle_too_long(
    why, monkeypatch
):
    from airflow_provider_flowruns.core import download_transport

    first = answer("200 OK", b"one", *(["Connection: close"] if why == "connection-close" else []))
    if why == "expired":
        monkeypatch.setattr(download_transport, "KEEPALIVE_EXPIRY", 0.0)
    async with raw_server(replying(first, answer("200 OK", b"two"))) as server:
        with client() as http:
            got = [await in_thread(download, http, f"http://127.0.0.1:{server.port}/{i}") for i in range(2)]
    assert [r.content for r in got] == [b"one", b"two"] and server.connections == 2


def _closing_after_first_answer(*, read_second: bool):
    """The first connection answers once, then closes: at once, or on reading the next request
    (the race a reused connection can lose: the server's idle timeout fires as the GET goes out)."""

    def make(server: RawServer):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first_connection = server.connections == 1
            await server.read_request(reader)
            writer.write(answer("200 OK", b"one" if first_connection else b"two"))
            await writer.drain()
            if first_connection and read_second:
                await server.read_request(reader)

        return handle

    return make


@pytest.mark.parametrize("read_second", [False, True], ids=["closed-while-idle", "closed-on-the-request"])
async def test_a_kept_connection_the_server_closed_is_replaced_and_the_get_goes_again_once(read_second):
    async with raw_server(_closing_after_first_answer(read_second=read_second)) as server:
        with client() as http:
            got = [await in_thread(download, http, f"http://127.0.0.1:{server.port}/{i}") for i in range(2)]
    assert [r.content for r in got] == [b"one", b"two"] and server.connections == 2
    if read_second:  # it reached the server on the dropped connection, and went again
        assert len(server.requests) == 3


# -- failures, as the engine and download_to need to see them -------------------------------------------------
async def test_refused_connection_is_a_connect_error():
    async with raw_server(replying(b"")) as server:
        port = server.port
    with client() as http, pytest.raises(httpx.ConnectError):
        await in_thread(download, http, f"http://127.0.0.1:{port}/f")


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_request_that_reached_the_server_is_never_called_a_connect_error(reset):
    async with raw_server(partial(hanging_up, reset=reset)) as server:
        with client() as http, pytest.raises(httpx.TransportError) as caught:
            await in_thread(download, http, f"http://127.0.0.1:{server.port}/f")
    assert not isinstance(caught.value, (httpx.ConnectError, httpx.ConnectTimeout)), caught.value
    assert len(server.requests) == 1


async def test_a_stalled_answer_is_a_read_timeout():
    async with raw_server(stalling) as server:
        with client(timeout=httpx.Timeout(0.3)) as http, pytest.raises(httpx.ReadTimeout):
            await in_thread(download, http, f"http://127.0.0.1:{server.port}/f")


@pytest.mark.parametrize("marked", [True, False], ids=["read-into", "iterated"])
async def test_a_body_cut_short_is_a_protocol_error_while_reading(marked):
    cut = answer("200 OK", b"x" * 5000)[:-1000]
    async with raw_server(replying(cut, keep_alive=False)) as server:
        with client() as http, pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await in_thread(download, http, f"http://127.0.0.1:{server.port}/f", marked=marked)


async def test_garbage_instead_of_http_is_a_protocol_error():
    async with raw_server(replying(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep_alive=False)) as server:
        with client() as http, pytest.raises(httpx.RemoteProtocolError):
            await in_thread(download, http, f"http://127.0.0.1:{server.port}/f")


# -- TLS and proxies --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("marked", [True, False], ids=["download", "api-call"])
async def test_tls_is_verified_on_both_paths_against_the_trust_store_httpx_uses(
    certificate, monkeypatch, marked
):
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with raw_server(replying(answer("200 OK", b"ok"), keep_alive=False), tls=tls) as server:
        url = f"https://127.0.0.1:{server.port}/f"
        with client() as http, pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
            await in_thread(download, http, url, marked=marked)
        assert not server.requests
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # a private CA, as httpx's trust_env reads it
        with client() as http:
            response = await in_thread(download, http, url, marked=marked)
    assert response.content == b"ok" and (READINTO in response.extensions) is marked


async def test_proxies_from_the_environment_still_apply_to_downloads_and_api_calls(monkeypatch):
    via_proxy = replying(answer("200 OK", b"via proxy"), keep_alive=False)
    direct_answer = replying(answer("200 OK", b"direct"), keep_alive=False)
    async with raw_server(via_proxy) as proxy, raw_server(direct_answer) as direct:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "localhost")
        with client() as http:
            download_via = await in_thread(download, http, f"http://127.0.0.1:{direct.port}/f")
            call_via = await in_thread(download, http, f"http://127.0.0.1:{direct.port}/c", method="POST")
            bypass = await in_thread(download, http, f"http://localhost:{direct.port}/f")
    assert download_via.content == call_via.content == b"via proxy"
    assert proxy.requests[0].startswith(f"GET http://127.0.0.1:{direct.port}/f HTTP/1.1".encode())
    assert proxy.requests[1].startswith(f"POST http://127.0.0.1:{direct.port}/c HTTP/1.1".encode())
    assert bypass.content == b"direct" and len(direct.requests) == 1


# -- through the product -------------------------------------------------------------------------------------------
def _hook_for(server: RawServer, monkeypatch) -> DemoHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT",
        f'{{"conn_type": "flowruns_demo", "host": "http://127.0.0.1:{server.port}/v1", "password": "t0k"}}',
    )
    return DemoHook()


async def test_download_to_writes_a_body_read_into_its_reused_buffer_whole_and_in_order(
    tmp_path, monkeypatch
):
    # Distinct content in every MiB: a buffer handed on before it was written would show here.
    body = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() * 32768 for i in range(5)) + b"tail"
    reads: list[tuple[int, int]] = []  # (size of the buffer offered, bytes read into it)

    @contextmanager
    def counted_stream():
        """The hook's stream, with its READINTO callable counted: the read path is what is tested."""
        with hook.stream(Call("GET", "runs/r1/result")) as response:
            readinto = response.extensions[READINTO]

            def counting(view: memoryview) -> int:
                n = readinto(view)
                reads.append((len(view), n))
                return n

            response.extensions[READINTO] = counting
            yield response

    async with raw_server(replying(answer("200 OK", body), keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        written = await in_thread(download_to, counted_stream, dest)
    assert (tmp_path / "out.bin").read_bytes() == body
    assert written.size == len(body) and written.sha256 == hashlib.sha256(body).hexdigest()
    assert sent_lines(server)[0] == b"get /v1/runs/r1/result http/1.1"
    # every byte came through the one reused 1 MiB buffer, and the body ended with an empty read
    assert {offered for offered, _ in reads} == {READ_BUFFER_SIZE}
    assert sum(n for _, n in reads) == len(body) and reads[-1] == (READ_BUFFER_SIZE, 0)

    def stream_once() -> bool:
        with hook.stream(Call("GET", "runs/r1/result")) as response:
            response.read()
            return READINTO in response.extensions

    async with raw_server(replying(answer("200 OK", b"ok"))) as server:
        hook = _hook_for(server, monkeypatch)
        assert await in_thread(stream_once)  # the hook's stream takes the download path


async def test_download_to_retries_a_body_cut_short_and_leaves_nothing_partial(tmp_path, monkeypatch, caplog):
    full = answer("200 OK", b"x" * 3_000_000)
    async with raw_server(replying(full[:-10_000], full, keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        with caplog.at_level(logging.WARNING, logger=storage.__name__):
            written = await in_thread(
                download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest, retry_delay=0
            )
    assert written.size == 3_000_000 and len(server.requests) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    [warned] = [r.getMessage() for r in caplog.records if r.name == storage.__name__]
    assert re.fullmatch(
        rf"Download to {re.escape(str(dest))} interrupted \((?!None\)).+\); attempt 1/3", warned
    )


@pytest.mark.parametrize("chunk_size", [None, 4096])
async def test_download_to_writes_a_compressed_body_decoded(tmp_path, monkeypatch, chunk_size):
    """Content-Length counts the gzip bytes: the raw body (and its length) is not what lands."""
    body = b"row,value\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(20_000))
    gzipped = answer("200 OK", gzip.compress(body), "Content-Encoding: gzip")
    async with raw_server(replying(gzipped, keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.csv")
        written = await in_thread(
            download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest, chunk_size=chunk_size
        )
    assert (tmp_path / "out.csv").read_bytes() == body
    assert (written.size, written.sha256) == (len(body), hashlib.sha256(body).hexdigest())


async def test_download_to_over_httpx_s_own_transport_writes_the_raw_body(tmp_path, monkeypatch):
    """``download_transport = httpx``: no reused buffer, the raw body is iterated (iter_raw)."""
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__DOWNLOAD_TRANSPORT", "httpx")
    body = bytes(range(256)) * 4000
    async with raw_server(replying(answer("200 OK", body), keep_alive=False)) as server:
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        with client() as http:
            written = await in_thread(
                download_to, partial(http.stream, "GET", f"http://127.0.0.1:{server.port}/f"), dest
            )
    assert (tmp_path / "out.bin").read_bytes() == body and written.size == len(body)


async def test_download_to_writes_a_chunked_body_whose_length_was_not_announced(tmp_path, monkeypatch):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with raw_server(replying(chunked, keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.txt")
        written = await in_thread(download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest)
    assert (tmp_path / "out.txt").read_bytes() == b"hello world" and written.size == 11


async def test_download_to_with_a_chunk_size_writes_the_body_whole(tmp_path, monkeypatch):
    body = bytes(range(256)) * 1000
    async with raw_server(replying(answer("200 OK", body), keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        written = await in_thread(
            download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest, chunk_size=1000
        )
    assert (tmp_path / "out.bin").read_bytes() == body and written.size == len(body)


async def test_download_to_gives_up_with_incomplete_transfer_after_its_attempts(tmp_path, monkeypatch):
    cut = answer("200 OK", b"x" * 100_000)[:-10]
    slept: list[float] = []
    # the back-off is counted, not waited for: storage's own view of the clock
    monkeypatch.setattr(storage, "time", SimpleNamespace(sleep=slept.append))
    async with raw_server(replying(cut, keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        with pytest.raises(IncompleteTransfer) as gave_up:
            await in_thread(
                download_to,
                partial(hook.stream, Call("GET", "runs/r1/result")),
                dest,
                attempts=3,
                retry_delay=0.5,
            )
    assert not list(tmp_path.iterdir())
    assert len(server.requests) == 3
    assert slept == [0.5, 1.0]  # retry_delay x attempt between tries, none after the last
    # the last error is named, not lost
    assert re.fullmatch(r"out\.bin: download failed after 3 attempts: (?!None$).+", str(gave_up.value))


async def test_download_to_waits_a_second_then_two_by_default(tmp_path, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(storage, "time", SimpleNamespace(sleep=slept.append))
    async with raw_server(replying(answer("200 OK", b"x" * 1000)[:-10], keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        with pytest.raises(IncompleteTransfer, match="after 3 attempts"):
            await in_thread(download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest)
    assert slept == [1.0, 2.0]


async def test_download_to_replaces_an_earlier_object_by_default(tmp_path, monkeypatch):
    (tmp_path / "out.bin").write_bytes(b"earlier")
    async with raw_server(replying(answer("200 OK", b"new"), keep_alive=False)) as server:
        hook = _hook_for(server, monkeypatch)
        dest = ObjectStoragePath(f"file://{tmp_path}/out.bin")
        await in_thread(download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest)
        with pytest.raises(FlowRunsConfigError, match="already exists and overwrite=False"):
            await in_thread(
                download_to, partial(hook.stream, Call("GET", "runs/r1/result")), dest, overwrite=False
            )
    assert (tmp_path / "out.bin").read_bytes() == b"new"
