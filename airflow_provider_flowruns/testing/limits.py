"""Emulator-side enforcement of vendor rate limits, on the emulated clock."""

from __future__ import annotations

import threading
from collections import deque

from airflow_provider_flowruns.testing.clock import EmulatorClock


class WindowLimit:
    """At most ``limit`` events per ``window`` emulated seconds (sliding window).

    ``refused`` counts requests turned away: a test asserting a provider respects a budget checks
    both that the vendor saw no more than the budget and that it was not hammered with 429s.
    """

    def __init__(self, clock: EmulatorClock, limit: int | None, window: float) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()
        self._lock = threading.Lock()
        self.accepted = 0
        self.refused = 0
        self.peak = 0  # the most events ever inside one window: what a budget test asserts on

    def hit(self) -> float | None:
        """Record an event; None if allowed, else emulated seconds until a slot frees up."""
        now = self.clock.now()
        with self._lock:
            while self._events and self._events[0] <= now - self.window:
                self._events.popleft()
            if self.limit is not None and len(self._events) >= self.limit:
                self.refused += 1
                return self._events[0] + self.window - now
            self._events.append(now)
            self.accepted += 1
            self.peak = max(self.peak, len(self._events))
            return None
