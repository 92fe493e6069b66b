"""Look up a cached OAuth token without ever minting one: what a connection test may spend.

Tasks and triggers reach the shared token cache (:mod:`core.shared_tokens`) through the task
supervisor. Airflow's Test Connection runs in the API server or the ``airflow connections test``
CLI, where there is no supervisor, so the cache there sees only this process's memory; the
deployment's Variable is then read directly through Airflow's own Variable model (the API server
and the CLI have the metadata database). Reading is all this does: a token found here is
reported, never refreshed, and nothing is written back.
"""

from __future__ import annotations

import logging

from airflow_provider_flowruns.core.auth import CachedToken, OAuth2ClientCredentials
from airflow_provider_flowruns.core.leases import decode
from airflow_provider_flowruns.core.shared_tokens import SharedTokenCache

log = logging.getLogger(__name__)


def cached_token(auth: OAuth2ClientCredentials) -> CachedToken | None:
    """The token (or recorded refusal) ``auth`` would use next, from its cache or, outside a task,
    from the deployment's shared Variable; None when nothing is cached."""
    token = auth.cache.get(auth.cache_key)
    if token is not None and token.valid(0):
        return token
    if isinstance(auth.cache, SharedTokenCache):
        return _from_metadata_db(auth.cache.variable_key(auth.cache_key)) or token
    return token


def _from_metadata_db(variable: str) -> CachedToken | None:
    try:
        from airflow.models.variable import Variable

        raw = Variable.get(variable, default_var=None)
    except Exception as exc:  # no metadata DB here (a plain script): nothing more to look at
        log.debug("Variable %s not readable here: %s", variable, type(exc).__name__)
        return None
    return SharedTokenCache.token_of(decode(raw))  # the record format is shared_tokens' own
