"""Vendor runs as Airflow asset events: one watcher engine, one thin declaration per vendor.

``Asset("habu-weekly-reach", watchers=[AssetWatcher(name="habu", trigger=HabuFlowRunWatcher(
cleanroom_id=..., flow_id=...))])`` runs every DAG scheduled on that asset once per run of the flow
that finishes in a wanted state, whoever started it (a partner, the vendor's UI or scheduler, another
Airflow). The trigger lists the vendor's runs every ``poll_interval`` through the hook's ``acall``
(the connection's pacing, retries and, for Habu, the deployment's shared token), and the vendor's
listing is read through the hook's :meth:`~FlowRunsHook.watch_call` and
:meth:`~FlowRunsHook.read_watch_page`, as the run trigger reads a status through ``status_call``.

Which runs are new is decided by ``core/watch.py`` over a cursor kept in an Airflow Variable (the
deployment's shared state, as the Habu token cache), read and written under a lease
(``core/leases.py``), so a restarted triggerer, a trigger moved to another triggerer, or two
triggerers briefly running the same watcher never fire a run twice - except in the one window
``core/watch.py`` describes (a triggerer killed within ``confirm_seconds`` of firing).

Every vendor watcher serializes as :class:`FlowRunWatcher` with plain kwargs: the triggerer runs the
one engine, and a DAG file imports neither a hook nor an HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.runs import RunState
from airflow_provider_flowruns.vendors import ACTIVEPIECES, AMPERITY, HABU, TABLEFLOW
from airflow_provider_flowruns.vendors.habu import FLOW_RUN, QUESTION_RUN

if TYPE_CHECKING:
    from airflow_provider_flowruns.core.http import FlowRunsHook
    from airflow_provider_flowruns.core.watch import ListedRun

#: ``states`` shorthands: "terminal" is every end a run can come to.
STATE_SETS: dict[str, tuple[RunState, ...]] = {
    "succeeded": (RunState.SUCCEEDED,),
    "failed": (RunState.FAILED,),
    "cancelled": (RunState.CANCELLED,),
    "terminal": (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED),
}
#: Real seconds after yielding an event before the watcher records it as delivered: Airflow writes
#: a trigger's events to its database within a triggerer loop or two (about a second each).
CONFIRM_SECONDS = 10.0
#: Pages one poll reads at most; a scan cut short keeps its horizon (and says so in the log).
MAX_PAGES = 20
VARIABLE_PREFIX = "flowruns_watch_"
_DESCRIPTION = (
    "Cursor of a flowruns run watcher (which vendor runs already fired asset events). Managed by the "
    "provider; deleting it makes the watcher start afresh (runs that finished meanwhile do not fire)."
)
#: Cursors of watchers running outside Airflow (no Variables to share them): this process only.
_LOCAL: dict[str, dict[str, Any]] = {}


def wanted_states(states: str | Iterable[str]) -> list[str]:
    """``"succeeded"``, ``"failed"``, ``"cancelled"``, ``"terminal"`` or a list of them (or of
    RunState names), as sorted RunState values. The error names what was given."""
    given = [states] if isinstance(states, str) else list(states)
    out: set[RunState] = set()
    for item in given:
        key = str(item).strip().lower()
        if key in STATE_SETS:
            out.update(STATE_SETS[key])
            continue
        try:
            state = RunState(str(item).strip().upper())
        except ValueError:
            raise FlowRunsConfigError(
                f"states: {item!r} is not one of {', '.join(STATE_SETS)} (or a terminal RunState)"
            ) from None
        if not state.is_terminal:
            raise FlowRunsConfigError(f"states: {item!r} is not a state a run ends in")
        out.add(state)
    if not out:
        raise FlowRunsConfigError("states: name at least one state to fire on")
    return sorted(s.value for s in out)


class FlowRunWatcher(BaseEventTrigger):
    """The engine: list a vendor's runs of one scope, fire one event per run reaching ``states``.

    Usually built through a vendor watcher (:class:`HabuFlowRunWatcher`, ...), which fills the first
    four parameters.

    :param hook_class_path: dotted path of a :class:`FlowRunsHook` subclass.
    :param hook_kwargs: its plain constructor kwargs (``{"conn_id": ...}``; never a secret).
    :param kind: the kind of run (the hook's ``RunRef.kind``: ``flow_run``, ``question_run``, ...).
    :param scope: what is watched, as the hook's listing needs it (``{"cleanroom_id", "flow_id"}``).
    :param states: which ends fire (see :func:`wanted_states`; default ``succeeded``).
    :param poll_interval: vendor seconds between listings; raised to the vendor's poll floor.
    :param lookback: vendor seconds: runs that finished this long before the watcher was first
        deployed fire too (default 0: none do).
    :param cursor: the cursor's name (default: derived from vendor, connection, scope and states).
        Two watchers with one name share what was fired; a new name starts afresh.
    :param max_pages: pages one listing reads at most.
    :param confirm_seconds: real seconds between firing an event and recording it as delivered.
    """

    def __init__(
        self,
        *,
        hook_class_path: str,
        hook_kwargs: Mapping[str, Any],
        kind: str,
        scope: Mapping[str, str],
        states: str | Iterable[str] = "succeeded",
        poll_interval: float | None = None,
        lookback: float = 0.0,
        cursor: str | None = None,
        max_pages: int = MAX_PAGES,
        confirm_seconds: float = CONFIRM_SECONDS,
    ) -> None:
        super().__init__()
        self.hook_class_path = hook_class_path
        self.hook_kwargs = dict(hook_kwargs)
        self.kind = str(kind)
        self.scope = {str(k): str(v) for k, v in dict(scope).items()}
        self.states = wanted_states(states)
        if poll_interval is not None and not (
            isinstance(poll_interval, (int, float))
            and not isinstance(poll_interval, bool)
            and poll_interval > 0
        ):
            raise FlowRunsConfigError(
                f"poll_interval must be a positive number of seconds, got {poll_interval!r}"
            )
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        if not (isinstance(lookback, (int, float)) and lookback >= 0):
            raise FlowRunsConfigError(f"lookback must be >= 0 seconds, got {lookback!r}")
        self.lookback = float(lookback)
        self.cursor = cursor or self.default_cursor()
        if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 1:
            raise FlowRunsConfigError(f"max_pages must be a whole number >= 1, got {max_pages!r}")
        self.max_pages = max_pages
        self.confirm_seconds = float(confirm_seconds)
        self._hook: FlowRunsHook | None = None

    def default_cursor(self) -> str:
        """Vendor (hook), connection, kind, scope and states: one cursor per distinct watch."""
        conn = self.hook_kwargs.get("conn_id")
        scope = ",".join(f"{k}={v}" for k, v in sorted(self.scope.items()))
        return f"{self.hook_class_path}|{conn}|{self.kind}|{scope}|{'+'.join(self.states)}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{FlowRunWatcher.__module__}.{FlowRunWatcher.__qualname__}",
            {
                "hook_class_path": self.hook_class_path,
                "hook_kwargs": self.hook_kwargs,
                "kind": self.kind,
                "scope": self.scope,
                "states": self.states,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
                "cursor": self.cursor,
                "max_pages": self.max_pages,
                "confirm_seconds": self.confirm_seconds,
            },
        )

    @property
    def variable(self) -> str:
        from airflow_provider_flowruns.core.leases import variable_name

        return variable_name(VARIABLE_PREFIX, self.cursor)

    @property
    def hook(self) -> FlowRunsHook:
        if self._hook is None:
            from airflow_provider_flowruns.triggers.run import hook_from_path

            self._hook = hook_from_path(self.hook_class_path, self.hook_kwargs)
        return self._hook

    # -- the loop ----------------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_flowruns.core.leases import DeploymentLock

        owner = uuid.uuid4().hex
        lock = DeploymentLock(_DESCRIPTION, lease_seconds=60.0, settle_seconds=1.0)
        unconfirmed: list[tuple[float, list[str]]] = []
        failures = 0
        try:
            await self.hook.aget_client()  # reads the connection (its time scale) without blocking
            gap = self._gap()
            self.log.info(
                "Watching %s %s runs of %s for %s, every %.1fs (cursor Variable %s)",
                self.hook.vendor,
                self.kind,
                self.scope,
                "/".join(self.states),
                gap,
                self.variable,
            )
            while True:
                try:
                    fired = await self._poll(owner, lock, pending_timeout=self._pending_timeout(gap))
                    failures = 0
                except Exception as exc:
                    # A vendor outage, an answer we cannot read, a lease we could not get: nothing
                    # fires and the cursor stays where it was, so the next poll finds the same runs.
                    failures += 1
                    self.log.error(
                        "Listing %s runs of %s failed (%s: %s); nothing fired, trying again (failure %d).",
                        self.hook.vendor,
                        self.scope,
                        type(exc).__name__,
                        exc,
                        failures,
                    )
                    fired = []
                for run in fired:
                    yield TriggerEvent(self.payload(run))
                if fired:
                    unconfirmed.append((time.monotonic() + self.confirm_seconds, [r.run_id for r in fired]))
                unconfirmed = await self._confirm_due(owner, lock, unconfirmed)
                wait = self._next_wait(gap, failures)
                if unconfirmed:
                    wait = min(wait, max(0.0, unconfirmed[0][0] - time.monotonic()))
                await asyncio.sleep(wait)
        finally:
            await self.cleanup()

    def _gap(self) -> float:
        """Real seconds between listings: ``poll_interval`` (vendor seconds, default the vendor's
        poll interval) raised to the vendor's poll floor, divided by the emulator time scale."""
        from airflow_provider_flowruns.core.polling import clamp_poll_interval

        hook = self.hook
        interval = clamp_poll_interval(
            self.poll_interval,
            floor=hook.poll_floor,
            default=hook.default_poll_interval,
            who=hook.vendor,
            logger=self.log,
        )
        return interval / hook.time_scale

    def _next_wait(self, gap: float, failures: int) -> float:
        from airflow_provider_flowruns.core.schedule import PollSchedule

        schedule = PollSchedule.fixed(gap, gap)
        return schedule.next_gap(time.time(), jitter=random.uniform(1.0, 1.1), failures=failures)

    def _pending_timeout(self, gap: float) -> float:
        """Real seconds after which another owner's unconfirmed event is presumed lost with it."""
        return max(120.0, 3 * self.confirm_seconds + 2 * gap + 120.0)

    async def _scan(self, since: float) -> tuple[list[ListedRun], bool]:
        """Every listed run created since ``since`` (as far as ``max_pages`` reach), and whether the
        scan got there."""
        hook = self.hook
        runs: list[ListedRun] = []
        page: Any = None
        for _ in range(self.max_pages):
            body = await hook.acall(hook.watch_call(self.kind, self.scope, page=page, since=since))
            listed = hook.read_watch_page(self.kind, self.scope, body, page=page)
            runs.extend(listed.runs)
            if listed.next_page is None:
                return runs, True
            if listed.newest_first and listed.runs and min(r.created_at for r in listed.runs) < since:
                return runs, True
            page = listed.next_page
        self.log.warning(
            "Listing %s runs of %s stopped after %d pages; the cursor keeps its place until a listing "
            "reaches back to every run still going (raise max_pages if this persists).",
            hook.vendor,
            self.scope,
            self.max_pages,
        )
        return runs, False

    async def _poll(self, owner: str, lock: Any, *, pending_timeout: float) -> list[ListedRun]:
        """List, then decide under the lease on the freshest cursor, then record before firing."""
        from airflow_provider_flowruns.core import watch

        before = await self._read()
        since = watch.scan_since(
            before,
            now=time.time(),
            overlap=watch.DEFAULT_OVERLAP,
            baseline_window=watch.DEFAULT_BASELINE_WINDOW,
        )
        runs, complete = await self._scan(since)
        wanted = frozenset(RunState(s) for s in self.states)

        def decide(record: dict[str, Any]) -> tuple[dict[str, Any], list[ListedRun]]:
            decided = watch.plan(
                record,
                runs,
                wanted=wanted,
                since=since,
                now=time.time(),
                owner=owner,
                lookback=self.lookback,
                pending_timeout=pending_timeout,
                complete=complete,
            )
            for run_id in decided.refired:
                self.log.warning(
                    "Firing %s run %s again: the watcher that fired it stopped before recording its "
                    "delivery, so Airflow may or may not have it (at most one duplicate).",
                    self.hook.vendor,
                    run_id,
                )
            return decided.record, decided.fire

        fired = await self._update(lock, decide)
        for run in fired:
            self.log.info("%s run %s is %s: firing", self.hook.vendor, run.run_id, run.vendor_status)
        return fired

    async def _confirm_due(
        self, owner: str, lock: Any, unconfirmed: list[tuple[float, list[str]]]
    ) -> list[tuple[float, list[str]]]:
        from airflow_provider_flowruns.core import watch

        due = [ids for at, ids in unconfirmed if at <= time.monotonic()]
        if not due:
            return unconfirmed
        run_ids = [run_id for ids in due for run_id in ids]
        try:
            await self._update(lock, lambda record: (watch.confirm(record, run_ids, owner), None))
        except Exception as exc:  # kept for the next loop: an unconfirmed entry never loses a run
            self.log.warning("Recording delivered events failed (%s); will try again.", exc)
            return unconfirmed
        return [(at, ids) for at, ids in unconfirmed if at > time.monotonic()]

    # -- the cursor ------------------------------------------------------------------------------------
    async def _read(self) -> dict[str, Any]:
        from airflow_provider_flowruns.core.leases import decode, without_lease
        from airflow_provider_flowruns.core.variables import VariablesUnavailable, aget_variable

        try:
            return without_lease(decode(await aget_variable(self.variable)))
        except VariablesUnavailable:
            return dict(_LOCAL.get(self.variable, {}))

    async def _update(self, lock: Any, change: Any) -> Any:
        """Apply ``change(record) -> (new record, result)`` to the cursor under the watcher's lease."""
        from airflow_provider_flowruns.core.leases import decode, without_lease
        from airflow_provider_flowruns.core.variables import aget_variable, aset_variable

        async with lock.ahold(self.variable) as outcome:
            if outcome == "unshared":
                record, result = change(dict(_LOCAL.get(self.variable, {})))
                _LOCAL[self.variable] = record
                return result
            if outcome != "held":
                raise RuntimeError(f"the cursor's lease ({self.variable}) stayed taken by another watcher")
            raw = decode(await aget_variable(self.variable))
            record, result = change(without_lease(raw))
            lease = {k: raw[k] for k in ("lease_owner", "lease_until") if k in raw}
            await aset_variable(self.variable, json.dumps({**record, **lease}), _DESCRIPTION)
            return result

    # -- events ----------------------------------------------------------------------------------------
    def payload(self, run: ListedRun) -> dict[str, Any]:
        """What the asset event's extra carries (under ``payload``): a :class:`VendorRun`, the shape a
        run operator's outlet event has too (``core/produced.py``)."""
        from airflow_provider_flowruns.core.produced import VendorRun
        from airflow_provider_flowruns.core.watch import iso

        return VendorRun(
            vendor=self.hook.vendor,
            run_id=run.run_id,
            run_url=run.url,
            kind=self.kind,
            scope=dict(self.scope),
            status=run.state.value.lower(),
            vendor_status=run.vendor_status,
            run_name=run.name,
            created_at=iso(run.created_at),
            finished_at=iso(run.finished_at),
        ).to_dict()

    async def cleanup(self) -> None:
        if self._hook is not None:
            await self._hook.aclose()


class _VendorWatcher(FlowRunWatcher):
    """A vendor's watcher: its hook and kind as data, its scope from named parameters."""

    hook_path: ClassVar[str]
    kind_name: ClassVar[str]

    def __init__(
        self, *, conn_id: str | None, scope: Mapping[str, str | None], default_conn: str, **options: Any
    ) -> None:
        missing = [k for k, v in scope.items() if v in (None, "") and k in self.required]
        if missing:
            raise FlowRunsConfigError(f"{type(self).__name__}: {', '.join(missing)} is required")
        super().__init__(
            hook_class_path=self.hook_path,
            hook_kwargs={"conn_id": conn_id or default_conn},
            kind=self.kind_name,
            scope={k: str(v) for k, v in scope.items() if v not in (None, "")},
            **options,
        )

    required: ClassVar[tuple[str, ...]] = ()


class HabuFlowRunWatcher(_VendorWatcher):
    """Runs of one LiveRamp Clean Room (Habu) flow. Lists at most every 5 minutes (the vendor's
    poll floor); default every 15. Shares the deployment's token (2 a day per API user)."""

    hook_path = HABU.hook
    kind_name = FLOW_RUN
    required = ("cleanroom_id", "flow_id")

    def __init__(self, *, cleanroom_id: str, flow_id: str, habu_conn_id: str | None = None, **options: Any):
        super().__init__(
            conn_id=habu_conn_id or options.pop("conn_id", None),
            scope={"cleanroom_id": cleanroom_id, "flow_id": flow_id},
            default_conn=HABU.default_conn_name,
            **options,
        )


class HabuQuestionRunWatcher(_VendorWatcher):
    """Runs of one clean-room question (``cleanroom_id`` only adds the run URL)."""

    hook_path = HABU.hook
    kind_name = QUESTION_RUN
    required = ("question_id",)

    def __init__(
        self,
        *,
        question_id: str,
        cleanroom_id: str | None = None,
        habu_conn_id: str | None = None,
        **options: Any,
    ):
        super().__init__(
            conn_id=habu_conn_id or options.pop("conn_id", None),
            scope={"question_id": question_id, "cleanroom_id": cleanroom_id},
            default_conn=HABU.default_conn_name,
            **options,
        )


class AmperityWorkflowWatcher(_VendorWatcher):
    """Amperity workflow runs of one ``workflow_type`` (e.g. ``courier.group/run``) and/or ``name``
    (a workflow carries no config id; its name is the courier group's or orchestration's)."""

    hook_path = AMPERITY.hook
    kind_name = "run"

    def __init__(
        self,
        *,
        workflow_type: str | None = None,
        name: str | None = None,
        amperity_conn_id: str | None = None,
        **options: Any,
    ):
        if not (workflow_type or name):
            raise FlowRunsConfigError("AmperityWorkflowWatcher: give workflow_type, name or both")
        super().__init__(
            conn_id=amperity_conn_id or options.pop("conn_id", None),
            scope={"workflow_type": workflow_type, "name": name},
            default_conn=AMPERITY.default_conn_name,
            **options,
        )


class ActivepiecesFlowRunWatcher(_VendorWatcher):
    """Production runs of one Activepieces flow (the connection's project)."""

    hook_path = ACTIVEPIECES.hook
    kind_name = "run"
    required = ("flow_id",)

    def __init__(self, *, flow_id: str, activepieces_conn_id: str | None = None, **options: Any):
        super().__init__(
            conn_id=activepieces_conn_id or options.pop("conn_id", None),
            scope={"flow_id": flow_id},
            default_conn=ACTIVEPIECES.default_conn_name,
            **options,
        )


class TableflowFlowRunWatcher(_VendorWatcher):
    """Runs of one Tableflow flow (each document upload starts one)."""

    hook_path = TABLEFLOW.hook
    kind_name = "run"
    required = ("flow_id",)

    def __init__(self, *, flow_id: str, tableflow_conn_id: str | None = None, **options: Any):
        super().__init__(
            conn_id=tableflow_conn_id or options.pop("conn_id", None),
            scope={"flow_id": flow_id},
            default_conn=TABLEFLOW.default_conn_name,
            **options,
        )


__all__ = [
    "ActivepiecesFlowRunWatcher",
    "AmperityWorkflowWatcher",
    "FlowRunWatcher",
    "HabuFlowRunWatcher",
    "HabuQuestionRunWatcher",
    "TableflowFlowRunWatcher",
    "wanted_states",
]
