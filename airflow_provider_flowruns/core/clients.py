"""One shared httpx client per connection per process (per event loop for async clients).

Opening a client per request or per trigger is what made dbt Cloud's triggerer burn memory and TCP
connections; sharing one keeps a small connection pool per vendor connection no matter how many
tasks or triggers use it. Async clients are bound to the event loop that created them, so they are
keyed by loop as well and reference-counted: the last user to release one closes it.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from airflow_provider_flowruns.core.errors import FlowRunsConfigError

#: Requests in flight at once on one shared async client (and its connection pool size). Waiting
#: triggers queue on an asyncio.Semaphore - FIFO and O(1) - rather than in httpcore's pool, whose
#: queue is rescanned on every request (quadratic CPU with 1,000 triggers polling at once) and whose
#: pool timeout turned a burst into failed polls and back-off (dev/benchmarks/, bench 2).
ASYNC_IN_FLIGHT = 8


#: ``[flowruns] async_transport``: what carries the shared async clients' requests.
ASYNC_TRANSPORTS = ("auto", "aiohttp", "httpx")


def async_transport(*, keepalive_expiry: float) -> httpx.AsyncBaseTransport | None:
    """The transport for a new shared async client, or None for httpx's own (httpcore).

    ``auto`` (the default) takes aiohttp when it is installed: a third of httpcore's CPU per
    request (see ``aiohttp_transport``). ``httpx`` keeps httpcore, e.g. to rule the transport out
    when chasing a network problem.
    """
    from airflow.configuration import conf

    choice = (conf.get("flowruns", "async_transport", fallback="auto") or "auto").strip().lower()
    if choice not in ASYNC_TRANSPORTS:
        raise FlowRunsConfigError(
            f"[flowruns] async_transport must be one of {', '.join(ASYNC_TRANSPORTS)}, got {choice!r}"
        )
    installed = importlib.util.find_spec("aiohttp") is not None
    if choice == "aiohttp" and not installed:
        raise FlowRunsConfigError(
            "[flowruns] async_transport = aiohttp, but aiohttp is not installed: "
            "pip install 'airflow-provider-flowruns[aiohttp]'"
        )
    if choice == "httpx" or not installed:
        return None
    from airflow_provider_flowruns.core.aiohttp_transport import AiohttpTransport

    return AiohttpTransport(
        max_connections=ASYNC_IN_FLIGHT,
        keepalive_expiry=keepalive_expiry,
        verify=httpx.create_ssl_context(verify=True, trust_env=True),
    )


def tls_context() -> ssl.SSLContext:
    """What httpx builds for ``verify=True``: verification on, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    honoured. Built once per client and shared by its transports (loading the CA bundle is ~30 ms)."""
    return httpx.create_ssl_context(verify=True, trust_env=True)


#: ``[flowruns] download_transport``: what carries the sync clients' file downloads.
DOWNLOAD_TRANSPORTS = ("http.client", "httpx")


def sync_mounts(ssl_context: ssl.SSLContext) -> dict[str, httpx.BaseTransport]:
    """The transports of a new shared sync client: httpx's own, with downloads over http.client
    (``[flowruns] download_transport = httpx``: none, httpx's own carries downloads too, e.g. to
    rule the download path out when chasing a network problem).

    A mount, not ``transport=``: httpx reads proxies from the environment only when no transport is
    given, and then mounts them on their URL patterns, which outrank this catch-all one. A proxied
    URL thus takes httpx's proxy transport and a ``NO_PROXY`` one httpx's default, downloads too;
    everything else comes here. See ``download_transport`` for why downloads take their own path.
    """
    from airflow.configuration import conf

    from airflow_provider_flowruns.core.download_transport import DownloadRouter, DownloadTransport

    choice = (conf.get("flowruns", "download_transport", fallback="") or "http.client").strip().lower()
    if choice not in DOWNLOAD_TRANSPORTS:
        raise FlowRunsConfigError(
            f"[flowruns] download_transport must be one of {', '.join(DOWNLOAD_TRANSPORTS)}, got {choice!r}"
        )
    if choice == "httpx":
        return {}
    router = DownloadRouter(
        default=httpx.HTTPTransport(verify=ssl_context, trust_env=True),
        download=DownloadTransport(ssl_context=ssl_context),
    )
    return {"all://": router}


@dataclass
class _Shared:
    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    #: Held so its id cannot be reused by a new loop while this entry exists (the key is the id).
    loop: asyncio.AbstractEventLoop
    users: int = 0


class ClientRegistry:
    def __init__(self) -> None:
        self._sync: dict[str, httpx.Client] = {}
        self._async: dict[tuple[int, str], _Shared] = {}
        self._lock = threading.Lock()

    def sync_client(self, key: str, factory: Callable[[], httpx.Client]) -> httpx.Client:
        with self._lock:
            client = self._sync.get(key)
            if client is None or client.is_closed:
                client = self._sync[key] = factory()
            return client

    def acquire_async(self, key: str, factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        loop_key = (id(loop), key)
        with self._lock:
            # A loop closed while its clients were still held (an abandoned asyncio.run) cannot
            # close them any more; its entries are dropped so they do not pile up.
            for stale in [k for k, v in self._async.items() if v.loop.is_closed()]:
                del self._async[stale]
            shared = self._async.get(loop_key)
            if shared is None or shared.client.is_closed:
                shared = self._async[loop_key] = _Shared(factory(), asyncio.Semaphore(ASYNC_IN_FLIGHT), loop)
            shared.users += 1
            return shared.client

    def async_slots(self, key: str) -> asyncio.Semaphore:
        """The in-flight limit of the shared client for ``key`` on the running loop (acquire first)."""
        with self._lock:
            return self._async[(id(asyncio.get_running_loop()), key)].slots

    async def release_async(self, key: str, client: httpx.AsyncClient) -> None:
        loop_key = (id(asyncio.get_running_loop()), key)
        with self._lock:
            shared = self._async.get(loop_key)
            if shared is None or shared.client is not client:
                close = not client.is_closed
            else:
                shared.users -= 1
                close = shared.users <= 0
                if close:
                    del self._async[loop_key]
        if close:
            await client.aclose()

    def open_async_clients(self) -> int:
        with self._lock:
            return len(self._async)

    def close_sync(self) -> None:
        with self._lock:
            clients, self._sync = list(self._sync.values()), {}
        for client in clients:
            client.close()

    def forget_after_fork(self) -> None:
        """In a forked child. The parent's clients hold the parent's sockets: two processes sending
        on one kept-alive connection read each other's answers. The child starts with none. They
        are dropped, not closed: closing would shut connections the parent is still using. The
        lock is new too, in case the fork came while another thread held it."""
        self._lock = threading.Lock()
        self._sync = {}
        self._async = {}


REGISTRY = ClientRegistry()
atexit.register(REGISTRY.close_sync)
os.register_at_fork(after_in_child=REGISTRY.forget_after_fork)
