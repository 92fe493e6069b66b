"""Authentication strategies, written as ``httpx.Auth`` flows.

Two exist because the four vendors need exactly two: a static bearer token (Activepieces,
Tableflow, Amperity UI-issued JWTs) and OAuth2 client credentials (Habu, Amperity). The OAuth flow
mints a token only when the cache has none that is valid, serializes minting behind a lock so a
thousand concurrent triggers mint once, and on a 401 refreshes once and resends. Tokens are cached
per credential (token URL, client id and a digest of the secret): a changed secret is never
answered from a token the old one minted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import httpx

from airflow_provider_flowruns.core.errors import FlowRunsApiError
from airflow_provider_flowruns.core.polling import parse_retry_after
from airflow_provider_flowruns.core.token_ration import TokenRation, utc


def secret_digest(*parts: str | None) -> str:
    """A digest of secrets, so a rotated credential yields a new client (and a new token cache
    key) without anything keeping the secret itself."""
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


class BearerToken(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float  # epoch seconds
    #: When tokens were minted for this credential (epoch seconds, oldest first), kept for vendors
    #: that ration tokens so a refusal can say when the ration frees; a refusal keeps them too.
    mints: tuple[float, ...] = ()

    def valid(self, margin: float) -> bool:
        return time.time() < self.expires_at - margin

    @property
    def is_refusal(self) -> bool:
        """A token with no value records that the vendor refused to mint one until ``expires_at``;
        it lives in the same cache, so every process sharing tokens shares the refusal too."""
        return not self.value


class TokenCache(Protocol):
    """Where minted tokens live. The in-process default is enough for vendors with cheap tokens;
    vendors that ration tokens (Habu: two a day) plug in a cache shared across processes
    (``core.shared_tokens``). The async methods serve the triggerer, where a blocking read of a
    shared store would stall every trigger; the mint guards keep other processes from minting
    while one does."""

    #: Who shares this cache, as error messages name it ("this process's token cache").
    scope: str

    def get(self, key: str) -> CachedToken | None: ...

    def put(self, key: str, token: CachedToken) -> None: ...

    def discard(self, key: str, token: CachedToken) -> None: ...

    async def aget(self, key: str) -> CachedToken | None: ...

    async def aput(self, key: str, token: CachedToken) -> None: ...

    async def adiscard(self, key: str, token: CachedToken) -> None: ...

    def mint_guard(self, key: str) -> AbstractContextManager[None]: ...

    def amint_guard(self, key: str) -> AbstractAsyncContextManager[None]: ...


class MemoryTokenCache:
    """One process's tokens; no other process to coordinate with, so the guards are no-ops."""

    scope = "this process's token cache"

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: str, token: CachedToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def discard(self, key: str, token: CachedToken) -> None:
        with self._lock:
            if self._tokens.get(key) == token:
                del self._tokens[key]

    async def aget(self, key: str) -> CachedToken | None:
        return self.get(key)

    async def aput(self, key: str, token: CachedToken) -> None:
        self.put(key, token)

    async def adiscard(self, key: str, token: CachedToken) -> None:
        self.discard(key, token)

    def mint_guard(self, key: str) -> AbstractContextManager[None]:
        return nullcontext()

    def amint_guard(self, key: str) -> AbstractAsyncContextManager[None]:
        return nullcontext()


PROCESS_TOKEN_CACHE = MemoryTokenCache()


