"""An httpx async transport that sends requests with aiohttp, for the triggerer's status polls.

Why: every trigger polls through one shared ``httpx.AsyncClient`` per connection (``clients.py``),
and what a poll costs in CPU is mostly the HTTP stack beneath it. httpcore's pure-Python HTTP/1.1
machinery (h11, anyio, its pool) costs ~0.5-0.7 ms of CPU per kept-alive request on our 2-core
reference machine; aiohttp's C parser and connector do the same exchange for ~0.2 ms under the
same client (dev/benchmarks/, bench 2). The httpx client above stays as it is - auth flows, cookies,
redirects, base URL, headers and the exceptions the engine retries on - only the wire changes.

aiohttp is not one of Airflow's own dependencies, so this is optional: installed with the
``aiohttp`` extra (most deployments have it already through the HTTP or Amazon providers), used
automatically then, and ``[flowruns] async_transport = httpx`` turns it off (see
``clients.async_transport``).

What the engine relies on, kept here:
- exceptions are httpx's: ``ConnectError``/``ConnectTimeout`` only when the request cannot have
  reached the server (a non-idempotent create is retried only then), ``ReadTimeout``,
  ``ReadError``, ``RemoteProtocolError`` otherwise;
- bodies arrive as sent (no decompression here: httpx decodes by ``Content-Encoding``);
- TLS is verified against the same trust store httpx uses (``SSL_CERT_FILE``/``SSL_CERT_DIR``);
- proxies come from the environment (``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``), as httpx's
  ``trust_env`` would; they are looked up here once per host, because aiohttp's own ``trust_env``
  hops to a thread twice per request (proxy and ``.netrc``) and would add ``.netrc`` credentials.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import aiohttp
import httpx

_CHUNK = 64 * 1024
#: Headers httpx already sets exactly as it means them; aiohttp must not add its own defaults.
_SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
#: Headers aiohttp derives from the URL and the body it sends.
_DERIVED = frozenset({b"host", b"content-length", b"transfer-encoding"})


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Re-raise aiohttp's exceptions as the httpx ones the engine handles.

    Only a failure to connect means the request cannot have left; anything after that (a reset,
    a close, a cut body) may follow a request the vendor received, so it is never a connect error:
    that is what keeps a non-idempotent call from being sent twice.
    """
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # pool wait or TCP/TLS connect: nothing sent
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # DNS, refused, proxy, TLS handshake/certificate
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.SocketTimeoutError, asyncio.TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientPayloadError as exc:  # body cut short or malformed framing
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
    except aiohttp.ClientResponseError as exc:  # an answer that is not valid HTTP
        raise httpx.RemoteProtocolError(exc.message or "invalid HTTP response", request=request) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:  # a reset, a broken pipe, TLS mid-stream
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _AiohttpBody(httpx.AsyncByteStream):
    """The response body as aiohttp receives it; closing releases the connection to the pool."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its own connection pool) behind one shared ``httpx.AsyncClient``.

    The session is opened on first use, inside the event loop that uses it (the shared client is
    per loop already), and closed with the client.
    """

    def __init__(self, *, max_connections: int, keepalive_expiry: float, verify: ssl.SSLContext) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl = verify
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            trust_env=False,  # proxies: see _proxy_for
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None or self._session.closed:
            self._session = self._open()
        body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _DERIVED
        ]
        with _httpx_errors(request):
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx follows redirects, applying its auth rules
                proxy=self._proxy_for(request.url),
                timeout=_timeout(request),
            )
        version = response.version or aiohttp.HttpVersion11
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response, request),
            extensions={
                "http_version": f"HTTP/{version.major}.{version.minor}".encode(),
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    def _proxy_for(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            found = urllib.request.getproxies_environment()
            proxy = found.get(url.scheme) or found.get("all")
            bypass = proxy and proxy_bypass_environment(url.host, found)
            self._proxies[key] = None if bypass else proxy
        return self._proxies[key]

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts in aiohttp's terms (``connect`` includes the pool wait)."""
    limits: dict[str, Any] = request.extensions.get("timeout", {})
    connect, pool = limits.get("connect"), limits.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None or pool is None else connect + pool,
        sock_connect=connect,
        sock_read=limits.get("read"),
    )
