"""Activepieces: trigger a flow by webhook, retry a run, resume a paused run, and wait for the result.

All three follow the shared :class:`FlowRunOperator` contract; what is Activepieces' own is how a
run is found (the webhook answers no run id), what PAUSED means (human input or a delay), and which
run a retry yields.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.core.params import (
    OnPause,
    is_templated,
    on_pause_checked,
    task_key,
    to_seconds,
)
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.operators.base import FlowRunOperator
from airflow_provider_flowruns.vendors import ACTIVEPIECES
from airflow_provider_flowruns.vendors.activepieces import RETRY_STRATEGIES

if TYPE_CHECKING:
    from airflow_provider_flowruns.core.params import RunIdArg
    from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook


def _try_number(context: Any) -> int:
    return int(getattr(context["ti"], "try_number", 1) or 1)


class ActivepiecesRunOperator(FlowRunOperator["ActivepiecesHook"]):
    """What every Activepieces run operator shares: the PAUSED choice and the run report.

    :param on_pause: a PAUSED run waits for input or a delay. ``wait`` (default) keeps waiting
        until it ends, ``succeed`` succeeds while it is paused (resume it downstream with
        :class:`ActivepiecesResumeFlowRunOperator`), ``fail`` fails the task. (``return``, the old
        name of ``succeed``, still works for one release, with a deprecation warning.)
    """

    vendor_info = ACTIVEPIECES

    def __init__(self, *, on_pause: OnPause = "wait", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_pause = on_pause_checked(on_pause, deprecated={"return": "succeed"})

    def stop_states(self) -> frozenset[RunState]:
        return frozenset() if self.on_pause == "wait" else frozenset({RunState.PAUSED})

    def report(self, hook: ActivepiecesHook, ref: RunRef, event: dict[str, Any], context: Any) -> None:
        """Push ``run_details`` (and log the failed step or the pause) on success and failure alike."""
        from airflow_provider_flowruns.hooks.activepieces import failed_step_name

        run = hook.get_run(ref.run_id)
        pause = run.get("pauseMetadata") if run.get("status") == "PAUSED" else None
        details = {
            "run_id": ref.run_id,
            "status": run.get("status"),
            "flow_id": run.get("flowId"),
            "flow_version_id": run.get("flowVersionId"),
            "failed_step": failed_step_name(run),
            "message": event.get("message"),
            "start_time": run.get("startTime"),
            "finish_time": run.get("finishTime"),
            "tags": run.get("tags") or [],
            "parent_run_id": run.get("parentRunId"),
            "steps_count": run.get("stepsCount"),
            "pause": pause,
        }
        if details["failed_step"]:
            self.log.error("Activepieces run %s: %s", ref.run_id, event.get("message"))
        if pause:
            self.log.info(
                "Activepieces run %s is PAUSED (%s): %s", ref.run_id, pause.get("type"), event.get("message")
            )
        context["ti"].xcom_push(key="run_details", value=details)

    def result(self, hook: ActivepiecesHook, ref: RunRef, event: dict[str, Any], context: Any) -> Any:
        if event.get("status") == "paused" and self.on_pause == "fail":
            raise RunFailed(
                f"Activepieces run {ref.run_id} is PAUSED and on_pause='fail': {event.get('message')}",
                run_id=ref.run_id,
                vendor_status=event.get("vendor_status"),
            )
        return ref.run_id


class ActivepiecesTriggerFlowOperator(ActivepiecesRunOperator):
    """Trigger flow ``flow_id`` through its webhook, find the run it started, and wait for it.

    :param flow_id: the flow (21-character id); its trigger must be a webhook.
    :param payload: JSON-able body the flow receives (templated; e.g. built from upstream XCom).
    :param sync: call ``/sync``: Activepieces waits up to 30 s for the flow's Return Response step;
        its answer is pushed as the XCom ``response`` (204 when the flow had not answered yet).
    :param headers: extra request headers for the flow to read.
    :param parent_run_id: make this run a child of that run (``ap-parent-run-id``).
    :param fail_parent_on_failure: with a parent, fail the parent when this run fails.
    :param correlation_timeout: seconds to look for the triggered run before failing (default 180).
    :param correlation_poll_interval: seconds between looks (default 3).

    The webhook answers no run id. The task adds ``?airflow_run_key=<dag/task/run/map/try>`` to the
    call, then lists the flow's runs created since (flowId + createdAfter, a few pages at most) and
    reads each new run's trigger output for that key. A retried task re-attaches to the run its
    earlier try started (task state store on Airflow 3.3+, else that key) instead of triggering
    again. Returns the run id; pushes ``run_id``, ``run_url``, ``run_details``.
    """

    template_fields: Sequence[str] = ("conn_id", "flow_id", "payload", "headers", "parent_run_id")
    template_fields_renderers = {"payload": "json", "headers": "json"}
    lineage_source = "flows/{flow_id}"

    def __init__(
        self,
        *,
        flow_id: str,
        payload: Any = None,
        sync: bool = False,
        headers: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        fail_parent_on_failure: bool | None = None,
        correlation_timeout: float | timedelta = 180.0,
        correlation_poll_interval: float = 3.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not flow_id:
            raise FlowRunsConfigError("flow_id is required")
        if headers is not None and not isinstance(headers, dict):
            raise FlowRunsConfigError(f"headers must be a dict of header -> value, got {headers!r}")
        if fail_parent_on_failure is not None and not parent_run_id:
            raise FlowRunsConfigError("fail_parent_on_failure needs parent_run_id")
        self.flow_id = flow_id
        self.payload = payload
        self.sync = bool(sync)
        self.headers = headers
        self.parent_run_id = parent_run_id
        self.fail_parent_on_failure = fail_parent_on_failure
        self.correlation_timeout = to_seconds(correlation_timeout, "correlation_timeout")
        self.correlation_poll_interval = to_seconds(correlation_poll_interval, "correlation_poll_interval")

    @staticmethod
    def marker_prefix(context: Any) -> str:
        return f"{task_key(context)}/"

    def submit(self, hook: ActivepiecesHook, context: Any) -> RunRef:
        from airflow_provider_flowruns.hooks.activepieces import CorrelationTimeout, utcnow

        # The try number makes each try's run distinguishable from an earlier try's, which may
        # have been created moments before (inside the search window).
        marker = f"{self.marker_prefix(context)}{_try_number(context)}"
        since = utcnow()
        lost: FlowRunsApiError | None = None
        try:
            answer = hook.trigger_webhook(
                self.flow_id,
                self.payload,
                sync=self.sync,
                marker=marker,
                parent_run_id=self.parent_run_id,
                fail_parent_on_failure=self.fail_parent_on_failure,
                headers=self.headers,
            )
        except FlowRunsApiError as exc:
            if not exc.retryable or exc.status == 429:
                raise
            # 5xx or a cut connection: the run may exist all the same; look before failing.
            lost = exc
            self.log.warning("The webhook call got no clear answer (%s); looking for its run.", exc)
        else:
            self.log.info(
                "Activepieces accepted the webhook for flow %s (HTTP %s, request %s).",
                self.flow_id,
                answer.status_code,
                answer.request_id,
            )
            if self.sync:
                context["ti"].xcom_push(key="response", value=answer.to_dict())
        try:
            run = hook.find_run_by_marker(
                self.flow_id,
                lambda found: found == marker,
                since=since,
                timeout=self.correlation_timeout or 0.0,
                poll_interval=self.correlation_poll_interval or 3.0,
            )
        except CorrelationTimeout as exc:
            if lost is not None:
                raise CorrelationTimeout(f"the webhook call failed ({lost}) and {exc}")
            raise
        return RunRef(run_id=str(run["id"]))

    def find_existing(self, hook: ActivepiecesHook, context: Any) -> RunRef | None:
        """On a retry without a stored run: the run an earlier try triggered, found by its key.

        A first try has nothing to find, so it spends no requests here.
        """
        from airflow_provider_flowruns.hooks.activepieces import CorrelationTimeout, utcnow

        if _try_number(context) <= 1:
            return None
        prefix = self.marker_prefix(context)
        started = getattr(context.get("dag_run"), "start_date", None) or utcnow() - timedelta(days=1)
        try:
            run = hook.find_run_by_marker(
                self.flow_id, lambda found: found.startswith(prefix), since=started, timeout=0.0
            )
        except CorrelationTimeout:
            return None
        return RunRef(run_id=str(run["id"]))


class ActivepiecesRetryFlowRunOperator(ActivepiecesRunOperator):
    """Retry finished run ``run_id`` and wait for the retried run.

    :param strategy: ``FROM_FAILED_STEP`` (default) replays cached step outputs and re-queues the
        same run id; ``ON_LATEST_VERSION`` starts a new run (new id) on the latest published
        version with the old trigger payload. Either way the task follows the id Activepieces
        answers and returns it (``retried_run_id`` XCom: the run it retried).

    A run outside the retention window (30 days by default) cannot be retried: Activepieces answers
    410 and the task fails saying so.
    """

    template_fields: Sequence[str] = ("conn_id", "run_id", "strategy")
    lineage_source = "flow-runs/{run_id}"

    def __init__(self, *, run_id: RunIdArg, strategy: str = "FROM_FAILED_STEP", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not run_id:
            raise FlowRunsConfigError("run_id is required")
        if strategy not in RETRY_STRATEGIES and not is_templated(strategy):
            raise FlowRunsConfigError(
                f"strategy must be one of {', '.join(RETRY_STRATEGIES)}, got {strategy!r}"
            )
        self.run_id = run_id
        self.strategy = strategy

    def submit(self, hook: ActivepiecesHook, context: Any) -> RunRef:
        run = hook.retry_run(str(self.run_id), self.strategy)
        new_id = str(run["id"])
        if new_id != self.run_id:
            self.log.info("Retry %s of run %s started a new run %s.", self.strategy, self.run_id, new_id)
        else:
            self.log.info("Retry %s re-queued run %s.", self.strategy, new_id)
        context["ti"].xcom_push(key="retried_run_id", value=str(self.run_id))
        return RunRef(run_id=new_id)

    def find_existing(self, hook: ActivepiecesHook, context: Any) -> RunRef | None:
        """FROM_FAILED_STEP keeps the id, so an earlier try's retry is that run, if it is live again
        (the base adopts only a live run). A new ON_LATEST_VERSION run carries nothing to find it by:
        only the task state store (Airflow 3.3+) re-attaches to it."""
        if self.strategy == "FROM_FAILED_STEP" and _try_number(context) > 1:
            return RunRef(run_id=str(self.run_id))
        return None


class ActivepiecesResumeFlowRunOperator(ActivepiecesRunOperator):
    """Resume PAUSED run ``run_id`` (human input, approval, webhook wait) with ``payload``, then wait.

    :param payload: JSON-able body the paused step receives as its resume payload.
    :param waitpoint_id: the waitpoint to answer; default: read from the run's ``pauseMetadata``.
    :param sync: use the ``/sync`` route; the flow's answer is pushed as the XCom ``response``.

    Posts to ``/v1/flow-runs/{id}/waitpoints/{waitpoint}`` and, where a server does not know the
    waitpoint, to the legacy ``/requests/{requestId}`` route. An expired or already-used link, a
    run that is not PAUSED, or one paused on a delay fail the task with Activepieces' reason.
    """

    template_fields: Sequence[str] = ("conn_id", "run_id", "payload", "waitpoint_id")
    template_fields_renderers = {"payload": "json"}
    lineage_source = "flow-runs/{run_id}"

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        payload: Any = None,
        waitpoint_id: str | None = None,
        sync: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not run_id:
            raise FlowRunsConfigError("run_id is required")
        self.run_id = run_id
        self.payload = payload
        self.waitpoint_id = waitpoint_id
        self.sync = bool(sync)

    def submit(self, hook: ActivepiecesHook, context: Any) -> RunRef:
        answer = hook.resume_run(
            str(self.run_id), self.payload, waitpoint_id=self.waitpoint_id or None, sync=self.sync
        )
        self.log.info("Activepieces run %s resumed: %s", self.run_id, answer.body)
        context["ti"].xcom_push(key="response", value=answer.to_dict())
        return RunRef(run_id=str(self.run_id))

    def find_existing(self, hook: ActivepiecesHook, context: Any) -> RunRef | None:
        """On a retry: a run no longer PAUSED but live was resumed by the earlier try; follow it."""
        if _try_number(context) <= 1:
            return None
        ref = RunRef(run_id=str(self.run_id))
        state = hook.get_status(ref).state
        return ref if state in (RunState.QUEUED, RunState.RUNNING) else None
