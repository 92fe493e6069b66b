"""A token cache shared by every worker and triggerer of a deployment, for rationed tokens.

Habu mints an API user two tokens a day. A per-process cache would spend one per worker process
and one per triggerer, and the third process would lock the customer out until tomorrow. So a
minted token lives in three places, read in this order:

1. this process's memory (no I/O on the hot path: a poll reads nothing but a dict);
2. an Airflow Variable ``flowruns_token_<digest>``, reachable from workers on any host and from the
   triggerer through the supervisor (Fernet-encrypted at rest when the deployment has a key; the
   key name contains ``token``, so the UI and task logs mask its value). The digest is a hash of
   the cache key - token URL, client id and a digest of the secret (``secret_digest``) - so the
   name shows neither the API user nor the secret, and a changed secret reads another Variable;
3. only then the vendor's token endpoint.

Minting is serialized so two processes that miss at the same moment do not both mint: a file lock
orders processes on one host, and a lease written into the Variable orders hosts (write the lease,
wait ``settle`` seconds, read it back: only the process whose lease survived mints; the others wait
for its token). Outside an Airflow runtime there are no Variables; the cache then degrades to
memory plus the host file lock and says so once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from airflow_provider_flowruns.core.auth import CachedToken, MemoryTokenCache
from airflow_provider_flowruns.core.leases import DeploymentLock, Record, decode, variable_name
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
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # pragma: no cover - masking is defence in depth, never a failure
        log.debug("secrets masker unavailable; token not registered for masking")


class SharedTokenCache:
    """Memory, then an Airflow Variable; a host file lock and a Variable lease while minting.

    :param lease_seconds: how long a minting process may hold the lease before others take over.
    :param settle_seconds: how long a lease is left to settle before it is trusted (covers two
        hosts writing a lease at the same moment: the later write wins, the earlier writer yields).
    """

    scope = "the token cache this deployment's workers and triggerers share"

    def __init__(
        self,
        *,
        lock_dir: Path | None = None,
        lease_seconds: float = 60.0,
        settle_seconds: float = 1.0,
    ) -> None:
        self._memory = MemoryTokenCache()
        self._lock = DeploymentLock(
            _DESCRIPTION, lease_seconds=lease_seconds, settle_seconds=settle_seconds, lock_dir=lock_dir
        )
        self._warned = False

    # -- naming -------------------------------------------------------------------------------------
    @staticmethod
    def variable_key(key: str) -> str:
        return variable_name(VARIABLE_PREFIX, key)

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
    def token_of(record: dict[str, Any]) -> CachedToken | None:
        """A token (or recorded refusal) from the record this cache writes; None if it is not one."""
        value, expires_at = record.get("token"), record.get("expires_at")
        # An empty value is a refusal (the vendor would not mint until ``expires_at``), shared too.
        if isinstance(value, str) and isinstance(expires_at, (int, float)):
            raw = record.get("mints")
            mints = tuple(
                float(m) for m in (raw if isinstance(raw, list) else []) if isinstance(m, (int, float))
            )
            return CachedToken(value=value, expires_at=float(expires_at), mints=mints)
        return None

    @staticmethod
    def _record_of(token: CachedToken) -> str:
        record: dict[str, Any] = {"token": token.value, "expires_at": token.expires_at}
        if token.mints:
            record["mints"] = list(token.mints)
        return json.dumps(record)

    def _remember(self, key: str, record: dict[str, Any]) -> CachedToken | None:
        token = self.token_of(record)
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
            return self._remember(key, decode(get_variable(self.variable_key(key))))
        except VariablesUnavailable as exc:
            self._unshared(exc)
            return token

    def put(self, key: str, token: CachedToken) -> None:
        mask(token.value)
        self._memory.put(key, token)
        try:
            set_variable(self.variable_key(key), self._record_of(token), _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    def discard(self, key: str, token: CachedToken) -> None:
        self._memory.discard(key, token)
        try:
            record = decode(get_variable(self.variable_key(key)))
            if record.get("token") == token.value:
                set_variable(self.variable_key(key), "{}", _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    @contextlib.contextmanager
    def mint_guard(self, key: str) -> Iterator[None]:
        with self._lock.hold(self.variable_key(key), partial(self._ready, key)) as outcome:
            self._note(outcome, key)
            yield

    # -- TokenCache, async (the triggerer: no blocking call on the event loop) -----------------------
    async def aget(self, key: str) -> CachedToken | None:
        token = self._memory.get(key)
        if token is not None and token.valid(0):
            return token
        try:
            return self._remember(key, decode(await aget_variable(self.variable_key(key))))
        except VariablesUnavailable as exc:
            self._unshared(exc)
            return token

    async def aput(self, key: str, token: CachedToken) -> None:
        mask(token.value)
        self._memory.put(key, token)
        try:
            await aset_variable(self.variable_key(key), self._record_of(token), _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    async def adiscard(self, key: str, token: CachedToken) -> None:
        self._memory.discard(key, token)
        try:
            record = decode(await aget_variable(self.variable_key(key)))
            if record.get("token") == token.value:
                await aset_variable(self.variable_key(key), "{}", _DESCRIPTION)
        except VariablesUnavailable as exc:
            self._unshared(exc)

    @contextlib.asynccontextmanager
    async def amint_guard(self, key: str) -> AsyncIterator[None]:
        async with self._lock.ahold(self.variable_key(key), partial(self._ready, key)) as outcome:
            self._note(outcome, key)
            yield

    def _ready(self, key: str, record: Record) -> bool:
        """Another process minted while we waited: take its token instead of minting. A token equal
        to the one in memory is the one just refused with 401, so it does not count."""
        token = self.token_of(record)
        if token is not None and token.valid(0) and self._memory.get(key) != token:
            self._remember(key, record)
            return True
        return False

    def _note(self, outcome: str, key: str) -> None:
        if outcome == "timeout":
            log.warning(
                "Token mint lease for %s not obtained in time; minting anyway.", self.variable_key(key)
            )
        elif outcome == "unshared":
            self._unshared(VariablesUnavailable("not running inside an Airflow task or triggerer"))


#: One per process, like the shared HTTP clients: every Habu hook in a process uses it.
SHARED_TOKEN_CACHE = SharedTokenCache()
