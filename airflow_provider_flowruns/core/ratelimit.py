"""Client-side request-rate limiter: one pacer per connection per process.

Shared by the sync and async paths of every hook instance for the same connection, so 1,000
triggers polling one Amperity tenant still send at most ``rate`` requests per second from this
process. (Across processes the vendor's own 429 plus back-off is the backstop.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Client-side limits aim this far below a vendor's documented rate. Requests are spaced at the
#: client, but the vendor counts them where they arrive: 11 requests spaced 1/9 s apart span 1.11 s
#: at the client, so 10 % leaves 0.11 s for arrival jitter before a 10-per-second window sees 11.
RATE_MARGIN = 0.9


@dataclass(frozen=True)
class Booking:
    """A slot booked with a :class:`RatePacer`: when it opens, and the pacer's slip at booking."""

    at: float
    slip: float


class RatePacer:
    """Evenly spaced requests, ``1 / rate`` apart, measured when each request is actually sent.

    Callers book a slot (FIFO, O(1)) and sleep until it opens. A caller that wakes late - a loaded
    machine, a blocked event loop - sends late, and every slot booked after it moves back by the
    same amount. Without that, the slots booked during a stall all open at once when it ends and
    reach the vendor bunched closer than ``1 / rate`` (one 429 from 45 status reads under load).
    Sync and async callers share one pacer; nobody holds a lock while sleeping.

    :param clock: monotonic seconds (tests pass a fake clock to check exact waits).
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.spacing = 1.0 / self.rate
        self._clock = clock
        self._next = clock()  # the earliest moment the next booked slot may open
        self._slip = 0.0  # how far every slot booked so far has moved back since this pacer started
        self._lock = threading.Lock()

    def book(self) -> Booking:
        """Book the next slot."""
        with self._lock:
            at = max(self._clock(), self._next)
            self._next = at + self.spacing
            return Booking(at=at, slip=self._slip)

    def wait_for(self, booking: Booking) -> float:
        """Seconds still to wait for ``booking``; 0.0 means send now (and the slot is spent now)."""
        with self._lock:
            now = self._clock()
            due = booking.at + (self._slip - booking.slip)
            if now < due:
                return due - now
            late = now - due
            if late > 0:
                self._slip += late
                self._next += late
            return 0.0

    def acquire(self) -> None:
        booking = self.book()
        while (wait := self.wait_for(booking)) > 0:
            time.sleep(wait)

    async def aacquire(self) -> None:
        booking = self.book()
        while (wait := self.wait_for(booking)) > 0:
            await asyncio.sleep(wait)


_pacers: dict[tuple[str, float], RatePacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(key: str, limit: float) -> RatePacer:
    """The process-wide pacer for ``key`` (a connection id) under a vendor limit of ``limit``
    requests/second: it sends at ``limit x RATE_MARGIN``.

    Evenly spaced, never in bursts: vendors count requests in a sliding one-second window, and a
    bucket allowed to burst ``rate`` requests could send ``2 * rate`` inside one such window.
    """
    with _pacers_lock:
        pacer = _pacers.get((key, limit))
        if pacer is None:
            pacer = _pacers[(key, limit)] = RatePacer(limit * RATE_MARGIN)
        return pacer
