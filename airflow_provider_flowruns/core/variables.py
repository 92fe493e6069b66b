"""Airflow Variables from wherever our code runs: a worker task (sync) or the triggerer (async).

The Task SDK offers ``Variable.get``/``set`` for tasks but no async variant for triggers, and a
sync call from a trigger's event loop would block every other trigger in it. Both paths here speak
the same supervisor protocol the SDK uses (``GetVariable``/``PutVariable``), the async one through
``asend`` as Airflow's own ``aget_connection`` does. Outside an Airflow runtime (a plain script, a
unit test) there is no supervisor: the functions say so by raising :class:`VariablesUnavailable`,
and callers fall back to what a single process can do.

Values pass through untouched and are never logged here; callers that store secrets mask them.
"""

from __future__ import annotations

import asyncio
from typing import Any


class VariablesUnavailable(RuntimeError):
    """No Airflow supervisor to talk to in this process."""


def _comms() -> Any:
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError as exc:  # pragma: no cover - the SDK ships with every supported Airflow
        raise VariablesUnavailable("the Airflow Task SDK is not importable") from exc
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise VariablesUnavailable("not running inside an Airflow task or triggerer")
    return comms


def _value_of(response: Any, key: str) -> str | None:
    from airflow.sdk.execution_time.comms import ErrorResponse, VariableResult

    if isinstance(response, VariableResult):
        return response.value
    if isinstance(response, ErrorResponse):
        if "NOT_FOUND" in str(getattr(response, "error", "")).upper():
            return None
        raise VariablesUnavailable(f"reading Variable {key!r} failed: {response.error}")
    return None


def _put_message(key: str, value: str, description: str | None) -> Any:
    from airflow.sdk.execution_time.comms import PutVariable

    return PutVariable(key=key, value=value, description=description)


def get_variable(key: str) -> str | None:
    """The raw value of Variable ``key``, or None when it does not exist."""
    from airflow.sdk.execution_time.comms import GetVariable

    return _value_of(_comms().send(GetVariable(key=key)), key)


def set_variable(key: str, value: str, description: str | None = None) -> None:
    _comms().send(_put_message(key, value, description))


async def _asend(message: Any) -> Any:
    comms = _comms()
    asend = getattr(comms, "asend", None)
    if asend is not None:  # the triggerer
        return await asend(message)
    # ``dag.test()`` runs triggers next to an in-process supervisor that only speaks sync;
    # a thread keeps even that off the event loop.
    return await asyncio.to_thread(comms.send, message)


async def aget_variable(key: str) -> str | None:
    from airflow.sdk.execution_time.comms import GetVariable

    return _value_of(await _asend(GetVariable(key=key)), key)


async def aset_variable(key: str, value: str, description: str | None = None) -> None:
    await _asend(_put_message(key, value, description))
