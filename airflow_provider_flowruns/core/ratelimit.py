"""Client-side request-rate limiter: one token bucket per connection per process.

Shared by the sync and async paths of every hook instance for the same connection, so 1,000
triggers polling one Amperity tenant still send at most ``rate`` requests per second from this
process. (Across processes the vendor's own 429 plus back-off is the backstop.)
"""

from __future__ import annotations

import asyncio
import threading
import time


class TokenBucket:
    """Classic token bucket. ``reserve()`` books a slot and says how long to wait for it.

    Reserving (rather than polling for a free token) makes waiters FIFO and lets sync and async
    callers share one bucket without either holding a lock while sleeping.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)

    async def aacquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


_buckets: dict[tuple[str, float], TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(key: str, rate: float) -> TokenBucket:
    """The process-wide bucket for ``key`` (a connection id) at ``rate`` requests/second.

    Burst 1 (even spacing): vendors count requests in a sliding one-second window, and a bucket
    allowed to burst ``rate`` requests could send ``2 * rate`` inside one such window.
    """
    with _buckets_lock:
        bucket = _buckets.get((key, rate))
        if bucket is None:
            bucket = _buckets[(key, rate)] = TokenBucket(rate, burst=1)
        return bucket
