"""The sync transport that carries file downloads: http.client, read straight into our buffer.

A downloaded file is CPU-bound on a busy worker, not network-bound: httpx's own transport (h11 over
httpcore) hands the body over in 64 KiB ``bytes``, copying every byte about three times on the way,
which held a 1 GiB result file to ~0.6x of ``curl -o`` on the same loopback (dev/benchmarks/, bench 3).
``http.client`` can ``readinto`` a buffer the caller owns, so each byte is copied once, from the
socket into a reused 1 MiB buffer that is hashed and written from there.

Only requests that ask for it come here (``DOWNLOAD`` in the request's extensions; ``FlowRunsHook
.stream`` sets it on its GETs). Everything else - API calls, creates, the token requests an auth
flow makes - stays on httpx's transport, so this module never decides whether a create is retried.
httpx still does everything above the wire: base URL, auth, redirects (a presigned object-store URL
keeps the extension), cookies, proxies (a proxied URL takes httpx's proxy transport instead), and
the response's decoding when the body is compressed.

The response exposes ``READINTO`` in its extensions (as httpcore exposes its network stream there):
``readinto(buffer) -> bytes read``, 0 at the end of the body. Iterating the response (``read()``,
``iter_raw()``) gives fresh ``bytes`` as usual; only a caller that asked for ``READINTO`` gets the
reused buffer, so nothing can hold a view of it by accident.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import httpx

#: Request extension: carry this request over the download transport.
DOWNLOAD = "flowruns.download"
#: Response extension: ``readinto(buffer) -> int``, the body read into the caller's buffer.
READINTO = "flowruns.readinto"

#: What one ``bytes`` chunk holds when the body is iterated rather than read into a buffer.
_ITER_CHUNK = 64 * 1024
#: How long a connection may sit idle and still be reused (httpx's own default keep-alive expiry;
#: servers close idle connections on their own clock, uvicorn after 5 s).
KEEPALIVE_EXPIRY = 5.0

#: What a reused connection raises when the server closed it while it sat idle: nothing of the
#: answer arrived, and the request is a GET, so it goes again once, on a new connection.
_DROPPED_WHILE_IDLE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)

_Origin = tuple[str, str, int]


class DownloadRouter(httpx.BaseTransport):
    """A client's transport: GETs marked ``DOWNLOAD`` go to the download transport, the rest to httpx's."""

    def __init__(self, *, default: httpx.BaseTransport, download: httpx.BaseTransport) -> None:
        self._default = default
        self._download = download

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.extensions.get(DOWNLOAD):
            return self._download.handle_request(request)
        return self._default.handle_request(request)

    def close(self) -> None:
        self._default.close()
        self._download.close()


class DownloadTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client``, keeping at most one idle connection per origin.

    A result file is one big download, but a document's tables or a question run's files are many
    small ones from the same host, where a TCP + TLS handshake each would cost more than the bytes.
    A connection is kept only after its body was read to the end and the server did not say
    ``Connection: close``; it is reused only within ``KEEPALIVE_EXPIRY`` and only if the server has
    not closed it meanwhile (as httpcore checks). If the server closes it in that very moment, the
    GET goes again once on a new connection, as browsers and urllib3 do: nothing of it was answered.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[_Origin, tuple[http.client.HTTPConnection, float]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        origin = _origin(request.url)
        reused = self._take_idle(origin)
        if reused is not None:
            try:
                return self._exchange(reused, request, origin, reused=True)
            except _DROPPED_WHILE_IDLE:
                pass  # closed by the server while idle: a new connection below
        timeout = request.extensions.get("timeout", {})
        conn = self._connection(origin, timeout.get("connect"))
        try:
            with _mapped(httpx.ConnectTimeout, httpx.ConnectError, request):
                conn.connect()
        except BaseException:
            conn.close()
            raise
        return self._exchange(conn, request, origin, reused=False)

    def _exchange(
        self, conn: http.client.HTTPConnection, request: httpx.Request, origin: _Origin, *, reused: bool
    ) -> httpx.Response:
        """Send the request on an open connection and read the answer's head. On a reused
        connection a drop before any answer is re-raised as is, for ``handle_request`` to retry."""
        timeout = request.extensions.get("timeout", {})
        passing = _DROPPED_WHILE_IDLE if reused else ()
        try:
            assert conn.sock is not None
            conn.sock.settimeout(timeout.get("write"))
            with _mapped(httpx.WriteTimeout, httpx.WriteError, request, passing=passing):
                conn.putrequest(
                    request.method, _target(request.url), skip_host=True, skip_accept_encoding=True
                )
                for name, value in request.headers.raw:
                    conn.putheader(name, value)
                conn.endheaders(request.read() or None)
            conn.sock.settimeout(timeout.get("read"))
            with _mapped(httpx.ReadTimeout, httpx.ReadError, request, passing=passing):
                answer = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        stream = _BodyStream(conn, answer, request, keep=partial(self._keep, origin))
        return httpx.Response(
            status_code=answer.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.getheaders()],
            stream=stream,
            extensions={
                "http_version": b"HTTP/1.1" if answer.version == 11 else b"HTTP/1.0",
                "reason_phrase": answer.reason.encode("latin-1", "replace"),
                READINTO: stream.readinto,
            },
        )

    def _take_idle(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            conn, since = self._idle.pop(origin, (None, 0.0))
        if conn is None:
            return None
        if time.monotonic() - since > KEEPALIVE_EXPIRY or _closed_by_peer(conn):
            conn.close()
            return None
        return conn

    def _keep(self, origin: _Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            older, _ = self._idle.pop(origin, (None, 0.0))
            self._idle[origin] = (conn, time.monotonic())
        if older is not None:
            older.close()

    def _connection(self, origin: _Origin, connect_timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = origin
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=self._ssl_context)
        if scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=connect_timeout)
        raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for conn, _ in idle:
            conn.close()


class _BodyStream(httpx.SyncByteStream):
    """The response body: iterated as ``bytes``, or read into a caller's buffer; closes the socket."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        answer: http.client.HTTPResponse,
        request: httpx.Request,
        *,
        keep: Callable[[http.client.HTTPConnection], None],
    ) -> None:
        self._conn = conn
        self._answer = answer
        self._request = request
        self._keep = keep
        self._complete = False

    def readinto(self, buffer: memoryview | bytearray) -> int:
        with _mapped(httpx.ReadTimeout, httpx.ReadError, self._request):
            n = self._answer.readinto(buffer)
        if not n and len(buffer):
            self._check_complete()
        return n

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with _mapped(httpx.ReadTimeout, httpx.ReadError, self._request):
                chunk = self._answer.read(_ITER_CHUNK)
            if not chunk:
                self._check_complete()
                return
            yield chunk

    def _check_complete(self) -> None:
        """At the end of the stream: was all of Content-Length received? (``http.client`` reads
        of a size end quietly on a connection closed early; only chunked bodies raise there.)"""
        missing = self._answer.length
        if missing:
            raise httpx.RemoteProtocolError(
                _incomplete_body(f"{missing} bytes missing"), request=self._request
            )
        self._complete = True

    def close(self) -> None:
        """Keep the connection for the next download only when this body was read to its end:
        unread bytes would be taken for the next answer."""
        self._answer.close()
        if self._complete and not self._answer.will_close:
            self._keep(self._conn)
        else:
            self._conn.close()


