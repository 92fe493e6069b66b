"""LiveRamp Clean Room (formerly Habu): flow runs and question runs.

Connection: ``login`` = client id, ``password`` = client secret, ``host`` = API base URL (default
``https://api.habu.com/v1``).

Three vendor limits shape this module:
- **2 OAuth tokens per API user per 24 h.** Tokens live in :data:`SHARED_TOKEN_CACHE` (process
  memory, then an Airflow Variable shared by every worker and triggerer) and are minted only when
  none is valid, one process at a time.
- **20 run creations per hour** (question runs, flow runs and, we assume, replays). A create is
  never retried on 429: :class:`RateLimitBudgetExhausted` says when the next window opens. A create
  whose answer was lost is reconciled by listing runs by name before anything is sent again.
- **Status at most every 5 minutes** per run: the poll floor is 300 s.
There is no cancel endpoint; the engine logs that a run keeps going.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote

from airflow.sdk import ObjectStoragePath
from pydantic import RootModel

from airflow_provider_flowruns import forms
from airflow_provider_flowruns.core.auth import OAuth2ClientCredentials, TokenMintError
from airflow_provider_flowruns.core.create_budget import SharedCreateBudget
from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    RateLimitBudgetExhausted,
)
from airflow_provider_flowruns.core.http import (
    LOST_ANSWER_SETTLE_SECONDS,
    Call,
    ClientSettings,
    FlowRunsHook,
    secret_digest,
)
from airflow_provider_flowruns.core.models import read
from airflow_provider_flowruns.core.pages import page_field, page_items
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.shared_tokens import SHARED_TOKEN_CACHE
from airflow_provider_flowruns.core.storage import WrittenObject, download_to
from airflow_provider_flowruns.core.token_lookup import cached_token
from airflow_provider_flowruns.core.token_ration import TokenRation
from airflow_provider_flowruns.core.watch import ListedRun as WatchedRun
from airflow_provider_flowruns.core.watch import RunPage
from airflow_provider_flowruns.hooks.habu_models import (
    CreatedQuestion,
    FlowRunList,
    FlowRunParameterNode,
    IdentifiedObject,
    QuestionParameters,
    QuestionRunList,
    ReportPage,
    ResultOutputs,
    RunBody,
    RunStatusBody,
    created_run_id,
    unwrapped,
)
from airflow_provider_flowruns.vendors import HABU
from airflow_provider_flowruns.vendors.habu import (  # defined there for DAG parse; used here
    FLOW_RUN,
    QUESTION_RUN,
    REPORT_PAGE_SIZE,
    level_id,
    level_number,
    nodes_payload,
    question_parameters,
)

#: The form's label for extra ``test_connection_mints``, named in the test's answer.
MINT_SWITCH = forms.HABU.extras["test_connection_mints"].label

#: The vendor's token ration: 2 mints per API user per 24 h (vendor time).
TOKENS_PER_DAY = 2
TOKEN_WINDOW_SECONDS = 24 * 3600.0
#: The vendor's create window; a 429 on create means "not before the next one".
CREATE_WINDOW_SECONDS = 3600.0
CREATES_PER_WINDOW = 20
#: Page sizes the watchers list with: the spec's default for flow runs, its maximum for question runs.
WATCH_FLOW_PAGE = 30
WATCH_QUESTION_PAGE = 100
#: One ledger per process, like the token cache; its state lives in a Variable per API user.
CREATE_BUDGET = SharedCreateBudget()

FLOW_RUN_STATUS = StatusMap(
    {
        RunState.QUEUED: ["QUEUED"],
        RunState.RUNNING: ["RUNNING"],
        RunState.PAUSED: ["PAUSED"],
        RunState.SUCCEEDED: ["COMPLETED"],
        RunState.FAILED: ["FAILED", "ERROR"],
        RunState.CANCELLED: ["CANCELLED"],
    }
)
QUESTION_RUN_STATUS = StatusMap(
    {
        RunState.QUEUED: ["QUEUED", "PARTNER_QUEUED", "PENDING_RETRY"],
        RunState.RUNNING: ["RUNNING", "PARTNER_RUNNING", "PARTNER_COMPLETED"],
        RunState.SUCCEEDED: ["COMPLETED"],
        RunState.FAILED: ["FAILED", "ERROR", "PARTNER_FAILED"],
        RunState.CANCELLED: ["CANCELLED"],
    }
)


def unwrap(body: Any) -> Any:
    """Some documented responses wrap the payload as ``{"response": ...}``; accept both."""
    return unwrapped(body)[0]


def run_id_of(body: Any, *, what: str = "Habu's answer to a create") -> str:
    """The new run's id (``id``, ``Id`` or ``cleanRoomFlowRunID``); an answer without one fails
    naming the fields it lacks (``habu_models.CreatedRun``)."""
    return created_run_id(body, what=what)


def _checked(model: Any, body: Any, *, what: str) -> dict[str, Any]:
    """``body`` unwrapped, after checking the fields we use with ``model``; returned whole."""
    payload, prefix = unwrapped(body)
    read(model, payload, what=what, prefix=prefix)
    return dict(payload)


class HabuHook(FlowRunsHook):
    vendor_info = HABU  # connection type, names, form, base URL, poll floor: vendors/__init__.py
    ui_base_url: ClassVar[str] = "https://app.habu.com"
    retry_create_on_429 = False  # 20 creations/hour: a 429 means "not this hour"
    status_map = FLOW_RUN_STATUS

    def client_settings(self, conn: Any) -> ClientSettings:
        if not conn.login or not conn.password:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: login (client id) and password (client secret) are required"
            )
        base = self.base_url_of(conn)
        self._api_user = f"{base}|{conn.login}"
        scale = self._read_time_scale(base)
        auth = OAuth2ClientCredentials(
            f"{base}/oauth/token",
            conn.login,
            conn.password,
            credentials_in="basic",
            cache=SHARED_TOKEN_CACHE,
            refresh_margin=600.0,
            default_lifetime=12 * 3600.0,
            # Past the ration, ask again at most hourly (deployment-wide, through the shared cache).
            refusal_backoff=3600.0 / scale,
            ration=TokenRation("Habu", TOKENS_PER_DAY, TOKEN_WINDOW_SECONDS / scale, "24 h"),
        )
        return ClientSettings(base_url=base, auth=auth, identity=secret_digest(conn.login, conn.password))

    def parse_error(self, body: Any, response: Any) -> tuple[str | None, str, str | None]:
        code, message, request_id = super().parse_error(body, response)
        if isinstance(body, dict) and isinstance(body.get("status"), str):
            code = body["status"]  # e.g. {"status":"UNAUTHORIZED","code":401,...}
        return code, message, request_id

    def api(self, call: Call) -> Any:
        return unwrap(self.call(call))

    def check_connection(self) -> tuple[bool, str]:
        """Airflow's Test Connection, within the ration of 2 tokens a day per API user.

        ``GET /health`` (unauthenticated) shows the API is reached. Credentials are then vouched
        for by the token this deployment already shares (reported, not spent); with none cached
        the test mints one only when the connection says so (extra ``test_connection_mints:
        true``), because a mint is one of the API user's two for the day.
        """
        health = self.call(Call("GET", "health", authenticated=False))
        base = self._settings.base_url if self._settings else ""
        login = self.get_connection(self.conn_id).login
        reached = f"Reached LiveRamp Clean Room at {base} (health: {page_field(health, 'status')})"
        auth = self._settings.auth if self._settings else None
        if not isinstance(auth, OAuth2ClientCredentials):  # pragma: no cover - client_settings builds one
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: no OAuth client configured")
        token = cached_token(auth)
        if token is not None and token.valid(0):
            until = datetime.fromtimestamp(token.expires_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if token.is_refusal:
                return False, (
                    f"{reached}, but Habu refused to mint a token for API user {login!r} (2 per day) "
                    f"and is not asked again before {until}"
                )
            return True, (
                f"{reached}; a token for API user {login!r} is cached and valid until {until} "
                "(reused, not re-minted: Habu issues 2 tokens a day)"
            )
        if not self.test_connection_mints:
            return False, (
                f"{reached}, but the client id and secret were not checked: no token is cached for API "
                f"user {login!r}, and minting one spends one of the 2 tokens Habu issues per day. Run a "
                f"task with this connection first, or turn on {MINT_SWITCH!r} (extra "
                "test_connection_mints: true) to let the test mint one."
            )
        self.call(Call("GET", "health"))  # authenticated: the auth flow mints and caches a token
        return (
            True,
            f"{reached}; minted a token for API user {login!r} (one of its 2 a day); credentials accepted",
        )

    @property
    def test_connection_mints(self) -> bool:
        """Connection extra ``test_connection_mints`` (default false): may Test Connection mint a token?

        The form's switch (forms.HABU) writes true or false; null, which the form writes for a field
        cleared, is the default."""
        raw = self.extra.get("test_connection_mints")
        if raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"true", "false"}:
            return raw.strip().lower() == "true"
        raise FlowRunsConfigError(
            f"Connection {self.conn_id!r}: test_connection_mints must be true or false, got {raw!r}"
        )

    # -- creating runs (20 per hour, never blindly repeated) ------------------------------------------
    def _create(self, call: Call, *, what: str, find: Any) -> dict[str, Any]:
        """Book a slot in the deployment's create ledger, then send the create once.

        A 429 means the API user's hour is spent by someone outside this ledger: the ledger is
        blocked for a window so no other task asks. A lost answer: look for the run by name
        (``find(asked_at)``) before letting the error surface, so nothing is created twice. A
        definite rejection (4xx) created nothing, so its slot goes back.
        """
        window = CREATE_WINDOW_SECONDS / self.time_scale
        booking = CREATE_BUDGET.book(self.api_user, limit=self.creates_per_hour, window=window, what=what)
        asked_at = time.time()
        try:
            answer = self.call(call)
        except TokenMintError:
            # No token, so the create was never sent (or was answered 401): nothing was created
            # and the slot goes back. A token refusal is not the create limit's 429.
            CREATE_BUDGET.cancel(booking)
            raise
        except FlowRunsApiError as exc:
            if exc.status == 429:
                until = CREATE_BUDGET.refused(self.api_user, window=window)
                wait = until - time.time()
                raise RateLimitBudgetExhausted(
                    f"{self.vendor} refused to create {what}: the run creations allowed per hour are "
                    "used up for this API user (by a system outside this deployment's ledger). Not "
                    f"retrying now; the next window opens in about {wait:.0f}s.",
                    retry_at=CREATE_BUDGET.retry_at(until, window),
                ) from None
            if exc.status is not None and exc.status < 500:
                CREATE_BUDGET.cancel(booking)
                raise
            self.log.warning("Creating %s got no clear answer (%s); checking whether it exists.", what, exc)
            # A create that timed out may still be in Habu's hands: give it time to become listable.
            time.sleep(LOST_ANSWER_SETTLE_SECONDS)
            found = find(asked_at)
            if found is not None:
                self.log.info("Found the run the lost create made: %s", run_id_of(found))
                return {**found, "id": run_id_of(found)}
            raise
        # Outside the try: an answer we cannot read may well stand for a run Habu made, so its
        # slot stays booked and the error says so.
        run_id = run_id_of(answer, what=f"Habu's answer to creating {what} (the run may exist)")
        return {**unwrap(answer), "id": run_id}

    @property
    def api_user(self) -> str:
        """Who the vendor counts creations against: the API user at this host (no secret in it)."""
        self.get_client()
        return self._api_user

    @property
    def creates_per_hour(self) -> int:
        """Connection extra ``creates_per_hour`` (default 20): lower it to leave room for other
        systems using the same API user."""
        raw = self.extra.get("creates_per_hour", CREATES_PER_WINDOW)
        if isinstance(raw, bool) or not str(raw).strip().isdigit() or int(raw) < 1:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: creates_per_hour must be a whole number >= 1, got {raw!r}"
            )
        return int(raw)

    # -- flow runs -------------------------------------------------------------------------------------
    def flow_run_parameters(self, cleanroom_id: str, flow_id: str) -> list[dict[str, Any]]:
        raw = self.call(
            Call("GET", f"cleanrooms/{cleanroom_id}/cleanroom-flows/{flow_id}/flow-run-parameters")
        )
        body, prefix = unwrapped(raw)
        if isinstance(body, dict):  # the spec's {"flowRunParameters": [...]}
            body, prefix = (
                body.get("flowRunParameters"),
                (f"{prefix}." if prefix else "") + "flowRunParameters",
            )
        what = f"Habu's run parameters of flow {flow_id}"
        read(_NodeList, body, what=what, prefix=prefix)  # seed 000: the bare list, wrapped
        return list(body)

    def create_flow_run(
        self,
        cleanroom_id: str,
        flow_id: str,
        *,
        name: str,
        nodes: Any = None,
        flow_run_parameters: list[dict[str, Any]] | None = None,
        pause_level: Any = None,
        start_level: Any = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a flow run; returns its metadata (at least ``id``).

        ``nodes`` (spec and SDK shape: ``nodeIdentifier`` + plain parameters, ``Level-N`` ids) or
        ``flow_run_parameters`` (the example-workflow page's shape: ``nodeId`` + typed parameters,
        integer levels, on its ``clean-room-flow-runs`` path). ``options`` carries the remaining spec
        fields (``branches``, ``datasetAssignments``, ``excludeNodesWithoutTags``, ...).
        """
        if not name:
            raise FlowRunsConfigError("a flow run needs a name")
        if nodes is not None and flow_run_parameters is not None:
            raise FlowRunsConfigError("pass nodes or flow_run_parameters, not both")
        base = f"cleanrooms/{cleanroom_id}/cleanroom-flows/{flow_id}"
        if flow_run_parameters is not None:
            body: dict[str, Any] = {"name": name, "flowRunParameters": list(flow_run_parameters)}
            if start_level is not None:
                body["startLevelId"] = level_number(start_level, "start_level")
            if pause_level is not None:
                body["pauseLevelId"] = level_number(pause_level, "pause_level")
            path = f"{base}/clean-room-flow-runs"
        else:
            body = {"name": name, "nodes": nodes_payload(nodes)}
            if start_level is not None:
                body["startLevelID"] = level_id(start_level, "start_level")
            if pause_level is not None:
                body["pauseLevelID"] = level_id(pause_level, "pause_level")
            path = f"{base}/cleanroom-flow-runs"
        body.update(options or {})
        created = self._create(
            Call("POST", path, json=body, idempotent=False),
            what=f"flow run {name!r}",
            find=lambda since: self.find_flow_run(cleanroom_id, flow_id, name, submitted_after=since - 120),
        )
        return created

    def list_flow_runs(
        self, cleanroom_id: str, flow_id: str, *, search: str | None = None, page_size: int = 30
    ) -> Iterator[dict[str, Any]]:
        """Every run of a flow (newest first), all pages."""
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": page_size, "offset": offset}
            if search:
                params["search"] = search
            page = self.api(
                Call(
                    "GET",
                    f"cleanrooms/{cleanroom_id}/cleanroom-flows/{flow_id}/cleanroom-flow-runs",
                    params=params,
                )
            )
            runs = page_items(page, "cleanRoomFlowRuns", what=f"runs of flow {flow_id}")
            yield from runs
            offset += len(runs)
            total = page_field(page, "count")
            if not runs or len(runs) < page_size or (isinstance(total, int) and offset >= total):
                return

    def find_flow_run(
        self, cleanroom_id: str, flow_id: str, name: str, *, submitted_after: float | None = None
    ) -> dict[str, Any] | None:
        """The newest run of this flow named exactly ``name`` (optionally submitted after a time)."""
        for run in self.list_flow_runs(cleanroom_id, flow_id, search=name):
            if run.get("name") == name and _submitted(run) >= (submitted_after or 0):
                return run
        return None

    def get_flow_run(self, cleanroom_id: str, run_id: str) -> dict[str, Any]:
        ref = RunRef(run_id, kind=FLOW_RUN, scope={"cleanroom_id": cleanroom_id})
        body = self.call(self.status_call(ref))  # a status read: paced like every poll
        return _checked(RunBody, body, what=f"Habu flow run {run_id}")

    def resume_flow_run(self, cleanroom_id: str, run_id: str, *, pause_level: Any = None) -> dict[str, Any]:
        """Resume a PAUSED run from its intermediate results, optionally pausing again further on."""
        body = {"pauseLevelID": level_id(pause_level, "pause_level")} if pause_level is not None else {}
        answer = unwrap(
            self.call(
                Call(
                    "POST",
                    f"cleanrooms/{cleanroom_id}/cleanroom-flow-runs/{run_id}/resume-flow-run",
                    json=body,
                    idempotent=False,
                )
            )
        )
        if isinstance(answer, dict) and answer.get("success") is False:  # spec: {"success": true}
            raise FlowRunsApiError(f"Habu did not resume flow run {run_id}: {str(answer)[:200]}", status=200)
        return dict(answer or {}) if isinstance(answer, dict) else {}

    def replay_flow_run(
        self,
        cleanroom_id: str,
        run_id: str,
        *,
        name: str | None = None,
        start_level: Any = None,
        pause_level: Any = None,
        nodes: Any = None,
        options: Mapping[str, Any] | None = None,
        flow_id: str | None = None,
    ) -> str:
        """Replay (reuse) a run: a new run that reuses the parent's results. Returns the new run id.

        Counted as a creation. With ``flow_id`` and ``name`` a lost answer is reconciled by name."""
        body: dict[str, Any] = {}
        if name:
            body["name"] = name
        if start_level is not None:
            body["startLevelID"] = level_id(start_level, "start_level")
        if pause_level is not None:
            body["pauseLevelID"] = level_id(pause_level, "pause_level")
        if nodes is not None:
            body["nodes"] = nodes_payload(nodes)
        body.update(options or {})

        def find(since: float) -> dict[str, Any] | None:
            if not (flow_id and name):
                return None
            return self.find_flow_run(cleanroom_id, flow_id, name, submitted_after=since - 120)

        created = self._create(
            Call(
                "POST",
                f"cleanrooms/{cleanroom_id}/cleanroom-flow-runs/{run_id}/replay-flow-run",
                json=body,
                idempotent=False,
            ),
            what=f"a replay of flow run {run_id}",
            find=find,
        )
        return str(created["id"])

    def output_nodes(self, cleanroom_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self.api(Call("GET", f"cleanrooms/{cleanroom_id}/cleanroom-flow-runs/{run_id}/output-nodes"))
        return list(body or [])

    def iter_report(
        self, cleanroom_id: str, run_id: str, node: str, *, page_size: int = REPORT_PAGE_SIZE
    ) -> Iterator[ReportPage]:
        """Every page of a node's report (either documented shape), fetched as it is consumed."""
        return self._pages(
            f"cleanrooms/{cleanroom_id}/cleanroom-flow-runs/{run_id}/report", {"node": node}, page_size
        )

    def download_node_file(
        self, cleanroom_id: str, run_id: str, node: str, file_name: str, dest: ObjectStoragePath
    ) -> WrittenObject:
        path = (
            f"cleanrooms/{cleanroom_id}/cleanroom-flow-runs/{run_id}/node/{quote(node, safe='')}"
            f"/download/{quote(file_name, safe='')}"
        )
        return download_to(partial(self.stream, Call("GET", path, headers={"Accept": "*/*"})), dest)

    # -- question runs -----------------------------------------------------------------------------------
    def question_parameters(self, question_id: str) -> dict[str, Any]:
        """A clean-room question's run parameters (PascalCase fields, as the API returns them)."""
        body = self.call(Call("GET", f"cleanroom-questions/{question_id}/cleanroom-question-parameters"))
        return _checked(QuestionParameters, body, what=f"Habu's parameters of question {question_id}")

    def get_question(self, question_id: str) -> dict[str, Any]:
        body = self.call(Call("GET", f"cleanroom-questions/{question_id}"))
        return _checked(IdentifiedObject, body, what=f"Habu question {question_id}")

    def create_question_run(
        self, question_id: str, *, name: str, parameters: Mapping[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Create a question run (412 when the question is not READY: datasets missing)."""
        if not name:
            raise FlowRunsConfigError("a question run needs a name")
        body = {
            "name": name,
            "parameters": question_parameters(parameters),
            **extra,
        }
        created = self._create(
            Call("POST", f"cleanroom-questions/{question_id}/create-run", json=body, idempotent=False),
            what=f"question run {name!r}",
            find=lambda since: self.find_question_run(question_id, name, submitted_after=since - 120),
        )
        return created

    def list_question_runs(
        self,
        question_id: str,
        *,
        status: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Every run of a clean-room question (newest first), all pages (the API caps pages at 100)."""
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": page_size, "offset": offset}
            if status:
                params["status"] = status
            if start_date:
                params["startDate"] = start_date
            if end_date:
                params["endDate"] = end_date
            page = self.api(
                Call("GET", f"cleanroom-questions/{question_id}/cleanroom-question-runs", params=params)
            )
            runs = page_items(page, None, what=f"runs of question {question_id}")
            yield from runs
            offset += len(runs)
            if len(runs) < page_size:
                return

    def find_question_run(
        self, question_id: str, name: str, *, submitted_after: float | None = None
    ) -> dict[str, Any] | None:
        for run in self.list_question_runs(question_id):
            if run.get("name") == name and _submitted(run) >= (submitted_after or 0):
                return run
        return None

    def get_question_run(self, run_id: str) -> dict[str, Any]:
        body = self.call(self.status_call(RunRef(run_id, kind=QUESTION_RUN)))  # paced like a poll
        return _checked(RunBody, body, what=f"Habu question run {run_id}")

    def iter_question_data(self, run_id: str, *, page_size: int = REPORT_PAGE_SIZE) -> Iterator[ReportPage]:
        return self._pages(f"cleanroom-question-runs/{run_id}/data", {}, page_size)

    def question_result_files(self, run_id: str) -> list[str]:
        """The run's output file names (``multipleOutputs`` of its result data)."""
        first, prefix = unwrapped(
            self.call(Call("GET", f"cleanroom-question-runs/{run_id}/data", params={"limit": 1, "offset": 0}))
        )
        what = f"Habu question run {run_id} result data"
        listed = read(ResultOutputs, first, what=what, prefix=prefix).multipleOutputs
        return [str(f) for f in listed or [] if f]

    def download_question_file(self, run_id: str, file_name: str, dest: ObjectStoragePath) -> WrittenObject:
        path = f"cleanroom-question-runs/{run_id}/download/{quote(file_name, safe='')}"
        return download_to(partial(self.stream, Call("GET", path, headers={"Accept": "*/*"})), dest)

    # -- provisioning (set-up steps, not run steps) -----------------------------------------------------
    def create_question(self, question: Mapping[str, Any], *, cleanroom_id: str | None = None) -> str:
        params = {"cleanRoomID": cleanroom_id} if cleanroom_id else None
        body, prefix = unwrapped(
            self.call(Call("POST", "question", params=params, json=dict(question), idempotent=False))
        )
        created = read(CreatedQuestion, body, what="Habu's answer to creating a question", prefix=prefix)
        return str(created.questionID or created.questionId)

    def add_question_to_cleanroom(
        self, cleanroom_id: str, question_id: str, *, editable: bool = True
    ) -> dict[str, Any]:
        params = {"questionId": question_id, "isEditable": str(editable).lower()}
        body = self.call(Call("POST", f"cleanrooms/{cleanroom_id}/cleanroom-questions", params=params))
        return _checked(IdentifiedObject, body, what=f"Habu's answer to adding question {question_id}")

    def assign_dataset_ownership(self, question_id: str, owners: list[dict[str, Any]]) -> Any:
        return self.api(Call("POST", f"cleanroom-questions/{question_id}/datasets-ownership", json=owners))

    def configure_datasets(self, question_id: str, datasets: list[dict[str, Any]]) -> Any:
        return self.api(Call("POST", f"cleanroom-questions/{question_id}/datasets", json=datasets))

    # -- result pages shared by flow reports and question data ------------------------------------------
    def _pages(self, path: str, params: Mapping[str, Any], page_size: int) -> Iterator[ReportPage]:
        """Result pages, each read once as :class:`ReportPage` (either documented shape).

        The next offset moves by the rows (record groups) a page held. The end: an empty page; the
        announced ``count`` reached; or, with no count (always so in the seed's ``recordStats``
        shape), a page shorter than ``limit``. A full page without a count is followed by another
        request, so a vendor that ignores ``limit`` costs one more page, never a lost one."""
        offset = 0
        while True:
            body = self.call(Call("GET", path, params={**params, "limit": page_size, "offset": offset}))
            page = ReportPage(body, what=f"Habu {path} (offset {offset})")
            yield page
            offset += page.size
            total = page.count
            if (
                not page.size
                or (total is not None and offset >= total)
                or (total is None and page.size < page_size)
            ):
                return

    # -- the run-engine contract -------------------------------------------------------------------------
    def status_call(self, ref: RunRef) -> Call:
        if ref.kind == QUESTION_RUN:
            return Call("GET", f"cleanroom-question-runs/{ref.run_id}", paced=True)
        cleanroom = ref.scope.get("cleanroom_id")
        if not cleanroom:
            raise FlowRunsConfigError("a Habu flow run reference needs scope['cleanroom_id']")
        return Call("GET", f"cleanrooms/{cleanroom}/cleanroom-flow-runs/{ref.run_id}", paced=True)

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        body, prefix = unwrapped(body)
        seen = read(RunStatusBody, body, what=f"{self.vendor}'s status of run {ref.run_id}", prefix=prefix)
        vendor_status = seen.status
        status_map = QUESTION_RUN_STATUS if ref.kind == QUESTION_RUN else FLOW_RUN_STATUS
        message = seen.failureReason or seen.runMessage or None
        if message and seen.isRetryable is not None and status_map(vendor_status) is RunState.FAILED:
            message = f"{message} (Habu marks it {'' if seen.isRetryable else 'not '}retryable)"
        return RunStatus(
            run_id=ref.run_id,
            state=status_map(vendor_status),
            vendor_status=vendor_status,
            message=message,
            url=self.run_url(ref),
            raw=body,
        )

    # -- watching (triggers/watch.py) ---------------------------------------------------------------
    def watch_call(self, kind: str, scope: Mapping[str, str], *, page: Any, since: float) -> Call:
        """A page of a flow's runs (30, the spec's default) or of a question's runs (100, its maximum,
        from the day of ``since`` on: the listing's ``startDate`` filter). Neither listing documents
        an order, so the watcher reads every page (``count`` says how many there are for flows)."""
        offset = int(page or 0)
        if kind == QUESTION_RUN:
            start = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d")
            return Call(
                "GET",
                f"cleanroom-questions/{scope['question_id']}/cleanroom-question-runs",
                params={"limit": WATCH_QUESTION_PAGE, "offset": offset, "startDate": start},
            )
        return Call(
            "GET",
            f"cleanrooms/{scope['cleanroom_id']}/cleanroom-flows/{scope['flow_id']}/cleanroom-flow-runs",
            params={"limit": WATCH_FLOW_PAGE, "offset": offset},
        )

    def read_watch_page(self, kind: str, scope: Mapping[str, str], body: Any, *, page: Any) -> RunPage:
        offset = int(page or 0)
        payload, prefix = unwrapped(body)
        if kind == QUESTION_RUN:
            what = f"Habu's runs of question {scope.get('question_id')} (offset {offset})"
            items = read(QuestionRunList, payload, what=what, prefix=prefix).root
            size, total = WATCH_QUESTION_PAGE, None
            status_map = QUESTION_RUN_STATUS
        else:
            what = f"Habu's runs of flow {scope.get('flow_id')} (offset {offset})"
            listing = read(FlowRunList, payload, what=what, prefix=prefix)
            items, size, total = listing.cleanRoomFlowRuns, WATCH_FLOW_PAGE, listing.count
            status_map = FLOW_RUN_STATUS
        runs = [
            WatchedRun(
                run_id=item.id,
                state=status_map(item.status),
                vendor_status=item.status,
                created_at=item.submittedAt,
                finished_at=item.completedAt,
                name=item.name,
                url=self.run_url(RunRef(item.id, kind=kind, scope=scope)),
            )
            for item in items
        ]
        end = offset + len(items)
        more = len(items) >= size and (total is None or end < total)
        return RunPage(runs, next_page=end if more else None)

    def run_url(self, ref: RunRef) -> str | None:
        cleanroom = ref.scope.get("cleanroom_id")
        if not cleanroom:
            return None
        section = "questions" if ref.kind == QUESTION_RUN else "flows"
        return f"{self.ui_base_url}/clean-rooms/{cleanroom}/{section}/runs/{ref.run_id}"


class _NodeList(RootModel[list[FlowRunParameterNode]]):
    """Flow-run parameters: one record per node, each naming its ``nodeId``."""


def _submitted(run: Mapping[str, Any]) -> float:
    raw = run.get("submittedAt")
    if not isinstance(raw, str) or not raw:
        return 0.0
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
