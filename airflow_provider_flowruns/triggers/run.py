"""``FlowRunTrigger``: the one polling loop every vendor's deferred tasks wait in.

It serializes the hook's class path plus plain, secret-free kwargs, rebuilds the hook inside the
triggerer, and polls ``aget_status`` until the run reaches a terminal state (or one of the states the
operator asked to stop at, such as PAUSED), the absolute deadline passes, or the vendor says
something that will not get better by waiting (e.g. 404 or 403).
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_flowruns.core.errors import FlowRunsApiError, NotSupported
from airflow_provider_flowruns.core.http import FlowRunsHook
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus
from airflow_provider_flowruns.core.schedule import PollSchedule

#: While a run's status does not change, the trigger log gets one "still ..." line per this many
#: seconds (real time), not one per poll: 1,000 triggers polling every few seconds would otherwise
#: write hundreds of identical lines a second, a large share of the triggerer's CPU (bench 2).
UNCHANGED_LOG_EVERY = 300.0

#: The first poll after a task defers comes at least this many *real* seconds later, whatever the
#: poll interval or ``emulator_time_scale``. A trigger that fires before the scheduler has processed
#: the worker's defer-exit makes Airflow (3.1-3.3) log "finished with state success, but the task
#: instance's state attribute is queued" and fail or retry the task (apache/airflow#67287). Airflow
#: took up to 5.25 s to process a defer-exit in 61 deferrals measured for issue 17, and 1.0-7.3 s
#: (median 3.8 s) in the end-to-end suite's 30 at load ~25 on 2 cores (PostgreSQL, LocalExecutor);
#: 10 s stays above the worst seen, and the triggerer's pickup adds ~1 s more. ``[flowruns]
#: first_poll_floor`` changes it (``dag.test()``, which has no scheduler to race, may set 0).
FIRST_POLL_FLOOR = 10.0

_EVENT_STATUS = {
    RunState.SUCCEEDED: "success",
    RunState.FAILED: "failed",
    RunState.CANCELLED: "cancelled",
    RunState.PAUSED: "paused",
}


def first_poll_delay(delay: float) -> float:
    """Seconds from deferring to the first poll: ``delay`` (the schedule's next gap), raised to
    ``[flowruns] first_poll_floor`` (default :data:`FIRST_POLL_FLOOR`). Operators and sensors both
    defer through this, so no path can fire a trigger before Airflow recorded the deferral."""
    from airflow.configuration import conf

    from airflow_provider_flowruns.core.errors import FlowRunsConfigError

    floor = conf.getfloat("flowruns", "first_poll_floor", fallback=FIRST_POLL_FLOOR)
    if not floor >= 0:  # also rejects NaN
        raise FlowRunsConfigError(f"[flowruns] first_poll_floor must be >= 0 seconds, got {floor!r}")
    return max(float(delay), floor)


def status_event(status: RunStatus, *, run_url: str | None = None) -> dict[str, Any]:
    """The event payload for a run that reached ``status`` (also used by the sync path)."""
    return {
        "status": _EVENT_STATUS.get(status.state, "running"),
        "state": status.state.value,
        "run_id": status.run_id,
        "run_url": status.url or run_url,
        "vendor_status": status.vendor_status,
        "message": status.message or f"run {status.run_id} is {status.vendor_status}",
    }


def hook_from_path(class_path: str, kwargs: dict[str, Any]) -> FlowRunsHook:
    """The hook a trigger names by its dotted class path (triggers serialize the path, not the
    class), built with its serialized keyword arguments; anything but a ``FlowRunsHook`` is refused."""
    module, _, name = class_path.rpartition(".")
    hook_cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(hook_cls, type) and issubclass(hook_cls, FlowRunsHook)):
        raise TypeError(f"{class_path} is not a FlowRunsHook")
    return hook_cls(**kwargs)


class FlowRunTrigger(BaseTrigger):
    """Poll a vendor run until it settles; yields exactly one event.

    :param hook_class_path: dotted path of a :class:`FlowRunsHook` subclass.
    :param hook_kwargs: its plain constructor kwargs (``FlowRunsHook.hook_kwargs()``).
    :param run_ref: ``RunRef.to_dict()`` of the run to watch.
    :param deadline: absolute epoch seconds after which a ``timeout`` event is emitted; None for none.
    :param stop_states: non-terminal states that also end the wait (e.g. ``["PAUSED"]``).
    :param cancel_on_kill: cancel the vendor run when a user kills the deferred task (Airflow 3.3+).
    :param initial_delay: seconds to wait before the first poll. Operators and sensors check the
        status right before deferring, so polling again at once would spend a vendor poll for
        nothing (Habu allows one per 5 minutes) - they pass the poll interval here, raised to
        :func:`first_poll_delay`'s floor so the event never beats Airflow's record of the deferral.
    :param schedule: ``PollSchedule.to_dict()`` (plain numbers): when to poll next, adaptive or fixed
        (the interval the operator clamped to the vendor floor), with the floor no gap may go under.
    """

    def __init__(
        self,
        *,
        hook_class_path: str,
        hook_kwargs: dict[str, Any],
        run_ref: dict[str, Any],
        schedule: dict[str, Any],
        deadline: float | None = None,
        stop_states: Iterable[str] = (),
        cancel_on_kill: bool = True,
        run_url: str | None = None,
        initial_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.hook_class_path = hook_class_path
        self.hook_kwargs = dict(hook_kwargs)
        self.run_ref = RunRef.from_dict(run_ref).to_dict()
        self.deadline = float(deadline) if deadline is not None else None
        self.stop_states = sorted({RunState(s).value for s in stop_states})
        self.cancel_on_kill = bool(cancel_on_kill)
        self.run_url = run_url
        self.initial_delay = float(initial_delay)
        self.schedule = PollSchedule.from_dict(schedule).to_dict()
        self._hook: FlowRunsHook | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "hook_class_path": self.hook_class_path,
                "hook_kwargs": self.hook_kwargs,
                "run_ref": self.run_ref,
                "deadline": self.deadline,
                "stop_states": self.stop_states,
                "cancel_on_kill": self.cancel_on_kill,
                "run_url": self.run_url,
                "initial_delay": self.initial_delay,
                "schedule": self.schedule,
            },
        )

    @property
    def hook(self) -> FlowRunsHook:
        if self._hook is None:
            self._hook = hook_from_path(self.hook_class_path, self.hook_kwargs)
        return self._hook

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        payload = {
            "status": status,
            "run_id": self.run_ref["run_id"],
            "run_url": self.run_url,
            "vendor_status": None,
            "message": message,
        }
        payload.update(extra)
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The shared client is released here too, not only in cleanup(): whoever drives the
        # trigger without calling cleanup() (dag.test() takes the first event and lets asyncio.run
        # close the generator) would otherwise leave it open on a loop that is gone.
        try:
            async for event in self._watch():
                yield event
        finally:
            await self.cleanup()

    async def _watch(self) -> AsyncIterator[TriggerEvent]:
        ref = RunRef.from_dict(self.run_ref)
        stop = {RunState(s) for s in self.stop_states}
        failures = polls = 0
        last_seen: tuple[RunState, str | None] | None = None
        last_logged = 0.0
        schedule = PollSchedule.from_dict(self.schedule)
        if self.initial_delay > 0:
            remaining = None if self.deadline is None else max(0.0, self.deadline - time.time())
            await asyncio.sleep(
                self.initial_delay if remaining is None else min(self.initial_delay, remaining)
            )
        while True:
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                yield self._event("timeout", f"run {ref.run_id} did not finish before its deadline")
                return
            try:
                status = await self.hook.aget_status(ref)
            except FlowRunsApiError as exc:
                if not exc.retryable:
                    yield self._event("error", str(exc))
                    return
                # The hook already retried with back-off; keep waiting until the deadline rather
                # than failing a long vendor run over one bad minute.
                failures += 1
                self.log.warning("Status check for run %s failed (%s); will poll again.", ref.run_id, exc)
            except Exception as exc:
                # Whatever went wrong, the task gets one event with the reason: a trigger that dies
                # with a traceback leaves the user a stack trace instead of an answer.
                self.log.exception("Checking run %s failed unexpectedly.", ref.run_id)
                yield self._event("error", f"checking run {ref.run_id} failed: {type(exc).__name__}: {exc}")
                return
            else:
                failures = 0
                if status.state.is_terminal or status.state in stop:
                    payload = status_event(status, run_url=self.run_url)
                    payload["run_ref"] = self.run_ref  # dag.test() drops next_kwargs: its kind and scope
                    if schedule.started_at is not None:
                        payload["submitted_at"] = schedule.started_at
                    yield TriggerEvent(payload)
                    return
                polls += 1
                seen = (status.state, status.vendor_status)
                now = time.monotonic()
                if seen != last_seen:
                    # The first answer and every change of state are logged as they come.
                    self.log.info(
                        "Run %s is %s (%s)%s",
                        ref.run_id,
                        status.state.value,
                        status.vendor_status,
                        "" if last_seen else "; watching it until it finishes",
                    )
                    last_seen, last_logged = seen, now
                elif now - last_logged >= UNCHANGED_LOG_EVERY:
                    self.log.info(
                        "Run %s is still %s (%s) after %d polls",
                        ref.run_id,
                        status.state.value,
                        status.vendor_status,
                        polls,
                    )
                    last_logged = now
            delay = schedule.next_gap(time.time(), jitter=random.uniform(0.9, 1.1), failures=failures)
            if self.deadline is not None and delay >= self.deadline - time.time():
                # The next poll would fall after the deadline: wait for it, then time out without
                # one more (possibly under-the-floor) poll.
                await asyncio.sleep(max(self.deadline - time.time(), 0.0))
                yield self._event("timeout", f"run {ref.run_id} did not finish before its deadline")
                return
            await asyncio.sleep(delay)

    async def cleanup(self) -> None:
        """Release the shared client; the vendor run is left alone (a restart is not a kill)."""
        if self._hook is not None:
            await self._hook.aclose()

    async def on_kill(self) -> None:
        """Airflow 3.3+: a user marked the deferred task failed/success or cleared it."""
        if not self.cancel_on_kill:
            return
        ref = RunRef.from_dict(self.run_ref)
        try:
            await self.hook.acancel(ref)
            self.log.info("Cancelled %s run %s because its task was killed.", self.hook.vendor, ref.run_id)
        except NotSupported as exc:
            self.log.warning("%s", exc)
        except Exception:
            self.log.exception("Could not cancel run %s; it may still be running.", ref.run_id)
        finally:
            await self.cleanup()
