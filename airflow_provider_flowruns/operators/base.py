"""``FlowRunOperator``: the run-operator behaviour of DESIGN.md, written once.

A vendor operator supplies ``vendor_info`` (its vendor's record) and ``submit()`` (plus, optionally, ``find_existing()``
to correlate a run by name and ``result()`` to shape the return value); everything else - XComs
before waiting, check-before-defer, sync wait or deferral, deadline, cancel on kill, durable
re-attach on retry, poll-interval clamping - lives here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, NotSupported
from airflow_provider_flowruns.core.params import default_poll_interval, to_seconds
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus
from airflow_provider_flowruns.core.schedule import POLL_SCHEDULES, PollScheduleMode
from airflow_provider_flowruns.lineage import EmitsLineage
from airflow_provider_flowruns.links import RUN_URL_XCOM_KEY
from airflow_provider_flowruns.operators.vendor import H, VendorOperator
from airflow_provider_flowruns.version_compat import default_deferrable

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.core.schedule import PollSchedule

# The run engine (HTTP, auth, history, the trigger) is imported inside the methods that use it,
# never at module level: DAG files import this module in every DAG-processor process, and parse
# needs none of it (see ``airflow_provider_flowruns.vendors``).

#: Key in ``context["task_state_store"]`` under which the run being waited on is kept.
STATE_KEY = "flowruns_run_ref"
#: Set on the stored run once the task succeeded with it, so a later clear starts a new run.
DONE_FLAG = "done"
#: Set while the run is watched by a trigger, removed when the task resumes: a new try that still
#: finds it was cleared or marked failed while deferred (see ``_attach_or_submit``).
DEFERRED_FLAG = "deferred"


class FlowRunOperator(EmitsLineage, VendorOperator[H]):
    """Start a vendor run and (by default) wait for it without holding a worker.

    :param conn_id: Airflow connection id (defaults to the vendor's ``<vendor>_default``).
    :param wait_for_completion: wait until the run settles; False returns right after submit.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks; raised to the vendor's floor if lower.
    :param timeout: seconds (or timedelta) the run may take; past it the run is cancelled where the
        vendor allows and the task fails. Unlike ``execution_timeout``, this survives deferral.
    :param cancel_on_kill: cancel the vendor run when the task is killed (worker or, 3.3+, trigger).
    :param durable: on Airflow 3.3+, a retried task re-attaches to its live run instead of starting
        a second one (and returns a run that already succeeded).
    :param hook_params: plain hook settings (``timeout``, ``max_retries``, ``max_rps``, ...).
    :param poll_schedule: ``"adaptive"`` (default) polls sparsely until the run's expected end window
        (learned from the vendor's past runs of the same flow where the API lists them, else from this
        task's earlier runs) and every ``poll_interval`` inside it; with no history it is the same as
        ``"fixed"``, which polls every ``poll_interval``. Both never go under the vendor floor and
        stop at ``timeout``. See docs/rate-limits-and-polling.md.
    """

    links_to_run = True
    #: Read the status once before deferring (a run may be over already). Vendors whose runs take
    #: minutes and whose status reads are budgeted per run (Habu) turn it off.
    check_before_defer: ClassVar[bool] = True
    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | None = None,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        durable: bool = True,
        hook_params: dict[str, Any] | None = None,
        poll_schedule: PollScheduleMode = "adaptive",
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, hook_params=hook_params, **kwargs)
        if poll_schedule not in POLL_SCHEDULES:
            raise FlowRunsConfigError(f"poll_schedule must be one of {POLL_SCHEDULES}, got {poll_schedule!r}")
        self.poll_schedule = poll_schedule
        self.wait_for_completion = bool(wait_for_completion)
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.run_timeout = to_seconds(timeout, "timeout")
        self.cancel_on_kill = bool(cancel_on_kill)
        self.durable = bool(durable)
        self._run_ref: RunRef | None = None
        #: Epoch seconds when this try submitted its run; None when it re-attached to an older one.
        self._submitted_at: float | None = None

    # -- vendor operators supply these -----------------------------------------------------------------
    def submit(self, hook: H, context: Any) -> RunRef:
        raise NotImplementedError

    def find_existing(self, hook: H, context: Any) -> RunRef | None:
        """Find a run this task already started (e.g. by deterministic name). Used when no state store."""
        return None

    def stop_states(self) -> frozenset[RunState]:
        """Non-terminal states at which the wait ends successfully."""
        return frozenset()

    def report(self, hook: H, ref: RunRef, event: dict[str, Any], context: Any) -> None:
        """Called once the run settled, whatever the outcome, before success or failure is decided:
        the place to log or publish vendor detail that matters on both paths."""

    def result(self, hook: H, ref: RunRef, event: dict[str, Any], context: Any) -> Any:
        """The task's return value once the run settled successfully (default: the run id)."""
        return ref.run_id

    def vendor_run_durations(self, hook: H, context: Any) -> list[float]:
        """Durations (vendor seconds, newest first) of the vendor's past successful runs of what this
        task runs (same flow / question / workflow), where the API lists them; [] otherwise."""
        return []

    # -- engine ------------------------------------------------------------------------------------------
    def effective_poll_interval(self) -> float:
        return self.hook.poll_interval(
            self.poll_interval,
            default=default_poll_interval(self.vendor_info.conn_type, self.vendor_info.default_poll_interval),
            logger=self.log,
        )

    def expected_run_durations(self, hook: H, context: Any) -> tuple[list[float], str]:
        """Past run durations in real seconds and where they came from: the vendor's own history
        when it has enough, else this task's earlier runs."""
        from airflow_provider_flowruns.core.history import task_durations
        from airflow_provider_flowruns.core.schedule import MIN_HISTORY

        try:
            vendor = self.vendor_run_durations(hook, context)
        except Exception as exc:  # history only tunes polling: never fail a run over it
            self.log.warning("Could not list past %s runs for adaptive polling: %s", hook.vendor, exc)
            vendor = []
        if len(vendor) >= MIN_HISTORY:
            return [d / hook.time_scale for d in vendor], f"{hook.vendor}'s past runs"
        return task_durations(context), "this task's earlier runs"

    def build_poll_schedule(self, hook: H, context: Any, interval: float) -> PollSchedule:
        """The schedule for this wait (real seconds). Adaptive needs a known start and history;
        otherwise, or with ``poll_schedule="fixed"``, every ``interval``."""
        from airflow_provider_flowruns.core.schedule import MIN_HISTORY, PollSchedule, expected_duration

        floor = hook.poll_floor / hook.time_scale
        if self.poll_schedule == "fixed":
            return PollSchedule.fixed(interval, floor, started_at=self._submitted_at)
        if self._submitted_at is None:
            self.log.info("Re-attached to a running run of unknown start: polling every %ss.", interval)
            return PollSchedule.fixed(interval, floor, started_at=self._submitted_at)
        durations, source = self.expected_run_durations(hook, context)
        expected = expected_duration(durations)
        if expected is None:
            self.log.info(
                "Adaptive polling: %d past run(s) known (need %d); polling every %ss.",
                len(durations),
                MIN_HISTORY,
                interval,
            )
            return PollSchedule.fixed(interval, floor, started_at=self._submitted_at)
        self.log.info(
            "Adaptive polling: from %d of %s, the run should end %.0f-%.0fs after it started; "
            "polling sparsely before that and every %ss within it.",
            expected.samples,
            source,
            expected.low,
            expected.high,
            interval,
        )
        return PollSchedule.adaptive(interval, floor, started_at=self._submitted_at, expected=expected)

    def execute(self, context: Context) -> Any:
        from airflow_provider_flowruns.triggers.run import FlowRunTrigger, first_poll_delay, status_event

        hook = self.hook
        interval = self.effective_poll_interval()
        ref = self._attach_or_submit(hook, context)
        self._run_ref = ref
        run_url = hook.run_url(ref)
        ti = context["ti"]
        ti.xcom_push(key="run_id", value=ref.run_id)
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=run_url)
        if run_url:
            self.log.info("%s run %s: %s", hook.vendor, ref.run_id, run_url)
        if not self.wait_for_completion:
            self._announce(context, ref, status="started", vendor_status=None, run_url=run_url)
            self._mark_done(context, ref)
            return ref.run_id
        if self.check_before_defer:
            status = hook.get_status(ref)  # it may already be over: then no deferral at all
            if self._settled(status):
                return self._finish(context, status_event(status, run_url=run_url), ref)
        deadline = time.time() + self.run_timeout if self.run_timeout else None
        schedule = self.build_poll_schedule(hook, context, interval)
        if self.deferrable:
            self._remember(context, ref, **{DEFERRED_FLAG: True})
            self.defer(
                trigger=FlowRunTrigger(
                    hook_class_path=hook.class_path(),
                    hook_kwargs=hook.hook_kwargs(),
                    run_ref=ref.to_dict(),
                    deadline=deadline,
                    stop_states=[s.value for s in self.stop_states()],
                    cancel_on_kill=self.cancel_on_kill,
                    run_url=run_url,
                    initial_delay=first_poll_delay(schedule.next_delay(time.time())),
                    schedule=schedule.to_dict(),
                ),
                method_name="execute_complete",
                kwargs={"run_ref": ref.to_dict(), "submitted_at": self._submitted_at},
                # No framework timeout: it would skip execute_complete and leak the vendor run.
                timeout=None,
            )
        return self._wait_sync(context, hook, ref, schedule, deadline, run_url)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        run_ref: dict[str, Any] | None = None,
        submitted_at: float | None = None,
    ) -> Any:
        echoed = event.get("run_ref") if isinstance(event.get("run_ref"), dict) else None
        ref = RunRef.from_dict(run_ref or echoed or {"run_id": str(event["run_id"])})
        self._run_ref = ref
        self._remember(context, ref)  # resumed: no longer deferred
        # dag.test() drops next_kwargs: the trigger echoes the start time in its event as well.
        self._submitted_at = submitted_at if submitted_at is not None else event.get("submitted_at")
        return self._finish(context, event, ref)

    def on_kill(self) -> None:
        if self._run_ref is not None and self.cancel_on_kill:
            self._cancel_quietly(self._run_ref, reason="the task was killed")

    # -- internals -------------------------------------------------------------------------------------
    def _settled(self, status: RunStatus) -> bool:
        return status.state.is_terminal or status.state in self.stop_states()

    def _attach_or_submit(self, hook: H, context: Any) -> RunRef:
        store = context.get("task_state_store") if self.durable else None
        saved = store.get(STATE_KEY) if store is not None else None
        if saved and saved.get(DONE_FLAG):
            # Only a clear runs a task again after it succeeded: the user asks for a new run.
            self.log.info(
                "This task already finished with %s run %s; it was cleared, so a new run starts.",
                hook.vendor,
                saved.get("run_id"),
            )
        elif saved:
            ref = RunRef.from_dict(saved)
            try:
                status = hook.get_status(ref)
            except FlowRunsApiError as exc:
                if exc.retryable:
                    raise  # cannot tell whether the run lives: never risk a duplicate
                self.log.warning("Stored run %s cannot be read (%s); starting a new run.", ref.run_id, exc)
            else:
                deferred = saved.get(DEFERRED_FLAG) and status.state.is_active and not status.stopping
                if deferred and self._stop_earlier_run(ref):
                    pass  # stopped: a new run below
                elif status.stopping:
                    # Stopped when the task was cleared or marked failed: it will end cancelled.
                    self.log.info(
                        "The earlier try's run %s is being stopped (%s); starting a new run.",
                        ref.run_id,
                        status.vendor_status,
                    )
                elif status.state is not RunState.FAILED and status.state is not RunState.CANCELLED:
                    # A SUCCEEDED run is adopted too: the earlier try died before it finished the task.
                    self.log.info(
                        "Re-attaching to %s run %s from an earlier try (it is %s).",
                        hook.vendor,
                        ref.run_id,
                        status.vendor_status,
                    )
                    return ref
                else:
                    self.log.info(
                        "The earlier try's run %s ended %s; starting a new run.",
                        ref.run_id,
                        status.vendor_status,
                    )
        elif self.durable:
            found = self.find_existing(hook, context)
            # Only a live run is adopted by name: a finished one may be what a user cleared the task
            # to redo, while a crash between submit and the state store leaves one still going.
            if (
                found is not None
                and (status := hook.get_status(found)).state.is_active
                and not status.stopping
            ):
                self.log.info(
                    "Found this task's existing %s run %s; re-attaching.", hook.vendor, found.run_id
                )
                self._remember(context, found)
                return found
        submitted_at = time.time()
        ref = self.submit(hook, context)
        self._submitted_at = submitted_at
        self.log.info("Started %s run %s.", hook.vendor, ref.run_id)
        self._remember(context, ref)
        return ref

    def _wait_sync(
        self,
        context: Any,
        hook: H,
        ref: RunRef,
        schedule: PollSchedule,
        deadline: float | None,
        run_url: str | None,
    ) -> Any:
        from airflow_provider_flowruns.triggers.run import status_event

        failures = 0  # failed polls in a row: the same back-off rule as the trigger's (next_gap)
        while True:
            if deadline is not None and time.time() >= deadline:
                return self._finish(
                    context,
                    {
                        "status": "timeout",
                        "run_id": ref.run_id,
                        "run_url": run_url,
                        "vendor_status": None,
                        "message": f"run {ref.run_id} did not finish within {self.run_timeout}s",
                    },
                    ref,
                )
            delay = schedule.next_gap(time.time(), failures=failures)
            if deadline is not None and delay >= deadline - time.time():
                time.sleep(max(0.0, deadline - time.time()))  # then time out: no poll past the deadline
                continue
            time.sleep(delay)
            try:
                status = hook.get_status(ref)
            except FlowRunsApiError as exc:
                if not exc.retryable:
                    raise
                failures += 1
                self.log.warning("Status check for run %s failed (%s); will poll again.", ref.run_id, exc)
                continue
            failures = 0
            self.log.info("%s run %s is %s", hook.vendor, ref.run_id, status.vendor_status)
            if self._settled(status):
                return self._finish(context, status_event(status, run_url=run_url), ref)

    def _finish(self, context: Any, event: dict[str, Any], ref: RunRef) -> Any:
        from airflow_provider_flowruns.core.history import record_task_duration
        from airflow_provider_flowruns.core.outcome import raise_for_event

        self.log.info(
            "%s run %s settled: %s (%s) %s",
            self.vendor_info.name,
            ref.run_id,
            event.get("status"),
            event.get("vendor_status"),
            event.get("message") or "",
        )
        if event.get("status") == "timeout" and self.cancel_on_kill:
            self._cancel_quietly(ref, reason="its deadline passed")
        if event.get("status") in {"success", "failed", "cancelled", "paused"}:
            self.report(self.hook, ref, event, context)
        if event.get("status") == "success" and self._submitted_at is not None:
            # Wall-clock from submit to detection: what the next run's adaptive schedule learns from.
            record_task_duration(context, time.time() - self._submitted_at)
        accept = frozenset({"paused"}) if RunState.PAUSED in self.stop_states() else frozenset()
        raise_for_event(event, vendor=self.vendor_info.name, accept=accept)
        result = self.result(self.hook, ref, event, context)
        self._announce(
            context,
            ref,
            status="paused" if event.get("status") == "paused" else "succeeded",
            vendor_status=event.get("vendor_status"),
            run_url=event.get("run_url") or self.hook.run_url(ref),
        )
        self._mark_done(context, ref)
        return result

    def _announce(
        self, context: Any, ref: RunRef, *, status: str, vendor_status: Any, run_url: str | None
    ) -> None:
        """The run as the extra of this task's outlet asset events (``core/produced.py``): a DAG
        scheduled on the asset reads which run finished, where, and how, without code of its own."""
        from airflow_provider_flowruns.core.produced import VendorRun, annotate_outlets

        run = VendorRun(
            vendor=self.vendor_info.name,
            run_id=ref.run_id,
            run_url=run_url,
            kind=ref.kind,
            scope={str(k): str(v) for k, v in ref.scope.items()},
            status=status,
            vendor_status=None if vendor_status is None else str(vendor_status),
        )
        annotate_outlets(context, self.outlets, run=run, task=self)

    def _mark_done(self, context: Any, ref: RunRef) -> None:
        """Flag the stored run as this task's finished work. Until then a retry re-attaches to it
        (even once it succeeded, so a failed result step is redone on the same run); after, only a
        clear can run the task again, and that asks for a new run."""
        self._remember(context, ref, **{DONE_FLAG: True})

    def _remember(self, context: Any, ref: RunRef, **flags: bool) -> None:
        """Store ``ref`` (and ``flags``) as this task's run, where Airflow keeps task state (3.3+)."""
        store = context.get("task_state_store") if self.durable else None
        if store is not None:
            store.set(STATE_KEY, {**ref.to_dict(), **flags})

    def _stop_earlier_run(self, ref: RunRef) -> bool:
        """The earlier try was waiting in the triggerer and never resumed: the task was cleared or
        marked failed while deferred. Airflow tells that try's trigger to stop the run (``on_kill``)
        but schedules this try at the same time, so adopting the run races its cancellation. Stop it
        here first (cancelling is idempotent) and let this try start anew; a run the vendor cannot
        stop, or ``cancel_on_kill=False``, is adopted instead. True when the run was stopped."""
        if not self.cancel_on_kill:
            return False
        try:
            self.hook.cancel(ref)
        except NotSupported as exc:
            self.log.info("The earlier try's run %s cannot be stopped (%s); re-attaching.", ref.run_id, exc)
            return False
        except Exception as exc:
            # The old trigger's on_kill may have stopped it a moment ago: then it is stopped all the same.
            try:
                status = self.hook.get_status(ref)
            except Exception:
                status = None
            if status is None or not (status.stopping or status.state is RunState.CANCELLED):
                self.log.warning(
                    "Could not stop the earlier try's run %s (%s); re-attaching.", ref.run_id, exc
                )
                return False
        self.log.info(
            "The task was cleared or marked failed while its %s run %s was watched in the triggerer: "
            "stopped that run; starting a new one.",
            self.vendor_info.name,
            ref.run_id,
        )
        return True

    def _cancel_quietly(self, ref: RunRef, *, reason: str) -> None:
        try:
            self.hook.cancel(ref)
            self.log.info("Cancelled %s run %s because %s.", self.vendor_info.name, ref.run_id, reason)
        except NotSupported as exc:
            self.log.warning("%s", exc)
        except Exception:
            self.log.exception("Could not cancel run %s; it may still be running.", ref.run_id)