def _origin(url: httpx.URL) -> _Origin:
    """(scheme, host, port): the host IDNA-encoded, as it goes in DNS, SNI and Host."""
    return (url.scheme, url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Is anything readable on an idle connection? Only the server's close (or bytes nobody asked
    for) can be: either way it cannot carry another request."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _target(url: httpx.URL) -> str:
    """The request target: the path and query exactly as httpx encoded them."""
    return url.raw_path.decode("ascii")


@contextmanager
def _mapped(
    on_timeout: Callable[..., httpx.TransportError],
    on_error: Callable[..., httpx.TransportError],
    request: httpx.Request,
    *,
    passing: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Translate socket and http.client failures into the httpx exceptions the engine handles
    (except ``passing``, which the caller handles itself).

    Where the failure happened decides its class: only ``conn.connect()`` raises connect errors
    (nothing was sent), so a request that fails later can never read as "safe to resend".
    """
    try:
        yield
    except httpx.TransportError:
        raise
    except passing:
        raise
    except TimeoutError as exc:
        raise on_timeout(str(exc) or "timed out", request=request) from exc
    except http.client.HTTPException as exc:
        # A body cut short, a garbled status line or headers: the peer broke HTTP, as h11 says.
        raise httpx.RemoteProtocolError(_describe(exc), request=request) from exc
    except OSError as exc:
        raise on_error(_describe(exc), request=request) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return _incomplete_body(f"{len(exc.partial)} bytes read")
    return f"{type(exc).__name__}: {exc}"


def _incomplete_body(detail: str) -> str:
    """h11's words for a body cut short, so the engine's logs read the same on both transports."""
    return f"peer closed connection without sending complete message body ({detail})"
