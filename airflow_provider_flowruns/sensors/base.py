"""``FlowRunSensor``: wait for a run someone else started, by id (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.core.params import OnPause, default_poll_interval, on_pause_checked
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.operators.vendor import VendorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.core.http import FlowRunsHook  # noqa: F401 - the base's type argument
    from airflow_provider_flowruns.core.params import RunIdArg

# As in operators/base.py: the run engine and the trigger are imported where they are used.


class FlowRunSensor(VendorOperator["FlowRunsHook"], BaseSensorOperator):
    """Succeeds when the run succeeds; fails with the vendor's error when it fails or is cancelled.

    ``poke_interval`` (Airflow's name for a sensor's interval) is raised to the vendor's poll floor;
    ``poll_interval``, the run operators' name for the same thing, is accepted as an alias so one
    word works on both. With ``deferrable=True`` the sensor checks once and then waits in the triggerer through the same :class:`FlowRunTrigger` the operators use.
    It never cancels the run it watches: it did not start it.

    :param on_pause: when the run pauses (waits for input or a review): ``wait`` (default) keeps
        waiting, ``succeed`` succeeds, ``fail`` fails the task. ``succeed_on_pause=True``, its old
        spelling, still works for one release, with a deprecation warning.
    """

    links_to_run = True
    template_fields: Sequence[str] = ("conn_id", "run_id")

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        conn_id: str | None = None,
        deferrable: bool | None = None,
        on_pause: OnPause = "wait",
        succeed_on_pause: bool | None = None,
        hook_params: dict[str, Any] | None = None,
        poll_interval: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_flowruns.version_compat import default_deferrable

        if poll_interval is not None:
            if kwargs.get("poke_interval") not in (None, poll_interval):
                raise FlowRunsConfigError(
                    f"poll_interval={poll_interval!r} and poke_interval={kwargs['poke_interval']!r} disagree: "
                    "on a sensor poll_interval is an alias of poke_interval (Airflow's name); pass one of them"
                )
            kwargs["poke_interval"] = poll_interval
        kwargs.setdefault(
            "poke_interval",
            default_poll_interval(self.vendor_info.conn_type, self.vendor_info.default_poll_interval),
        )
        kwargs.setdefault("timeout", 7 * 24 * 3600)
        super().__init__(conn_id=conn_id, hook_params=hook_params, **kwargs)
        if not run_id and run_id != 0:
            raise FlowRunsConfigError("run_id is required")
        self.run_id = run_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        if succeed_on_pause is not None:
            old: OnPause = "succeed" if succeed_on_pause else "wait"
            if on_pause not in ("wait", old):
                raise FlowRunsConfigError(
                    f"succeed_on_pause={succeed_on_pause!r} and on_pause={on_pause!r} disagree; pass on_pause only"
                )
            on_pause = on_pause_checked(
                succeed_on_pause, "succeed_on_pause", deprecated={succeed_on_pause: old}
            )
        self.on_pause = on_pause_checked(on_pause)
        self._requested_interval: float | None = None

    def build_ref(self) -> RunRef:
        """The run to watch; vendors with scoping ids (clean room, project) override."""
        return RunRef(run_id=str(self.run_id))

    def _interval(self) -> float:
        if self._requested_interval is None:
            self._requested_interval = float(self.poke_interval)
        return self.hook.poll_interval(
            self._requested_interval,
            default=default_poll_interval(self.vendor_info.conn_type, self.vendor_info.default_poll_interval),
            logger=self.log,
        )

    def _settle(self, event: dict[str, Any]) -> None:
        """Return for success (or a pause with ``on_pause="succeed"``); raise what the run's end means."""
        from airflow_provider_flowruns.core.outcome import raise_for_event

        if event.get("status") == "paused" and self.on_pause == "fail":
            raise RunFailed(
                f"{self.vendor_info.name} run {event.get('run_id')} is paused ({event.get('vendor_status')}) "
                f"and on_pause='fail': {event.get('message')}",
                run_id=event.get("run_id"),
                vendor_status=event.get("vendor_status"),
            )
        accept = frozenset({"paused"}) if self.on_pause == "succeed" else frozenset()
        raise_for_event(event, vendor=self.vendor_info.name, accept=accept)

    def poke(self, context: Context) -> bool:
        from airflow_provider_flowruns.triggers.run import status_event

        self.poke_interval = self._interval()
        ref = self.build_ref()
        try:
            status = self.hook.get_status(ref)
        except FlowRunsApiError as exc:
            if exc.retryable:
                self.log.warning("Status check for run %s failed (%s); will poke again.", ref.run_id, exc)
                return False
            raise
        self.log.info("%s run %s is %s", self.vendor_info.name, ref.run_id, status.vendor_status)
        if status.state.is_terminal or (status.state is RunState.PAUSED and self.on_pause != "wait"):
            self._settle(status_event(status))
            return True
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_flowruns.core.schedule import PollSchedule
        from airflow_provider_flowruns.triggers.run import FlowRunTrigger, first_poll_delay

        if self.poke(context):
            return None
        ref = self.build_ref()
        self.defer(
            trigger=FlowRunTrigger(
                hook_class_path=self.hook.class_path(),
                hook_kwargs=self.hook.hook_kwargs(),
                run_ref=ref.to_dict(),
                deadline=time.time() + float(self.timeout),
                stop_states=[RunState.PAUSED.value] if self.on_pause != "wait" else [],
                cancel_on_kill=False,
                run_url=self.hook.run_url(ref),
                initial_delay=first_poll_delay(self._interval()),
                # A sensor does not know when the run started: fixed, but jitter kept above the floor.
                schedule=PollSchedule.fixed(
                    self._interval(), self.hook.poll_floor / self.hook.time_scale
                ).to_dict(),
            ),
            method_name="execute_complete",
            timeout=None,
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        self._settle(event)
        self.log.info("%s run %s: %s", self.vendor_info.name, event.get("run_id"), event.get("message"))