def parse_token_response(body: Any, *, default_lifetime: float = 3600.0) -> CachedToken:
    """Read a token response in either spelling: RFC 6749 ``access_token``/``expires_in`` or Habu's
    camelCase ``accessToken``/``expiresIn``/``expiresAt``. ``expiresAt`` wins when present because
    Habu's docs and its example disagree on the lifetime (12 h vs 86400 s)."""
    if not isinstance(body, dict):
        raise FlowRunsApiError("token endpoint returned a non-object body", path="token")
    value = body.get("access_token") or body.get("accessToken")
    if not isinstance(value, str) or not value:
        raise FlowRunsApiError("token endpoint response has no access token", path="token")
    expires_at: float | None = None
    raw_at = body.get("expiresAt") or body.get("expires_at")
    if isinstance(raw_at, str):
        try:
            expires_at = datetime.fromisoformat(raw_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            expires_at = None
    if expires_at is None:
        raw_in = body.get("expires_in", body.get("expiresIn"))
        lifetime = float(raw_in) if isinstance(raw_in, (int, float)) and raw_in > 0 else default_lifetime
        expires_at = time.time() + lifetime
    return CachedToken(value=value, expires_at=expires_at)


class TokenMintError(FlowRunsApiError):
    """The token endpoint refused us. Not retried on 4xx: for rationed tokens a retry storm is
    exactly how an API user gets locked out."""

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500


class TokenRefused(TokenMintError):
    """The vendor will not mint a token until ``until`` (epoch seconds): its ration is spent.

    ``remembered``: no request was sent; the shared token cache holds an earlier refusal, so the
    message says that instead of quoting an HTTP status it did not receive (``status`` is None).
    Never retryable on the spot: asking again is exactly what spends the next day's ration.
    """

    def __init__(self, message: str, *, until: float, remembered: bool, **fields: Any) -> None:
        self.until = until
        self.remembered = remembered
        super().__init__(message, **fields)

    def _render(self) -> str:
        return self.message if self.remembered else super()._render()

    @property
    def retryable(self) -> bool:
        return False

    def __reduce__(self):  # type: ignore[no-untyped-def]  # the type and text survive pickling
        return (
            _rebuild_refusal,
            (self.message, self.until, self.remembered, self.status, self.method, self.path),
        )


def _rebuild_refusal(
    message: str, until: float, remembered: bool, status: int | None, method: str | None, path: str | None
) -> TokenRefused:
    return TokenRefused(message, until=until, remembered=remembered, status=status, method=method, path=path)


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials grant with a shared token cache and one refresh on 401."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        credentials_in: str = "basic",
        extra_form: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
        cache: TokenCache = PROCESS_TOKEN_CACHE,
        refresh_margin: float = 300.0,
        default_lifetime: float = 3600.0,
        refusal_backoff: float = 3600.0,
        ration: TokenRation | None = None,
    ) -> None:
        if credentials_in not in {"basic", "body"}:
            raise ValueError("credentials_in must be 'basic' or 'body'")
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._credentials_in = credentials_in
        self._extra_form = dict(extra_form or {})
        self._extra_headers = dict(extra_headers or {})
        self.cache = cache
        # The secret's digest is part of the key: a connection whose secret changed (rotated,
        # revoked, mistyped) never reuses a token minted with another secret, in this process or
        # through a shared cache; it asks the vendor, which answers a wrong secret with 401.
        self.cache_key = f"{token_url}|{client_id}|{secret_digest(client_secret)}"
        self.refresh_margin = refresh_margin
        self.default_lifetime = default_lifetime
        self.refusal_backoff = refusal_backoff
        self.ration = ration
        self._sync_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    # -- pieces shared by the sync and async flows ------------------------------------------------
    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", **self._extra_form}
        headers = {"Accept": "application/json", **self._extra_headers}
        if self._credentials_in == "basic":
            pair = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form.update(client_id=self._client_id, client_secret=self._client_secret)
        return httpx.Request("POST", self.token_url, data=form, headers=headers)

    def _parse_minted(self, response: httpx.Response, mints: tuple[float, ...]) -> CachedToken:
        if response.status_code >= 400:
            raise TokenMintError(
                _short_error_text(response),
                status=response.status_code,
                method="POST",
                path=httpx.URL(self.token_url).path,
            )
        try:
            body = response.json()
        except ValueError:
            raise TokenMintError(
                "token endpoint returned malformed JSON", status=response.status_code, path="token"
            )
        token = parse_token_response(body, default_lifetime=self.default_lifetime)
        return replace(token, mints=self._recent((*mints, time.time()))) if self.ration else token

    def _store(self, response: httpx.Response, *known: CachedToken | None) -> CachedToken:
        mints = self._mints(*known)
        if response.status_code == 429:
            refusal = self._refusal(response, mints)
            self.cache.put(self.cache_key, refusal)
            raise self._refused(response, refusal)
        token = self._parse_minted(response, mints)
        self.cache.put(self.cache_key, token)
        return token

    async def _astore(self, response: httpx.Response, *known: CachedToken | None) -> CachedToken:
        mints = self._mints(*known)
        if response.status_code == 429:
            refusal = self._refusal(response, mints)
            await self.cache.aput(self.cache_key, refusal)
            raise self._refused(response, refusal)
        token = self._parse_minted(response, mints)
        await self.cache.aput(self.cache_key, token)
        return token

    # -- a spent ration ----------------------------------------------------------------------------
    def _mints(self, *known: CachedToken | None) -> tuple[float, ...]:
        """The mint times recorded on whatever this credential's cache entries held (the token
        being replaced, the entry read before minting, a remembered refusal)."""
        return self._recent(m for token in known if token is not None for m in token.mints)

    def _recent(self, mints: Any) -> tuple[float, ...]:
        return self.ration.recent(mints) if self.ration else ()

    def _refusal(self, response: httpx.Response, mints: tuple[float, ...]) -> CachedToken:
        """The token ration is spent: remember it (for every process sharing the cache) so that no
        task asks again before ``Retry-After``, or ``refusal_backoff`` when the vendor gives none.
        The mint times stay on it, so later refusals can still say when the ration frees."""
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return CachedToken(
            value="",
            expires_at=time.time() + (self.refusal_backoff if wait is None else wait),
            mints=mints,
        )

    def _refused(self, response: httpx.Response, refusal: CachedToken) -> TokenRefused:
        """The vendor's own refusal (HTTP 429), then what it means for the task and the ration."""
        ration = f" {self.ration.explain(refusal.mints)}" if self.ration else ""
        text = (
            f"{_short_error_text(response).rstrip('.')}.{ration} Until {utc(refusal.expires_at)}, "
            f"{self.cache.scope} answers with this refusal instead of asking again."
        )
        return TokenRefused(
            text,
            until=refusal.expires_at,
            remembered=False,
            status=429,
            method="POST",
            path=httpx.URL(self.token_url).path,
        )

    def _check_refusal(self, cached: CachedToken | None) -> None:
        """A refusal remembered in the cache fails the call without a request: the message says
        it comes from the cache and when the next request may be sent, not an HTTP status."""
        if cached is None or not cached.is_refusal or not cached.valid(0):
            return
        wait = cached.expires_at - time.time()
        vendor = self.ration.vendor if self.ration else "the vendor"
        text = (
            f"No token request was sent: {self.cache.scope} remembers that {vendor} refused to mint "
            f"a token; it asks again after {utc(cached.expires_at)} (in {wait:.0f}s)."
        )
        if self.ration:
            text += f" {self.ration.explain(cached.mints)}"
        raise TokenRefused(text, until=cached.expires_at, remembered=True)

    def _valid(self, token: CachedToken | None) -> CachedToken | None:
        return (
            token if token is not None and not token.is_refusal and token.valid(self.refresh_margin) else None
        )

    def _valid_cached(self) -> CachedToken | None:
        return self._valid(self.cache.get(self.cache_key))

    async def _avalid_cached(self) -> CachedToken | None:
        return self._valid(await self.cache.aget(self.cache_key))

    @staticmethod
    def _authorize(request: httpx.Request, token: CachedToken) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"

    def _alock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    # -- flows -------------------------------------------------------------------------------------
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token, minted = self._valid_cached(), False
        if token is None:
            with self._sync_lock, self.cache.mint_guard(self.cache_key):
                token = self._valid_cached()
                if token is None:
                    held = self.cache.get(self.cache_key)
                    self._check_refusal(held)
                    response = yield self._token_request()
                    response.read()
                    token, minted = self._store(response, held), True
        self._authorize(request, token)
        response = yield request
        if response.status_code == 401 and not minted:
            with self._sync_lock, self.cache.mint_guard(self.cache_key):
                self.cache.discard(self.cache_key, token)
                fresh = self._valid_cached()
                if fresh is None:
                    held = self.cache.get(self.cache_key)
                    self._check_refusal(held)
                    mint = yield self._token_request()
                    mint.read()
                    fresh = self._store(mint, token, held)
            self._authorize(request, fresh)
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token, minted = await self._avalid_cached(), False
        if token is None:
            async with self._alock(), self.cache.amint_guard(self.cache_key):
                token = await self._avalid_cached()
                if token is None:
                    held = await self.cache.aget(self.cache_key)
                    self._check_refusal(held)
                    response = yield self._token_request()
                    await response.aread()
                    token, minted = await self._astore(response, held), True
        self._authorize(request, token)
        response = yield request
        if response.status_code == 401 and not minted:
            async with self._alock(), self.cache.amint_guard(self.cache_key):
                await self.cache.adiscard(self.cache_key, token)
                fresh = await self._avalid_cached()
                if fresh is None:
                    held = await self.cache.aget(self.cache_key)
                    self._check_refusal(held)
                    mint = yield self._token_request()
                    await mint.aread()
                    fresh = await self._astore(mint, token, held)
            self._authorize(request, fresh)
            yield request


def _short_error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"token endpoint answered HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "code"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return f"token endpoint answered HTTP {response.status_code}"
