"""LiveRamp Clean Room (Habu): flow runs (start, resume, replay) and question runs.

Every operator here that creates a run shares two behaviours, written once in
:class:`HabuCreateRunOperator`:

- **Deterministic names** (``airflow__<dag>__<task>__<run id>[__<map index>]`` unless ``name`` is
  given), so a retried task finds its run by name even where Airflow has no task state store.
- **The hourly create budget.** A 429 on create is never retried on the spot. With
  ``on_create_limit="wait"`` (default) the task defers until the next window, holding no worker
  slot, and tries once more (up to ``create_limit_timeout``); with ``"fail"`` it fails at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    RateLimitBudgetExhausted,
    RunFailed,
)
from airflow_provider_flowruns.core.params import is_templated, task_key, to_seconds
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.operators.base import FlowRunOperator
from airflow_provider_flowruns.vendors import HABU
from airflow_provider_flowruns.vendors.habu import (
    FLOW_RUN,
    QUESTION_RUN,
    level_number,
    nodes_payload,
    question_parameters,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.core.params import RunIdArg
    from airflow_provider_flowruns.hooks.habu import HabuHook

OnCreateLimit = Literal["wait", "fail"]
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+\-]+")


def default_run_name(context: Any) -> str:
    """``airflow__<dag>__<task>__<run id>[__<map index>]``, safe characters only, at most 200."""
    return _NAME_UNSAFE.sub("_", "airflow__" + task_key(context, "__", unmapped=None))[:200]


def _check_levels_and_nodes(nodes: Any, pause_level: Any, start_level: Any) -> None:
    """Fail at DAG parse, naming the parameter, unless the value is still a template."""
    for value, label in ((pause_level, "pause_level"), (start_level, "start_level")):
        if value is not None and not is_templated(value):
            level_number(value, label)
    if nodes is not None and not is_templated(nodes):
        nodes_payload(nodes)


class HabuCreateRunOperator(FlowRunOperator["HabuHook"]):
    """Base for Habu operators that create a run (flow run, replay, question run).

    :param name: run name; default is deterministic per task instance (see module docs).
    :param on_create_limit: ``wait`` (default) for the next hourly window when Habu's 20 creations
        per hour are used up, or ``fail`` at once.
    :param create_limit_timeout: how long (seconds or timedelta) to keep waiting for a window.
    """

    vendor_info = HABU
    check_before_defer = False  # a run created seconds ago is not done; save the poll budget

    def __init__(
        self,
        *,
        name: str | None = None,
        on_create_limit: OnCreateLimit = "wait",
        create_limit_timeout: float | timedelta = timedelta(hours=6),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_create_limit not in ("wait", "fail"):
            raise FlowRunsConfigError(f"on_create_limit must be 'wait' or 'fail', got {on_create_limit!r}")
        self.name = name
        self.on_create_limit = on_create_limit
        self.create_limit_timeout = to_seconds(create_limit_timeout, "create_limit_timeout")
        self._waiting_since: float | None = None

    def run_name(self, context: Any) -> str:
        return str(self.name) if self.name else default_run_name(context)

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except RateLimitBudgetExhausted as exc:
            return self._wait_for_window(context, exc)

    def execute_after_window(
        self, context: Context, event: Any = None, waiting_since: float | None = None
    ) -> Any:
        self._waiting_since = waiting_since
        self.log.info("A new create window has opened; trying again.")
        return self.execute(context)

    def _wait_for_window(self, context: Any, exc: RateLimitBudgetExhausted) -> Any:
        since = self._waiting_since or time.time()
        waited = time.time() - since
        if self.on_create_limit == "fail" or (
            self.create_limit_timeout is not None and waited >= self.create_limit_timeout
        ):
            if waited:
                self.log.error("Gave up after waiting %.0fs for a create window.", waited)
            raise exc
        delay = max(1.0, (exc.retry_at or time.time() + 60) - time.time())
        self.log.warning(
            "%s Waiting %.0fs in the triggerer (no worker held), then trying once more.", exc, delay
        )
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=delay)),
            method_name="execute_after_window",
            kwargs={"waiting_since": since},
        )


class HabuFlowRunOperator(HabuCreateRunOperator):
    """Start a clean-room flow run and wait until it is COMPLETED, or PAUSED at ``pause_level``.

    :param cleanroom_id: the clean room.
    :param flow_id: the clean-room flow.
    :param nodes: node parameters, ``{nodeIdentifier: {PARAM: value}}`` or the API's list of
        ``{"nodeIdentifier", "parameters"}``; templated, so ``{{ data_interval_start | ds }}`` sets
        partition dates of a recurring run.
    :param flow_run_parameters: alternatively, the example-workflow page's shape
        (``[{"nodeId", "parameters": {name: {"value", "parameterType"}}}]``, integer levels).
    :param pause_level: pause after this level (``1`` or ``"Level-1"``); the task succeeds when the
        run pauses there. Resume it with :class:`HabuResumeFlowRunOperator`.
    :param start_level: level to start from.
    :param options: other create fields (``branches``, ``datasetAssignments``, ...).

    Returns the run id; pushes ``run_id``, ``run_url`` and ``run_name``. Habu cannot cancel a run:
    on kill or timeout the task says so and the run keeps going.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "cleanroom_id",
        "flow_id",
        "name",
        "nodes",
        "flow_run_parameters",
        "pause_level",
        "start_level",
        "options",
    )
    template_fields_renderers = {"nodes": "json", "flow_run_parameters": "json", "options": "json"}
    lineage_source = "cleanrooms/{cleanroom_id}/flows/{flow_id}"

    def __init__(
        self,
        *,
        cleanroom_id: str,
        flow_id: str,
        nodes: Any = None,
        flow_run_parameters: list[dict[str, Any]] | None = None,
        pause_level: int | str | None = None,
        start_level: int | str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not cleanroom_id or not flow_id:
            raise FlowRunsConfigError("cleanroom_id and flow_id are required")
        if nodes is not None and flow_run_parameters is not None:
            raise FlowRunsConfigError("pass nodes or flow_run_parameters, not both")
        _check_levels_and_nodes(nodes, pause_level, start_level)
        self.cleanroom_id = cleanroom_id
        self.flow_id = flow_id
        self.nodes = nodes
        self.flow_run_parameters = flow_run_parameters
        self.pause_level = pause_level
        self.start_level = start_level
        self.options = options

    def _ref(self, run_id: str) -> RunRef:
        return RunRef(
            run_id=run_id,
            kind=FLOW_RUN,
            scope={"cleanroom_id": str(self.cleanroom_id), "flow_id": str(self.flow_id)},
        )

    def submit(self, hook: HabuHook, context: Any) -> RunRef:
        name = self.run_name(context)
        run = hook.create_flow_run(
            self.cleanroom_id,
            self.flow_id,
            name=name,
            nodes=self.nodes,
            flow_run_parameters=self.flow_run_parameters,
            pause_level=self.pause_level,
            start_level=self.start_level,
            options=self.options,
        )
        context["ti"].xcom_push(key="run_name", value=name)
        return self._ref(str(run["id"]))

    def find_existing(self, hook: HabuHook, context: Any) -> RunRef | None:
        run = hook.find_flow_run(self.cleanroom_id, self.flow_id, self.run_name(context))
        return self._ref(str(run["id"])) if run else None

    def stop_states(self) -> frozenset[RunState]:
        return frozenset({RunState.PAUSED}) if self.pause_level is not None else frozenset()

    def vendor_run_durations(self, hook: HabuHook, context: Any) -> list[float]:
        """Submit-to-completion times of this flow's past completed runs (newest first). A run
        that stops at a pause level ends elsewhere than a full run, so it uses task history only."""
        if self.pause_level is not None:
            return []
        from airflow_provider_flowruns.core.history import vendor_durations

        return vendor_durations(
            hook.list_flow_runs(self.cleanroom_id, self.flow_id),
            start="submittedAt",
            end="completedAt",
            succeeded={"COMPLETED"},
        )


class HabuReplayFlowRunOperator(HabuCreateRunOperator):
    """Replay ("reuse") flow run ``run_id``: a new run that reuses the parent's results, from
    ``start_level``, optionally pausing at ``pause_level``. Returns and follows the **new** run id.

    Pass ``flow_id`` (the parent's flow) so a retried task can also find its replay by name where
    Airflow has no task state store. Replays count against the 20 creations per hour.
    """

    lineage_source = "cleanrooms/{cleanroom_id}/flows/{flow_id}"
    template_fields: Sequence[str] = (
        "conn_id",
        "cleanroom_id",
        "run_id",
        "flow_id",
        "name",
        "nodes",
        "pause_level",
        "start_level",
        "options",
    )

    def __init__(
        self,
        *,
        cleanroom_id: str,
        run_id: RunIdArg,
        flow_id: str | None = None,
        nodes: Any = None,
        pause_level: int | str | None = None,
        start_level: int | str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not cleanroom_id or not run_id:
            raise FlowRunsConfigError("cleanroom_id and run_id (the flow run to replay) are required")
        _check_levels_and_nodes(nodes, pause_level, start_level)
        self.cleanroom_id = cleanroom_id
        self.run_id = run_id
        self.flow_id = flow_id
        self.nodes = nodes
        self.pause_level = pause_level
        self.start_level = start_level
        self.options = options

    def _ref(self, run_id: str) -> RunRef:
        scope = {"cleanroom_id": str(self.cleanroom_id)}
        if self.flow_id:
            scope["flow_id"] = str(self.flow_id)
        return RunRef(run_id=run_id, kind=FLOW_RUN, scope=scope)

    def submit(self, hook: HabuHook, context: Any) -> RunRef:
        name = self.run_name(context)
        new_id = hook.replay_flow_run(
            self.cleanroom_id,
            str(self.run_id),
            name=name,
            start_level=self.start_level,
            pause_level=self.pause_level,
            nodes=self.nodes,
            options=self.options,
            flow_id=self.flow_id,
        )
        self.log.info("Replay of flow run %s is run %s.", self.run_id, new_id)
        context["ti"].xcom_push(key="run_name", value=name)
        return self._ref(new_id)

    def find_existing(self, hook: HabuHook, context: Any) -> RunRef | None:
        if not self.flow_id:
            return None
        run = hook.find_flow_run(self.cleanroom_id, self.flow_id, self.run_name(context))
        return self._ref(str(run["id"])) if run else None

    def stop_states(self) -> frozenset[RunState]:
        return frozenset({RunState.PAUSED}) if self.pause_level is not None else frozenset()


class HabuResumeFlowRunOperator(FlowRunOperator["HabuHook"]):
    """Resume a PAUSED flow run from its intermediate results and wait until it is COMPLETED, or
    PAUSED again at ``pause_level``. A run that is already past its pause (resumed by an earlier
    try or in the UI) is followed, not resumed twice. Returns the run id."""

    vendor_info = HABU
    check_before_defer = False
    template_fields: Sequence[str] = ("conn_id", "cleanroom_id", "run_id", "pause_level")
    lineage_source = "cleanrooms/{cleanroom_id}/flow-runs/{run_id}"

    def __init__(
        self, *, cleanroom_id: str, run_id: RunIdArg, pause_level: int | str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not cleanroom_id or not run_id:
            raise FlowRunsConfigError("cleanroom_id and run_id are required")
        if pause_level is not None and not is_templated(pause_level):
            level_number(pause_level, "pause_level")
        self.cleanroom_id = cleanroom_id
        self.run_id = run_id
        self.pause_level = pause_level

    def submit(self, hook: HabuHook, context: Any) -> RunRef:
        """Resume without reading the status first: every status read counts against the run's
        5-minute polling budget, and the run was polled by the task that waited for the pause.
        Only when Habu refuses (409: not paused) or the answer is lost is the status read."""
        ref = RunRef(run_id=str(self.run_id), kind=FLOW_RUN, scope={"cleanroom_id": str(self.cleanroom_id)})
        try:
            hook.resume_flow_run(self.cleanroom_id, ref.run_id, pause_level=self.pause_level)
        except FlowRunsApiError as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 409:
                raise
            status = hook.get_status(ref)
            if status.state is RunState.PAUSED and exc.status != 409:
                self.log.warning(
                    "Resume of %s got no clear answer (%s); it is still paused, resuming.", ref.run_id, exc
                )
                hook.resume_flow_run(self.cleanroom_id, ref.run_id, pause_level=self.pause_level)
            elif status.state.is_active or status.state is RunState.SUCCEEDED:
                self.log.info(
                    "Flow run %s is %s, not paused: following it without resuming.",
                    ref.run_id,
                    status.vendor_status,
                )
                return ref
            else:
                raise RunFailed(
                    f"flow run {ref.run_id} is {status.vendor_status} and cannot be resumed: {status.message or exc}",
                    run_id=ref.run_id,
                    vendor_status=status.vendor_status,
                ) from None
        target = f"a pause at Level-{level_number(self.pause_level)}" if self.pause_level else "completion"
        self.log.info("Resumed flow run %s; it now runs to %s.", ref.run_id, target)
        return ref

    def stop_states(self) -> frozenset[RunState]:
        return frozenset({RunState.PAUSED}) if self.pause_level is not None else frozenset()


class HabuQuestionRunOperator(HabuCreateRunOperator):
    """Run a clean-room question and wait until it is COMPLETED.

    :param question_id: the clean-room question (``cleanroomQuestionId``).
    :param parameters: run parameters (templated: ``{"START_DATE": "{{ data_interval_start | ds }}"}``).
    :param partition_parameters: partition parameters, merged into ``parameters`` as the API takes them.
    :param cleanroom_id: optional, for the link to the run in the Habu UI.

    A question that is not READY (datasets missing) fails the task with Habu's 412 message.
    Returns the run id; pushes ``run_id``, ``run_url`` and ``run_name``.
    """

    template_fields: Sequence[str] = ("conn_id", "question_id", "name", "parameters", "partition_parameters")
    template_fields_renderers = {"parameters": "json", "partition_parameters": "json"}
    lineage_source = "questions/{question_id}"

    def __init__(
        self,
        *,
        question_id: str,
        parameters: dict[str, Any] | None = None,
        partition_parameters: dict[str, Any] | None = None,
        cleanroom_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not question_id:
            raise FlowRunsConfigError("question_id is required")
        for value, label in ((parameters, "parameters"), (partition_parameters, "partition_parameters")):
            if value is not None and not isinstance(value, dict) and not is_templated(value):
                raise FlowRunsConfigError(f"{label} must be a dict of parameter name -> value, got {value!r}")
            if isinstance(value, dict):
                question_parameters(value, label)  # values: strings (templated or not) or numbers
        self.question_id = question_id
        self.parameters = parameters
        self.partition_parameters = partition_parameters
        self.cleanroom_id = cleanroom_id

    def _ref(self, run_id: str) -> RunRef:
        scope = {"question_id": str(self.question_id)}
        if self.cleanroom_id:
            scope["cleanroom_id"] = str(self.cleanroom_id)
        return RunRef(run_id=run_id, kind=QUESTION_RUN, scope=scope)

    def submit(self, hook: HabuHook, context: Any) -> RunRef:
        params = {**(self.parameters or {}), **(self.partition_parameters or {})}
        name = self.run_name(context)
        run = hook.create_question_run(self.question_id, name=name, parameters=params)
        context["ti"].xcom_push(key="run_name", value=name)
        return self._ref(str(run["id"]))

    def find_existing(self, hook: HabuHook, context: Any) -> RunRef | None:
        run = hook.find_question_run(self.question_id, self.run_name(context))
        return self._ref(str(run["id"])) if run else None

    def vendor_run_durations(self, hook: HabuHook, context: Any) -> list[float]:
        """Submit-to-completion times of this question's past completed runs (newest first)."""
        from airflow_provider_flowruns.core.history import vendor_durations

        return vendor_durations(
            hook.list_question_runs(self.question_id, status="COMPLETED"),
            start="submittedAt",
            end="completedAt",
            succeeded={"COMPLETED"},
        )
