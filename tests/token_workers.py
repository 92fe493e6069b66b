"""Child processes for the shared-token tests: each plays one Airflow worker or triggerer.

Airflow's supervisor (what answers ``GetVariable``/``PutVariable`` for a task or the triggerer) is
played by :class:`VariableStoreComms` over a multiprocessing-managed dict, so several real
processes share Variables the way tasks on different hosts share the metadata DB. Everything of
ours - hook, OAuth flow, shared token cache, file lock, lease - runs for real against the emulator.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


class VariableStoreComms:
    def __init__(self, store: Any) -> None:
        self.store = store

    def send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import (
            ErrorResponse,
            GetVariable,
            OKResponse,
            PutVariable,
            VariableResult,
        )

        if isinstance(msg, GetVariable):
            if msg.key in self.store:
                return VariableResult(key=msg.key, value=self.store[msg.key])
            return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": msg.key})
        if isinstance(msg, PutVariable):
            self.store[msg.key] = msg.value
            return OKResponse(ok=True)
        raise NotImplementedError(type(msg).__name__)

    async def asend(self, msg: Any) -> Any:
        await asyncio.sleep(0)
        return self.send(msg)


def call_habu(conn: str, lock_dir: str, store: Any, barrier: Any, use_async: bool) -> str:
    from airflow.sdk.execution_time import task_runner

    os.environ["AIRFLOW_CONN_HABU_DEFAULT"] = conn
    os.environ["AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR"] = lock_dir
    task_runner.SUPERVISOR_COMMS = VariableStoreComms(store)  # type: ignore[attr-defined]

    from airflow_provider_flowruns.core.runs import RunRef
    from airflow_provider_flowruns.hooks.habu import QUESTION_RUN, HabuHook

    hook = HabuHook()
    hook.get_connection(hook.conn_id)  # warm imports so the barrier lines the processes up closely
    barrier.wait()
    if use_async:

        async def poll() -> str:
            try:
                return (await hook.aget_status(RunRef("qr-missing", kind=QUESTION_RUN))).vendor_status
            except Exception as exc:  # a 404 for the made-up run is fine: it proves the token worked
                return type(exc).__name__ + str(getattr(exc, "status", ""))
            finally:
                await hook.aclose()

        return asyncio.run(poll())
    return str(hook.get_question("crq-reach")["id"])


def book_creates(store: Any, lock_dir: str, barrier: Any, attempts: int, limit: int) -> list[str]:
    """One "host" booking create slots in the shared ledger; returns what each attempt got."""
    from pathlib import Path

    from airflow.sdk.execution_time import task_runner

    task_runner.SUPERVISOR_COMMS = VariableStoreComms(store)  # type: ignore[attr-defined]

    from airflow_provider_flowruns.core.create_budget import SharedCreateBudget
    from airflow_provider_flowruns.core.errors import RateLimitBudgetExhausted
    from airflow_provider_flowruns.core.leases import DeploymentLock

    budget = SharedCreateBudget(
        lock=DeploymentLock("test ledger", settle_seconds=0.2, lock_dir=Path(lock_dir))
    )
    barrier.wait()
    got = []
    for _ in range(attempts):
        try:
            got.append(budget.book("https://habu.example/v1|client", limit=limit, window=3600, what="x").slot)
        except RateLimitBudgetExhausted:
            got.append("refused")
    return got
