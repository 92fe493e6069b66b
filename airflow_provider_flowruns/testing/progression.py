"""Run progressions: which status a run shows how long after it was created."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Progression:
    """``steps`` are (status, emulated seconds spent in it); afterwards the run shows ``final``."""

    steps: Sequence[tuple[str, float]]
    final: str

    def status_at(self, elapsed: float) -> str:
        for status, duration in self.steps:
            if elapsed < duration:
                return status
            elapsed -= duration
        return self.final

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.steps)
