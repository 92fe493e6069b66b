"""A token cache shared by every worker and triggerer of a deployment, for rationed tokens.

Habu mints an API user two tokens a day. A per-process cache would spend one per worker process
and one per triggerer, and the third process would lock the customer out until tomorrow. So a
minted token lives in three places, read in this order:

1. this process's memory (no I/O on the hot path: a poll reads nothing but a dict);
2. an Airflow Variable ``flowruns_token_<digest>``, reachable from workers on any host and from the
   triggerer through the supervisor (Fernet-encrypted at rest when the deployment has a key; the
   key name contains ``token``, so the UI and task logs mask its value);
3. only then the vendor's token endpoint.

Minting is serialized so two processes that miss at the same moment do not both mint: a file lock
orders processes on one host, and a lease written into the Variable orders hosts (write the lease,
wait ``settle`` seconds, read it back: only the process whose lease survived mints; the others wait
for its token). Outside an Airflow runtime there are no Variables; the cache then degrades to
memory plus the host file lock and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from airflow_provider_flowruns.core.auth import CachedToken, MemoryTokenCache
from airflow_provider_flowruns.core.variables import (
    VariablesUnavailable,
    aget_variable,
    aset_variable,
    get_variable,
    set_variable,
)

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "flowruns_token_"
_DESCRIPTION = (
    "OAuth token cached by airflow-provider-flowruns so workers and triggerers share one "
    "(the vendor rations tokens). Deleting it costs one token mint."
)


def mask(value: str) -> None:
    """Register a token with Airflow's secrets masker, so an accidental log line shows ``***``."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # pragma: no cover - masking is defence in depth, never a failure
        log.debug("secrets masker unavailable; token not registered for masking")


def default_lock_dir() -> Path:
    from airflow.configuration import conf

    configured = conf.get("flowruns", "token_lock_dir", fallback=None)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "airflow-flowruns-locks"


