"""What a task tells its user when a vendor refuses to mint a token because the ration is spent.

Habu mints an API user two tokens per 24 h. When it refuses a third, the task that needed it fails,
but whatever run an earlier try started carries on at the vendor, and the user needs to know when
tokens can be had again. Both facts go into the error, worded so they are true whether the task
was about to create a run or was checking one it had started. The mint times come from the shared
token cache, which records them per credential (``CachedToken.mints``); mints this deployment did
not see (another system using the same API user, or the credential before a secret rotation) are
unknown, so the time given is then an upper bound, or none is given at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class TokenRation:
    """A vendor's cap on token mints per API user.

    :param vendor: the vendor as the message names it.
    :param tokens: mints allowed per window.
    :param window: the window in real seconds (an emulator's time scale shrinks it).
    :param window_text: the window as the vendor states it (``"24 h"``).
    """

    vendor: str
    tokens: int
    window: float
    window_text: str

    def recent(self, mints: Iterable[float], now: float | None = None) -> tuple[float, ...]:
        """The mint times still inside the window, oldest first, at most ``tokens`` of them (the
        newest): all that decides when the next mint is allowed."""
        now = time.time() if now is None else now
        inside = sorted({m for m in mints if m > now - self.window})
        return tuple(inside[-self.tokens :])

    def frees(self, mints: Iterable[float]) -> str:
        """When the vendor will mint again, as far as the recorded mints tell."""
        recent = self.recent(mints)
        if len(recent) >= self.tokens:
            first = recent[-self.tokens]
            return (
                f"The ration frees at {utc(first + self.window)} ({self.window_text} after the first "
                f"of the {self._count} tokens, minted at {utc(first)})."
            )
        if recent:
            return (
                f"The ration frees by {utc(recent[0] + self.window)} at the latest ({self.window_text} "
                f"after the token this deployment minted at {utc(recent[0])}; the other token(s) "
                "were minted outside this deployment's record)."
            )
        return f"The ration frees within {self.window_text} of the first of the {self._count} tokens."

    def explain(self, mints: Iterable[float]) -> str:
        """The sentences appended to every refusal: what is spent, what still runs, when it frees."""
        return (
            f"{self.vendor} mints at most {self._count} tokens per API user per {self.window_text} and "
            f"this API user's are spent. A run already started keeps running at {self.vendor}; this "
            f"task could not check it. {self.frees(mints)}"
        )

    @property
    def _count(self) -> str:
        return {1: "one", 2: "two", 3: "three"}.get(self.tokens, str(self.tokens))


def utc(epoch: float) -> str:
    """A moment as the messages show it: UTC to the second."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
