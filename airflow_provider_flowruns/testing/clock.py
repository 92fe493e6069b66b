"""A clock the emulators run on, which tests can speed up or jump forward.

Vendor limits are measured in hours (Habu: 20 creations per hour, 2 tokens per day); a speed of
3600 turns an emulated hour into a real second so those limits can be exercised in a test.
"""

from __future__ import annotations

import threading
import time


class EmulatorClock:
    def __init__(self, speed: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._base_real = time.monotonic()
        self._base_emulated = time.time()

    def now(self) -> float:
        """Emulated epoch seconds."""
        with self._lock:
            return self._base_emulated + (time.monotonic() - self._base_real) * self._speed

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            now = self._base_emulated + (time.monotonic() - self._base_real) * self._speed
            self._base_real, self._base_emulated, self._speed = time.monotonic(), now, float(speed)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base_emulated += seconds
