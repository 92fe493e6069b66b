"""Driving a run watcher as the triggerer does, for the watcher tests (test_watch*.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from airflow_provider_flowruns.triggers.watch import FlowRunWatcher


async def collect(
    trigger: FlowRunWatcher, *, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 120.0
) -> list[dict[str, Any]]:
    """Drive ``trigger.run()`` until ``until(events)`` holds (or ``timeout`` real seconds pass);
    returns the payloads it yielded. Each call is a fresh ``run()``: a restarted triggerer."""
    events: list[dict[str, Any]] = []

    async def drive() -> None:
        async for event in trigger.run():
            events.append(event.payload)
            if until(events):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drive(), timeout)
    return events


def never(events: list[dict[str, Any]]) -> bool:
    """``until`` for a watch that must fire nothing: it runs its whole timeout."""
    return False