class SharedTokenCache:
    """Memory, then an Airflow Variable; a host file lock and a Variable lease while minting.

    :param lease_seconds: how long a minting process may hold the lease before others take over.
    :param settle_seconds: how long a lease is left to settle before it is trusted (covers two
        hosts writing a lease at the same moment: the later write wins, the earlier writer yields).
    """

    def __init__(
        self,
        *,
        lock_dir: Path | None = None,
        lease_seconds: float = 60.0,
        settle_seconds: float = 1.0,
    ) -> None:
        self._memory = MemoryTokenCache()
        self._lock_dir = lock_dir
        self.lease_seconds = lease_seconds
        self.settle_seconds = settle_seconds
        self._owner = uuid.uuid4().hex
        self._warned = False

    # -- naming -------------------------------------------------------------------------------------
    @staticmethod
    def variable_key(key: str) -> str:
        return VARIABLE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]

    def _lock_path(self, key: str) -> Path:
        directory = self._lock_dir or default_lock_dir()
        return directory / f"{self.variable_key(key)}.lock"

    def _unshared(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "Token cache is not shared across processes (%s): each process mints its own token. "
                "Inside Airflow tasks and the triggerer tokens are shared through a Variable.",
                exc,
            )

    # -- record format --------------------------------------------------------------------------------
    @staticmethod
    def _decode(raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            record = json.loads(raw)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    @staticmethod
    def _token_of(record: dict[str, Any]) -> CachedToken | None:
        value, expires_at = record.get("token"), record.get("expires_at")
        if isinstance(value, str) and value and isinstance(expires_at, (int, float)):
            return CachedToken(value=value, expires_at=float(expires_at))
        return None

    def _remember(self, key: str, record: dict[str, Any]) -> CachedToken | None:
        token = self._token_of(record)
        if token is not None:
            mask(token.value)
            self._memory.put(key, token)
        return token

    # -- TokenCache, sync -------------------------------------------------------------------------------
    def get(self, key: str) -> CachedToken | None:
        token = self._memory.get(key)
        if token is not None and token.valid(0):
            return token
        try:
            return self._remember(key, self._decode(get_variable(self.variable_key(key))))
        except VariablesUnavailable as exc:
            self._unshared(exc)
            return token

    def put(self, key: str, token: CachedToken) -> None:
        mask(token.value)
        self._memory.put(key, token)
        record = {"token": token.value, "expires_at": token.expires_at}
        try:
            set_variable(self.variable_key(key), json.dumps(record), _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    def discard(self, key: str, token: CachedToken) -> None:
        self._memory.discard(key, token)
        try:
            record = self._decode(get_variable(self.variable_key(key)))
            if record.get("token") == token.value:
                set_variable(self.variable_key(key), "{}", _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    @contextlib.contextmanager
    def mint_guard(self, key: str) -> Iterator[None]:
        fd = self._open_lock(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._take_lease(key)
                try:
                    yield
                finally:
                    self._release_lease(key)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _take_lease(self, key: str) -> None:
        var = self.variable_key(key)
        give_up = time.monotonic() + 2 * self.lease_seconds
        try:
            while time.monotonic() < give_up:
                record = self._decode(get_variable(var))
                if self._lease_decision(key, record) == "wait":
                    time.sleep(1.0)
                    continue
                if self._lease_decision(key, record) == "ready":
                    return
                set_variable(var, json.dumps(self._with_lease(record)), _DESCRIPTION)
                time.sleep(self.settle_seconds)
                if self._decode(get_variable(var)).get("lease_owner") == self._owner:
                    return
            log.warning("Token mint lease for %s not obtained in time; minting anyway.", var)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    def _release_lease(self, key: str) -> None:
        """Drop our lease if the mint failed (a successful ``put`` already replaced the record)."""
        var = self.variable_key(key)
        try:
            record = self._decode(get_variable(var))
            if record.get("lease_owner") == self._owner:
                set_variable(var, json.dumps(_without_lease(record)), _DESCRIPTION)
        except VariablesUnavailable:
            pass

    # -- TokenCache, async (the triggerer: no blocking call on the event loop) -----------------------
    async def aget(self, key: str) -> CachedToken | None:
        token = self._memory.get(key)
        if token is not None and token.valid(0):
            return token
        try:
            return self._remember(key, self._decode(await aget_variable(self.variable_key(key))))
        except VariablesUnavailable as exc:
            self._unshared(exc)
            return token

    async def aput(self, key: str, token: CachedToken) -> None:
        mask(token.value)
        self._memory.put(key, token)
        record = {"token": token.value, "expires_at": token.expires_at}
        try:
            await aset_variable(self.variable_key(key), json.dumps(record), _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    async def adiscard(self, key: str, token: CachedToken) -> None:
        self._memory.discard(key, token)
        try:
            record = self._decode(await aget_variable(self.variable_key(key)))
            if record.get("token") == token.value:
                await aset_variable(self.variable_key(key), "{}", _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    @contextlib.asynccontextmanager
    async def amint_guard(self, key: str) -> AsyncIterator[None]:
        fd = await asyncio.to_thread(self._open_lock, key)
        try:
            while not _try_flock(fd):
                await asyncio.sleep(0.05)
            try:
                await self._atake_lease(key)
                try:
                    yield
                finally:
                    await self._arelease_lease(key)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            await asyncio.to_thread(os.close, fd)

    async def _atake_lease(self, key: str) -> None:
        var = self.variable_key(key)
        give_up = time.monotonic() + 2 * self.lease_seconds
        try:
            while time.monotonic() < give_up:
                record = self._decode(await aget_variable(var))
                decision = self._lease_decision(key, record)
                if decision == "wait":
                    await asyncio.sleep(1.0)
                    continue
                if decision == "ready":
                    return
                await aset_variable(var, json.dumps(self._with_lease(record)), _DESCRIPTION)
                await asyncio.sleep(self.settle_seconds)
                if self._decode(await aget_variable(var)).get("lease_owner") == self._owner:
                    return
            log.warning("Token mint lease for %s not obtained in time; minting anyway.", var)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    async def _arelease_lease(self, key: str) -> None:
        var = self.variable_key(key)
        try:
            record = self._decode(await aget_variable(var))
            if record.get("lease_owner") == self._owner:
                await aset_variable(var, json.dumps(_without_lease(record)), _DESCRIPTION)
        except VariablesUnavailable:
            pass

    # -- lease pieces shared by both paths ----------------------------------------------------------
    def _lease_decision(self, key: str, record: dict[str, Any]) -> str:
        """``ready``: a usable token is there (the caller re-reads it); ``wait``: another process
        holds a live lease; ``take``: write our own lease."""
        token = self._token_of(record)
        if token is not None and token.valid(0) and self._memory.get(key) != token:
            self._remember(key, record)
            return "ready"
        lease_until = record.get("lease_until")
        if (
            record.get("lease_owner") not in (None, self._owner)
            and isinstance(lease_until, (int, float))
            and lease_until > time.time()
        ):
            return "wait"
        return "take"

    def _with_lease(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "lease_owner": self._owner, "lease_until": time.time() + self.lease_seconds}

    def _open_lock(self, key: str) -> int:
        path = self._lock_path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _without_lease(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("lease_owner", "lease_until")}


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


#: One per process, like the shared HTTP clients: every Habu hook in a process uses it.
SHARED_TOKEN_CACHE = SharedTokenCache()
