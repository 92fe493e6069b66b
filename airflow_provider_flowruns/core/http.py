"""The base hook every vendor hook extends: httpx clients, auth, retries, rate limit, error mapping.

A vendor hook declares its base URL, status map, poll floor and how to read its connection and its
error bodies; it describes each API call once as a :class:`Call` (method, path, params, body) and
gets both the sync (worker) and async (triggerer) path from here.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpx
from airflow.sdk import BaseHook

from airflow_provider_flowruns import __version__
from airflow_provider_flowruns.core.auth import BearerToken, secret_digest
from airflow_provider_flowruns.core.clients import (
    ASYNC_IN_FLIGHT,
    REGISTRY,
    async_transport,
    sync_mounts,
    tls_context,
)
from airflow_provider_flowruns.core.download_transport import DOWNLOAD
from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    FlowRunsError,
    NotSupported,
    UnexpectedResponse,
)
from airflow_provider_flowruns.core.polling import RetryPolicy, clamp_poll_interval, parse_retry_after
from airflow_provider_flowruns.core.ratelimit import RatePacer, pacer_for
from airflow_provider_flowruns.core.runs import RunRef, RunStatus, StatusMap
from airflow_provider_flowruns.core.watch import RunPage

if TYPE_CHECKING:
    from airflow_provider_flowruns.core.vendor import Vendor
    from airflow_provider_flowruns.forms import Form

T = TypeVar("T")

USER_AGENT = f"airflow-provider-flowruns/{__version__}"
#: Seconds to wait after a create's answer was lost before looking for the run it may have made:
#: a vendor that timed out on us may still be writing it, and a run that is not listable yet must
#: not read as "never created".
LOST_ANSWER_SETTLE_SECONDS = 2.0
#: A paced retry waits a little more than the poll floor, so clock jitter never makes it early.
PACED_RETRY_MARGIN = 1.05


@dataclass(frozen=True)
class Call:
    """One API request, described once and sent by either the sync or the async path."""

    method: str
    path: str
    params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool | None = None  # None: derive from the method
    #: Multipart file parts (httpx ``files=``); streamed from their file objects.
    files: Any = None
    #: False when the body is a stream that is consumed by sending it once (an upload): never retried.
    resendable: bool = True
    #: False for a vendor's public routes (webhooks, resume links): the connection's credentials are
    #: then not sent, so a secret never travels to an endpoint that does not need it.
    authenticated: bool = True
    #: True for a status read the vendor rations per run (Habu: one per 5 minutes). An attempt that
    #: failed may still have reached the vendor and been counted (a read timeout, a cut answer), so a
    #: retry waits the vendor's poll floor instead of re-polling within seconds.
    paced: bool = False

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


@dataclass(frozen=True)
class ClientSettings:
    """What a client is built from; its fingerprint keys the shared-client registry."""

    base_url: str
    auth: httpx.Auth | None
    headers: Mapping[str, str] = field(default_factory=dict)
    identity: str = ""  # non-secret-revealing digest of the credentials, for the registry key

    def fingerprint(self, owner: str, timeout: tuple[float, float]) -> str:
        blob = "|".join(
            [owner, self.base_url, repr(sorted(self.headers.items())), self.identity, repr(timeout)]
        )
        return hashlib.sha256(blob.encode()).hexdigest()


class _SetCookieJar(CookieJar):
    """A cookie jar that skips the parsing when a response sets no cookie.

    httpx hands every response to the jar through urllib compatibility wrappers, and the stock jar
    rebuilds all its headers as an ``email.message.Message`` to look for ``Set-Cookie`` - a
    noticeable share of a status poll's CPU with 1,000 triggers. Responses that do set cookies
    (a load balancer's stickiness cookie, say) are stored exactly as before.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        answer = getattr(response, "response", None)  # httpx's wrapper keeps the httpx.Response
        if isinstance(answer, httpx.Response) and "set-cookie" not in answer.headers:
            return
        super().extract_cookies(response, request)


#: Cached absolute URLs per hook (paths of the calls it sends; a status poll's is one per run).
_URL_CACHE_SIZE = 64

#: The shared AsyncClient's pool matches the in-flight limit, so httpcore never queues (see clients.py).
ASYNC_KEEPALIVE_EXPIRY = 60.0
ASYNC_POOL_LIMITS = httpx.Limits(
    max_connections=ASYNC_IN_FLIGHT,
    max_keepalive_connections=ASYNC_IN_FLIGHT,
    keepalive_expiry=ASYNC_KEEPALIVE_EXPIRY,
)


class FlowRunsHook(BaseHook):
    """Base hook: connection handling, HTTP, retries, rate limit, errors, and the run-engine contract.

    Constructor arguments are plain numbers so :meth:`hook_kwargs` can hand them to a trigger.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "flowruns_default"
    conn_type = "flowruns"
    hook_name = "Flow runs"

    #: The vendor's record (``vendors/__init__.py``). A hook that declares one gets the class
    #: attributes below, and those Airflow reads (``conn_type``, ``default_conn_name``,
    #: ``conn_name_attr``, ``hook_name``), copied from it: see :meth:`__init_subclass__`.
    vendor_info: ClassVar[Vendor | None] = None
    #: The connection form (``forms.py``); Airflow 3.1 reads it through the two classmethods
    #: ``__init_subclass__`` adds, 3.2+ from provider info, both built from this one declaration.
    form: ClassVar[Form | None] = None
    #: Vendor name used in logs and messages.
    vendor: ClassVar[str] = "vendor"
    default_base_url: ClassVar[str] = ""
    #: The shortest poll interval the vendor allows (seconds) and the default when unset.
    poll_floor: ClassVar[float] = 10.0
    default_poll_interval: ClassVar[float] = 30.0
    #: The vendor's documented requests/second per connection (the client sends at 90 % of it,
    #: ``core.ratelimit.RATE_MARGIN``); None for no limit.
    default_max_rps: ClassVar[float | None] = None
    #: Whether a 429 on a non-idempotent call (a create) may be retried. True where a 429 proves the
    #: request was not processed and the budget refills quickly; Habu sets False (20 per hour).
    retry_create_on_429: ClassVar[bool] = True
    status_map: ClassVar[StatusMap]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Copy the vendor record's facts onto the hook class, where Airflow reads them, and give a
        hook with a ``form`` the two classmethods Airflow 3.1 builds the connection form from, in
        its own class body: 3.1 looks for them in ``hook_class.__dict__`` (providers_manager), so
        methods inherited from this base would be ignored."""
        super().__init_subclass__(**kwargs)
        info = cls.__dict__.get("vendor_info")
        if info is not None:
            if info.hook != cls.class_path():
                raise TypeError(
                    f"{cls.class_path()} declares the {info.name} record, which names {info.hook}"
                )
            cls.conn_type = info.conn_type
            cls.default_conn_name = info.default_conn_name
            cls.conn_name_attr = info.conn_name_attr
            cls.hook_name = info.display_name
            cls.vendor = info.name
            cls.form = info.form
            cls.default_base_url = info.default_base_url
            cls.poll_floor = info.poll_floor
            cls.default_poll_interval = info.default_poll_interval
        form = cls.__dict__.get("form")
        if form is not None:
            setattr(cls, "get_ui_field_behaviour", classmethod(lambda _cls: form.field_behaviour()))  # noqa: B010
            setattr(cls, "get_connection_form_widgets", classmethod(lambda _cls: form.form_widgets()))  # noqa: B010

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 60.0,
        max_rps: float | None = None,
        **conn_name: str | None,
    ) -> None:
        super().__init__()
        self.conn_id = self._conn_id_from(conn_id, conn_name) or self.default_conn_name
        setattr(self, self.conn_name_attr, self.conn_id)
        if timeout <= 0 or connect_timeout <= 0:
            raise FlowRunsConfigError("timeout and connect_timeout must be positive")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry_policy = RetryPolicy(max_retries, retry_base_delay, retry_max_delay)
        self.max_rps = max_rps
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_key: str | None = None
        self._aslots: asyncio.Semaphore | None = None
        self._pacer: RatePacer | None = None
        self._settings: ClientSettings | None = None
        self._conn_extra: dict[str, Any] = {}
        self._time_scale = 1.0
        self._urls: dict[str, httpx.URL] = {}

    @classmethod
    def _conn_id_from(cls, conn_id: str | None, conn_name: Mapping[str, str | None]) -> str | None:
        """The connection id, given as ``conn_id`` or as the hook's :attr:`conn_name_attr`.

        Airflow builds a hook as ``hook_class(**{conn_name_attr: conn_id})`` (``Connection.get_hook()``,
        ``BaseHook.get_hook()``, the UI's Test button, ``airflow connections test``), while our
        operators and triggers pass ``conn_id``: both spellings name the same connection.
        """
        unknown = sorted(set(conn_name) - {cls.conn_name_attr})
        if unknown:
            raise TypeError(
                f"{cls.__name__}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                f"the connection id is passed as conn_id or {cls.conn_name_attr}"
            )
        named = conn_name.get(cls.conn_name_attr)
        if conn_id and named and conn_id != named:
            raise FlowRunsConfigError(
                f"{cls.__name__}: conn_id={conn_id!r} and {cls.conn_name_attr}={named!r} name different "
                "connections; pass one of them"
            )
        return conn_id or named

    # -- Airflow's Test Connection (UI button, CLI, REST) ----------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read, no side effect: ``(True, what was reached as whom)`` or
        ``(False, why not)`` with the vendor's error text (never a secret).

        Airflow calls this from the API server or the CLI, where a user waits for the answer, so
        requests are retried once at most instead of the tasks' patient policy.
        """
        self.retry_policy = RetryPolicy(min(1, self.retry_policy.max_retries), 0.5, 2.0)
        try:
            return self.check_connection()
        except FlowRunsError as exc:
            return False, f"{self.vendor} connection {self.conn_id!r}{self._where()}: {exc}"

    def check_connection(self) -> tuple[bool, str]:
        """The vendor's test (see :meth:`test_connection`); raises :class:`FlowRunsError` on failure."""
        raise NotSupported(f"{self.vendor} connections cannot be tested yet")

    def _where(self) -> str:
        """`` at <base URL>`` once the connection was read (it names what the test tried to reach)."""
        return f" at {self._settings.base_url}" if self._settings else ""

    # -- what vendor hooks provide -----------------------------------------------------------------
    def client_settings(self, conn: Any) -> ClientSettings:
        """Build base URL, auth and headers from an Airflow connection. Vendors override."""
        raise NotImplementedError

    def base_url_of(self, conn: Any, *, scheme: str = "https") -> str:
        """The connection's host as an API base URL (vendor default when empty; ``https`` when bare)."""
        base = str(conn.host or self.default_base_url).rstrip("/")
        return base if "://" in base else f"{scheme}://{base}"

    def bearer_settings(self, conn: Any, secret_label: str) -> ClientSettings:
        """Settings for vendors whose only credential is a bearer token in the connection password."""
        if not conn.password:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: password ({secret_label}) is required")
        return ClientSettings(
            base_url=self.base_url_of(conn),
            auth=BearerToken(conn.password),
            identity=secret_digest(conn.password),
        )

    def parse_error(self, body: Any, response: httpx.Response) -> tuple[str | None, str, str | None]:
        """(vendor code, message, request id) from an error response; lenient by default."""
        code = message = request_id = None
        if isinstance(body, dict):
            for key in ("code", "error", "status", "statusCode"):
                if body.get(key) not in (None, "") and not isinstance(body.get(key), (dict, list)):
                    code = str(body[key])
                    break
            for key in ("message", "error_description", "detail", "details", "error"):
                if isinstance(body.get(key), str) and body.get(key):
                    message = body[key]
                    break
            for key in ("request_id", "requestId", "trace_id"):
                if body.get(key):
                    request_id = str(body[key])
                    break
        request_id = request_id or response.headers.get("x-request-id")
        if message is None:
            message = response.reason_phrase or f"HTTP {response.status_code}"
        return code, str(message)[:1000], request_id

    def status_call(self, ref: RunRef) -> Call:
        raise NotImplementedError

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        raise NotImplementedError

    # -- listing runs, for the watchers (triggers/watch.py) ----------------------------------------------
    def watch_call(self, kind: str, scope: Mapping[str, str], *, page: Any, since: float) -> Call:
        """One page of the runs of ``scope`` (a flow, question, config): ``page`` is None for the
        first page, else the token :meth:`read_watch_page` returned; ``since`` (vendor epoch
        seconds) is the earliest creation time the watcher needs, for vendors that filter on it."""
        raise NotSupported(f"{self.vendor} runs cannot be watched yet")

    def read_watch_page(self, kind: str, scope: Mapping[str, str], body: Any, *, page: Any) -> RunPage:
        """The runs on page ``page`` of :meth:`watch_call`'s answer, and the next page's token; a
        body without what the watcher relies on fails naming the field (``UnexpectedResponse``)."""
        raise NotSupported(f"{self.vendor} runs cannot be watched yet")

    def cancel_call(self, ref: RunRef) -> Call:
        raise NotSupported(f"{self.vendor} has no API to cancel a run; run {ref.run_id} keeps going.")

    def run_url(self, ref: RunRef) -> str | None:
        return None

    # -- the run-engine contract, sync and async, built from the above ------------------------------
    def get_status(self, ref: RunRef) -> RunStatus:
        return self.read_status(ref, self.call(self.status_call(ref)))

    async def aget_status(self, ref: RunRef) -> RunStatus:
        return self.read_status(ref, await self.acall(self.status_call(ref)))

    def read_status(self, ref: RunRef, body: Any) -> RunStatus:
        """:meth:`parse_status`, with an answer it cannot read turned into :class:`UnexpectedResponse`
        naming the vendor, the run and the problem - never an ``AttributeError`` out of a trigger."""
        try:
            return self.parse_status(ref, body)
        except FlowRunsError:
            raise
        except Exception as exc:
            raise UnexpectedResponse(
                f"{self.vendor} answered the status read of run {ref.run_id} with a body this provider "
                f"cannot read ({type(exc).__name__}: {str(exc)[:200]}); expected a JSON object describing "
                f"the run, got {type(body).__name__}",
                status=200,
                method=self.status_call(ref).method,
                path=self.status_call(ref).path,
            ) from None

    def cancel(self, ref: RunRef) -> Any:
        return self.call(self.cancel_call(ref))

    async def acancel(self, ref: RunRef) -> Any:
        return await self.acall(self.cancel_call(ref))

    def hook_kwargs(self) -> dict[str, Any]:
        """Plain, secret-free constructor arguments: what a trigger needs to rebuild this hook."""
        return {
            "conn_id": self.conn_id,
            "timeout": self.timeout,
            "connect_timeout": self.connect_timeout,
            "max_retries": self.retry_policy.max_retries,
            "retry_base_delay": self.retry_policy.base_delay,
            "retry_max_delay": self.retry_policy.max_delay,
            "max_rps": self.max_rps,
        }

    @classmethod
    def class_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    # -- connections and clients ---------------------------------------------------------------------
    @property
    def time_scale(self) -> float:
        """How much faster than real time the API's clock runs: 1 for every real vendor.

        The emulators can run hours of vendor time in seconds; a connection to one says so with
        extra ``emulator_time_scale``, and every vendor-time wait (poll floor, poll interval, rate
        windows) shrinks by that factor. Honoured only for a loopback host, so no connection to a
        real vendor can poll faster than the vendor allows.
        """
        return self._time_scale

    def poll_interval(
        self, requested: float | None, *, default: float | None = None, logger: Any = None
    ) -> float:
        """Real seconds between status checks: ``requested`` (or ``default``) raised to the vendor
        floor, then divided by the connection's :attr:`time_scale`."""
        self.get_client()
        interval = clamp_poll_interval(
            requested,
            floor=self.poll_floor,
            default=self.default_poll_interval if default is None else default,
            who=self.vendor,
            logger=logger,
        )
        return interval / self._time_scale

    @property
    def extra(self) -> dict[str, Any]:
        """The connection's extra fields, read once when the client was built."""
        return self._conn_extra

    def _http_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _client_kwargs(self, settings: ClientSettings) -> dict[str, Any]:
        return {
            "base_url": settings.base_url.rstrip("/") + "/",
            "auth": settings.auth,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json", **settings.headers},
            "timeout": self._http_timeout(),
            "follow_redirects": True,
            # TLS verification always on; SSL_CERT_FILE / SSL_CERT_DIR point httpx at a private CA.
            "verify": True,
            "trust_env": True,
            "cookies": _SetCookieJar(),
        }

    def _settings_from(self, conn: Any) -> ClientSettings:
        self._conn_extra = dict(conn.extra_dejson or {})
        settings = self.client_settings(conn)
        if not settings.base_url:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: no API base URL (set the connection's host)"
            )
        self._time_scale = self._read_time_scale(settings.base_url)
        rps = (
            self.max_rps
            if self.max_rps is not None
            else self._conn_extra.get("max_rps", self.default_max_rps)
        )
        if rps:
            self._pacer = pacer_for(self.conn_id, float(rps))
        return settings

    def _read_time_scale(self, base_url: str) -> float:
        raw = self._conn_extra.get("emulator_time_scale")
        if raw in (None, "", 1, 1.0, "1"):
            return 1.0
        try:
            scale = float(raw)
        except (TypeError, ValueError):
            scale = 0.0
        if scale < 1:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: emulator_time_scale must be a number >= 1, got {raw!r}"
            )
        if httpx.URL(base_url).host not in {"127.0.0.1", "localhost", "::1"}:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: emulator_time_scale is only honoured for an emulator on "
                "a loopback host (127.0.0.1/localhost); remove it for a real vendor"
            )
        return scale

    def _registry_key(self, settings: ClientSettings) -> str:
        return settings.fingerprint(self.class_path(), (self.timeout, self.connect_timeout))

    def get_client(self) -> httpx.Client:
        if self._client is None:
            settings = self._settings = self._settings_from(self.get_connection(self.conn_id))
            self._client = REGISTRY.sync_client(
                self._registry_key(settings), lambda: self._new_client(settings)
            )
        return self._client

    def _new_client(self, settings: ClientSettings) -> httpx.Client:
        ssl_context = tls_context()  # one for the client and every transport it mounts
        kwargs = {**self._client_kwargs(settings), "verify": ssl_context}
        return httpx.Client(**kwargs, mounts=sync_mounts(ssl_context))

    async def aget_client(self) -> httpx.AsyncClient:
        if self._aclient is None:
            # The async API only: a sync get_connection here would block (or deadlock) the triggerer.
            conn = await BaseHook.aget_connection(self.conn_id)
            settings = self._settings = self._settings_from(conn)
            key = self._registry_key(settings)
            self._aclient = REGISTRY.acquire_async(
                key,
                lambda: httpx.AsyncClient(
                    **self._client_kwargs(settings),
                    limits=ASYNC_POOL_LIMITS,
                    transport=async_transport(keepalive_expiry=ASYNC_KEEPALIVE_EXPIRY),
                ),
            )
            self._aclient_key = key
            self._urls.clear()
            self._aslots = REGISTRY.async_slots(key)
        return self._aclient

    async def aclose(self) -> None:
        """Release this hook's share of the async client (closing it when nobody else uses it)."""
        if self._aclient is not None and self._aclient_key is not None:
            client, key = self._aclient, self._aclient_key
            self._aclient = self._aclient_key = None
            self._aslots = None
            await REGISTRY.release_async(key, client)

    # -- requests ------------------------------------------------------------------------------------
    def call(self, call: Call, *, parse: Callable[[httpx.Response], T] | None = None) -> Any:
        """Send ``call`` with retries; return the parsed JSON body (or ``parse(response)``)."""
        client = self.get_client()
        parse_fn = parse or _json_body
        attempt = 0
        while True:
            if self._pacer is not None:
                self._pacer.acquire()
            try:
                response = _unbound(client.request(**self._request_kwargs(call)))
                error = self._check(call, response)
                if error is None:
                    return self._parse(call, response, parse_fn)
            except httpx.TransportError as exc:
                error = self._transport_error(call, exc)
            except _MalformedBody as exc:
                error = exc
            attempt += 1
            time.sleep(self._retry_delay(call, error, attempt))

    async def acall(self, call: Call, *, parse: Callable[[httpx.Response], T] | None = None) -> Any:
        client = await self.aget_client()
        parse_fn = parse or _json_body
        attempt = 0
        while True:
            try:
                assert self._aslots is not None
                kwargs = self._request_kwargs(call)
                kwargs["url"] = self._absolute_url(client, kwargs["url"])
                async with self._aslots:
                    # Paced inside the in-flight slot: a request paced first and then queued for a
                    # slot would leave with the others queued there, bunched past the rate.
                    if self._pacer is not None:
                        await self._pacer.aacquire()
                    response = _unbound(await client.request(**kwargs))
                error = self._check(call, response)
                if error is None:
                    return self._parse(call, response, parse_fn)
            except httpx.TransportError as exc:
                error = self._transport_error(call, exc)
            except _MalformedBody as exc:
                error = exc
            attempt += 1
            await asyncio.sleep(self._retry_delay(call, error, attempt))

    @contextmanager
    def stream(self, call: Call) -> Iterator[httpx.Response]:
        """Open a streamed response: retried until a success status arrives, then handed over.

        Faults while reading the body are the caller's to handle (see ``core.storage``), because only
        the caller knows whether it can restart the transfer. The GET goes over the download
        transport (``core.download_transport``), whose response can be read into a reused buffer.
        """
        client = self.get_client()
        attempt = 0
        while True:
            if self._pacer is not None:
                self._pacer.acquire()
            kwargs = self._request_kwargs(call)
            auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
            try:
                request = client.build_request(**kwargs, extensions={DOWNLOAD: True})
                response = client.send(request, stream=True, auth=auth)
            except httpx.TransportError as exc:
                error = self._transport_error(call, exc)
            else:
                if response.is_success:
                    break
                response.read()
                response.close()
                error = self._check(call, response) or FlowRunsApiError("unexpected status")
            attempt += 1
            time.sleep(self._retry_delay(call, error, attempt))
        try:
            yield response
        finally:
            response.close()

    # -- shared request pieces ---------------------------------------------------------------------------
    def _absolute_url(self, client: httpx.AsyncClient, path: str) -> httpx.URL:
        """``path`` joined to the client's base URL exactly as httpx joins it, parsed once per path
        (httpx re-parses the base URL on every request otherwise; a trigger polls one path)."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = client.build_request("GET", path).url
        return url

    @staticmethod
    def _request_kwargs(call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": call.method, "url": call.path.lstrip("/")}
        if call.params is not None:
            kwargs["params"] = call.params
        if call.json is not None:
            kwargs["json"] = call.json
        if call.data is not None:
            kwargs["data"] = call.data
        if call.files is not None:
            kwargs["files"] = call.files
        if call.headers:
            kwargs["headers"] = dict(call.headers)
        if not call.authenticated:
            kwargs["auth"] = None  # httpx: an explicit None overrides the client's auth
        return kwargs

    def _check(self, call: Call, response: httpx.Response) -> FlowRunsApiError | None:
        if response.is_success:
            return None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        code, message, request_id = self.parse_error(body, response)
        return FlowRunsApiError(
            message,
            status=response.status_code,
            vendor_code=code,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            method=call.method,
            path=call.path,
        )

    def _parse(self, call: Call, response: httpx.Response, parse: Callable[[httpx.Response], T]) -> T:
        try:
            return parse(response)
        except ValueError as exc:
            # A truncated or garbled body from a GET is a transient fault: retry it like a 502.
            raise _MalformedBody(
                f"{self.vendor} returned a malformed response body ({type(exc).__name__})",
                status=response.status_code,
                method=call.method,
                path=call.path,
            )

    @staticmethod
    def _transport_error(call: Call, exc: httpx.TransportError) -> FlowRunsApiError:
        error = FlowRunsApiError(
            f"{type(exc).__name__}: could not complete the request", method=call.method, path=call.path
        )
        error.__cause__ = exc
        error.request_not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))  # type: ignore[attr-defined]
        return error

    def _retry_delay(self, call: Call, error: FlowRunsApiError, attempt: int) -> float:
        """Seconds to wait before retrying, or raise ``error`` when it must not be retried."""
        if not self._may_retry(call, error) or attempt > self.retry_policy.max_retries:
            raise error
        delay = self.retry_policy.delay(attempt, error.retry_after)
        if call.paced and not getattr(error, "request_not_sent", False):
            delay = max(delay, PACED_RETRY_MARGIN * self.poll_floor / self._time_scale)
        self.log.warning(
            "%s %s: %s; retry %d/%d in %.1fs",
            call.method,
            call.path,
            f"HTTP {error.status}" if error.status and error.status >= 300 else error.message,
            attempt,
            self.retry_policy.max_retries,
            delay,
        )
        return delay

    def _may_retry(self, call: Call, error: FlowRunsApiError) -> bool:
        if not call.resendable:
            return False
        if call.is_idempotent:
            return error.retryable
        # A create may only be repeated where the vendor provably did not act on the first one.
        if getattr(error, "request_not_sent", False):
            return True
        return error.status == 429 and self.retry_create_on_429


class _MalformedBody(FlowRunsApiError):
    @property
    def retryable(self) -> bool:
        return True


_READ = httpx.ByteStream(b"")


def _unbound(response: httpx.Response) -> httpx.Response:
    """``response``, read in full, without httpx's stream that points back at it.

    httpx binds every response and its stream to each other, a reference cycle only the cyclic
    GC frees, so each read body (a 250 KiB report page, a status poll) lingered until a full
    collection: a 1 GiB report's peak RSS grew with its length (dev/benchmarks/, bench 3). The body
    is in ``response.content`` already; without the cycle it goes as soon as we drop it.
    """
    response.stream = _READ
    return response


def _json_body(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    return response.json()


__all__ = ["LOST_ANSWER_SETTLE_SECONDS", "Call", "ClientSettings", "FlowRunsHook", "secret_digest"]
