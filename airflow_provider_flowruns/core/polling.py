"""Poll intervals and retry back-off, configured by plain numbers so triggers can serialize them."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError

log = logging.getLogger(__name__)


def clamp_poll_interval(
    requested: float | None, *, floor: float, default: float, who: str, logger: Any = None
) -> float:
    """Return the poll interval to use: ``default`` when unset, never below the vendor ``floor``.

    A shorter interval is raised to the floor with a warning rather than refused, because the user's
    intent (poll often) is clear and the vendor limit is not negotiable.
    """
    if requested is None:
        return max(default, floor)
    if isinstance(requested, bool) or not isinstance(requested, (int, float)) or requested <= 0:
        raise FlowRunsConfigError(f"poll_interval must be a positive number of seconds, got {requested!r}")
    if requested < floor:
        (logger or log).warning(
            "poll_interval=%ss is below %s's floor of %ss; polling every %ss instead.",
            requested,
            who,
            floor,
            floor,
        )
        return float(floor)
    return float(requested)


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential back-off for one request, honouring ``Retry-After``.

    ``max_retries`` counts retries after the first attempt. ``max_delay`` caps any single wait,
    including a vendor's Retry-After, so a misbehaving header cannot park a task for a day.
    """

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise FlowRunsConfigError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise FlowRunsConfigError("retry delays must be >= 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        # "Full jitter" spreads a thundering herd of triggers hitting the same 429 apart.
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, when.timestamp() - time.time())
