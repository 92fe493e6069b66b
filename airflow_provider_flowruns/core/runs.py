"""Normalized run states and the status snapshot every vendor hook returns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


class RunState(str, Enum):
    """The six states a vendor run can be in, whatever the vendor calls them."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        """Still the vendor's to finish: a re-attach target rather than something to resubmit."""
        return not self.is_terminal


TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


@dataclass(frozen=True)
class RunRef:
    """Everything needed to find a run again: its id plus the vendor's scoping ids.

    Kept to plain strings so it can travel through trigger kwargs, XCom and the task state store.
    """

    run_id: str
    kind: str = "run"
    scope: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "scope": dict(self.scope)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRef:
        return cls(
            run_id=str(data["run_id"]),
            kind=str(data.get("kind", "run")),
            scope={str(k): str(v) for k, v in dict(data.get("scope") or {}).items()},
        )


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a vendor run: normalized ``state`` plus the vendor's own words."""

    run_id: str
    state: RunState
    vendor_status: str
    message: str | None = None
    url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: Still active but already told to stop (Amperity ``stopping``): it will end cancelled, so a
    #: retried or cleared task must not re-attach to it.
    stopping: bool = False


def _default_normalize(value: str) -> str:
    return value.strip().upper()


class StatusMap:
    """Vendor status -> :class:`RunState`, declared as data next to each hook.

    Unknown statuses count as RUNNING (so a new vendor status never fails a task by itself; the run's
    deadline bounds the wait) and are warned about once per process.
    """

    def __init__(
        self,
        mapping: Mapping[RunState, Iterable[str]],
        *,
        normalize: Callable[[str], str] = _default_normalize,
        stopping: Iterable[str] = (),
    ) -> None:
        self._normalize = normalize
        self._map: dict[str, RunState] = {}
        for state, names in mapping.items():
            for name in names:
                self._map[normalize(name)] = state
        self._stopping = frozenset(normalize(name) for name in stopping)
        if unmapped := self._stopping - self._map.keys():
            raise ValueError(f"stopping statuses {sorted(unmapped)} need a state in the mapping")
        self._warned: set[str] = set()

    def __call__(self, vendor_status: str | None) -> RunState:
        if vendor_status is None:
            return RunState.RUNNING
        key = self._normalize(str(vendor_status))
        state = self._map.get(key)
        if state is None:
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "Unknown vendor status %r: treating it as RUNNING until the deadline.", vendor_status
                )
            return RunState.RUNNING
        return state

    def is_stopping(self, vendor_status: str | None) -> bool:
        """Whether the vendor says the run is winding down after a stop request."""
        return vendor_status is not None and self._normalize(str(vendor_status)) in self._stopping

    def statuses_for(self, state: RunState) -> list[str]:
        return sorted(k for k, v in self._map.items() if v is state)
