"""Bad input, generated: whatever a vendor answers and whatever a DAG author passes, the provider
gives a clear error naming the problem or handles it safely - never a crashed trigger, never a
write outside the destination prefix.

Vendor answers are served with respx (the vendor is what is replaced; every provider code path is
real): arbitrary JSON where a status is expected - unknown statuses, missing, extra and wrongly
typed fields, the wrong top-level type, wrapped bodies - fed to the real ``FlowRunTrigger`` of each
vendor, and arbitrary pages to the listings the lost-answer reconciliation relies on (empty pages,
pages larger than asked for, runs out of date order, items that are not objects).

Examples are derandomized and few, so CI sees the same cases every run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_flowruns.core.errors import FlowRunsError
from airflow_provider_flowruns.core.http import FlowRunsHook
from airflow_provider_flowruns.core.params import hook_params_checked, to_seconds
from airflow_provider_flowruns.core.runs import RunRef, RunStatus
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.core.storage import (
    as_storage_path,
    child_path,
    sanitize_filename,
    write_atomically,
)
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.hooks.amperity import AmperityHook, validate_start
from airflow_provider_flowruns.hooks.habu import FLOW_RUN, QUESTION_RUN, HabuHook, level_number
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.transfers.habu import unique_name
from airflow_provider_flowruns.triggers.run import FlowRunTrigger

SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0, "max_retries": 1}
EVENTS = {"success", "failed", "cancelled", "paused", "timeout", "error"}


@dataclass(frozen=True)
class Vendor:
    hook: type[FlowRunsHook]
    conn: dict[str, Any]
    base: str
    ref: RunRef
    statuses: tuple[str, ...]  # the vendor's own words, so generated bodies hit real branches too

    @property
    def status_url(self) -> str:
        return self.base + "/" + self.hook().status_call(self.ref).path


VENDORS = {
    "amperity": Vendor(
        AmperityHook,
        {"conn_type": "amperity", "password": "t", "extra": {"tenant": "acme"}},
        "https://app.amperity.com/api",
        RunRef("wf-1"),
        ("scheduled", "running", "succeeded", "failed", "stopped", "stopping"),
    ),
    "habu_question": Vendor(
        HabuHook,
        {"conn_type": "habu", "login": "id", "password": "secret"},
        "https://api.habu.com/v1",
        RunRef("qr-1", kind=QUESTION_RUN),
        ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"),
    ),
    "habu_flow": Vendor(
        HabuHook,
        {"conn_type": "habu", "login": "id", "password": "secret"},
        "https://api.habu.com/v1",
        RunRef("fr-1", kind=FLOW_RUN, scope={"cleanroom_id": "cr"}),
        ("QUEUED", "RUNNING", "PAUSED", "COMPLETED", "FAILED"),
    ),
    "tableflow": Vendor(
        TableflowHook,
        {"conn_type": "tableflow", "password": "k"},
        "https://api.tableflow.com/v2",
        RunRef("fr1"),
        ("processing", "review", "completed", "failed"),
    ),
    "activepieces": Vendor(
        ActivepiecesHook,
        {"conn_type": "activepieces", "password": "k", "extra": {"project_id": "p"}},
        "https://cloud.activepieces.com/api",
        RunRef("run1"),
        ("QUEUED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "TIMEOUT", "INTERNAL_ERROR"),
    ),
}

# -- strategies ---------------------------------------------------------------------------------------
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = (
    "id",
    "status",
    "state",
    "message",
    "error",
    "failureReason",
    "runMessage",
    "isRetryable",
    "task_instances",
    "status_history",
    "steps",
    "failedStep",
    "terminationReason",
    "pauseMetadata",
    "created_at",
)


def status_bodies(vendor: Vendor) -> st.SearchStrategy[Any]:
    status = st.sampled_from(vendor.statuses) | st.text(max_size=12) | json_values
    field = st.sampled_from(FIELDS)
    objects = st.dictionaries(field, json_values, max_size=5)
    with_status = st.builds(
        lambda d, s, k: {**d, k: s}, objects, status, st.sampled_from(("status", "state"))
    )
    wrapped = with_status.map(lambda d: {"response": d})
    return st.one_of(with_status, wrapped, objects, json_values)


def serve(route: respx.Route, body: Any) -> None:
    route.mock(return_value=httpx.Response(200, content=json.dumps(body).encode()))


@pytest.fixture
def connections(monkeypatch):
    for name, vendor in VENDORS.items():
        conn_id = vendor.hook.default_conn_name.upper()
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps({"host": vendor.base, **vendor.conn}))


def mock_vendor(router: respx.MockRouter, vendor: Vendor) -> respx.Route:
    router.post(vendor.base + "/oauth/token").mock(
        return_value=httpx.Response(200, json={"accessToken": "tok-bad-input", "expiresIn": 86400})
    )
    return router.get(url__startswith=vendor.status_url)


#: Deadlines tried in turn: unknown statuses count as RUNNING and only a deadline ends those. A
#: loaded machine can spend the shortest one before the first poll (building the client, minting
#: a token), so a run that never reached the vendor is tried again with a longer one.
DEADLINES = (0.05, 0.5, 5.0)


def trigger_events(vendor: Vendor, route: respx.Route) -> list[dict[str, Any]]:
    for allowed in DEADLINES:
        hook = vendor.hook(**FAST)
        trigger = FlowRunTrigger(
            hook_class_path=hook.class_path(),
            hook_kwargs=hook.hook_kwargs(),
            run_ref=vendor.ref.to_dict(),
            schedule=PollSchedule.fixed(0.001, 0.0).to_dict(),
            deadline=time.time() + allowed,
        )

        async def drive(trigger: FlowRunTrigger = trigger) -> list[dict[str, Any]]:
            try:
                return [event.payload async for event in trigger.run()]
            finally:
                await trigger.cleanup()

        events = asyncio.run(drive())
        if route.called:
            break
    return events


# -- vendor answers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VENDORS))
@pytest.mark.usefixtures("httpcore_transport")
def test_any_status_answer_ends_the_trigger_with_one_event(name, connections):
    vendor = VENDORS[name]

    @SETTINGS
    @given(body=status_bodies(vendor))
    def check(body: Any) -> None:
        with respx.mock(assert_all_called=False) as router:
            route = mock_vendor(router, vendor)
            serve(route, body)
            events = trigger_events(vendor, route)
        assert route.called, "the trigger never read the served answer"
        assert len(events) == 1, events
        event = events[0]
        assert event["status"] in EVENTS and event["run_id"] == vendor.ref.run_id
        if event["status"] == "error":
            assert vendor.hook.vendor in event["message"] and vendor.ref.run_id in event["message"]
        json.dumps(event)  # an event must serialize into the metadata DB

    check()


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_any_status_answer_is_a_status_or_a_clear_error_in_the_worker(name, connections):
    vendor = VENDORS[name]

    @SETTINGS
    @given(body=status_bodies(vendor))
    def check(body: Any) -> None:
        with respx.mock(assert_all_called=False) as router:
            route = mock_vendor(router, vendor)
            serve(route, body)
            try:
                status = vendor.hook(**FAST).get_status(vendor.ref)
            except FlowRunsError as exc:
                assert vendor.ref.run_id in str(exc) and "status" in str(exc)
            else:
                assert isinstance(status, RunStatus) and isinstance(status.vendor_status, str)
            assert route.called, "the hook never read the served answer"

    check()


#: Run-like items, some carrying the name/key the provider looks for, with dates in any order.
run_values = json_values | st.sampled_from(["run-name", "2026-11-23T10:00:00Z", "1999-01-01", "not a date"])
run_like = st.dictionaries(
    st.sampled_from((*FIELDS, "name", "metadata", "submittedAt")),
    run_values | st.fixed_dictionaries({"airflow_run_key": st.just("key")}),
    max_size=5,
)
list_items = st.lists(json_values | run_like, max_size=6)


@dataclass(frozen=True)
class Listing:
    url: str
    page: Callable[[list[Any]], Any]  # items -> the vendor's page shape
    find: Callable[[], Any]  # the provider call that reads the listing


LISTINGS = {
    "habu_question_runs": Listing(
        "https://api.habu.com/v1/cleanroom-questions/q1/cleanroom-question-runs",
        lambda items: items,
        lambda: HabuHook(**FAST).find_question_run("q1", "run-name"),
    ),
    "habu_flow_runs": Listing(
        "https://api.habu.com/v1/cleanrooms/cr/cleanroom-flows/f1/cleanroom-flow-runs",
        lambda items: {"cleanRoomFlowRuns": items, "count": len(items)},
        lambda: HabuHook(**FAST).find_flow_run("cr", "f1", "run-name"),
    ),
    "tableflow_flow_runs": Listing(
        "https://api.tableflow.com/v2/flows/f1/runs",
        lambda items: items,
        lambda: TableflowHook(**FAST).find_run("f1", "key"),
    ),
    "amperity_runs": Listing(
        "https://app.amperity.com/api/workflow/runs",
        lambda items: {"data": items, "next_token": None},
        lambda: list(AmperityHook(**FAST).list_workflows()),
    ),
}


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_any_listing_is_read_or_refused_clearly(name, connections):
    listing = LISTINGS[name]

    @SETTINGS
    @given(items=list_items, wrong_shape=st.booleans(), other=json_values)
    def check(items: list[Any], wrong_shape: bool, other: Any) -> None:
        with respx.mock(assert_all_called=False) as router:
            router.post(url__regex=r".*/oauth/token$").mock(
                return_value=httpx.Response(200, json={"accessToken": "tok-bad-input", "expiresIn": 86400})
            )
            route = router.get(url__startswith=listing.url)
            serve(route, other if wrong_shape else listing.page(items))
            try:
                found = listing.find()
            except FlowRunsError as exc:
                assert "list" in str(exc).lower() or "page" in str(exc).lower(), exc
            else:
                assert found is None or isinstance(found, (dict, list))
            assert route.call_count <= 50, "a listing that never ends"

    check()


# -- file names from vendors -------------------------------------------------------------------------------
hostile_names = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        ["../../x", "/etc/passwd", "..", ".", "a/../../b", "\x00x", "C:\\x\\..\\y", "~/x", "résumé ✓.csv"]
    ),
    st.lists(
        st.sampled_from(["..", ".", "", "x", "\x00", "/", "\\", "é", "\u202e", "\u200b", "\ufeff", "\x7f"]),
        max_size=8,
    ).map("/".join),
)


@SETTINGS
@given(name=hostile_names)
@example(
    name="../invoice\u202efdp.exe\u200b\ufeff"
)  # every run checks format characters, not only lucky ones
def test_vendor_file_names_never_leave_the_destination(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("dest")
    prefix = as_storage_path(str(root / "out"))
    safe = sanitize_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    # no control (Cc), format (Cf: U+202E right-to-left override, U+200B, U+FEFF), surrogate or
    # unassigned character survives
    assert all(unicodedata.category(c)[0] != "C" for c in safe), ascii(safe)
    assert safe not in {".", ".."} and not safe.startswith(".")
    assert len(safe.encode()) <= 200
    unique = unique_name(name, set())
    assert "/" not in unique and unique not in {".", ".."}
    written = write_atomically(child_path(prefix, name), [b"data"], expected_size=4)
    assert Path(written.uri.removeprefix("file://")).resolve().is_relative_to(root / "out")
    assert [p.relative_to(root) for p in root.rglob("*") if p.is_file()] == [Path("out") / safe]


# -- operator parameters -------------------------------------------------------------------------------------
def expected_seconds(value: Any) -> float | type[FlowRunsError] | None:
    """The oracle: what ``to_seconds`` must answer, written from its contract, not its code."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return FlowRunsError


@SETTINGS
@given(value=json_values | st.timedeltas() | st.floats(min_value=1e-6, max_value=1e9))
def test_durations_are_positive_seconds_or_a_named_error(value):
    expected = expected_seconds(value)
    if expected is FlowRunsError:
        with pytest.raises(FlowRunsError, match=r"poll_interval must be a positive number of seconds"):
            to_seconds(value, "poll_interval")
    else:
        assert to_seconds(value, "poll_interval") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(timedelta(minutes=5), 300.0), (90, 90.0), (0.5, 0.5), (None, None)],
)
def test_durations_have_their_values(value, expected):
    assert to_seconds(value, "timeout") == expected


def plain(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


@SETTINGS
@given(params=json_values | st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_hook_params_are_plain_or_a_named_error(params):
    if params is None:
        assert hook_params_checked(params) == {}
    elif not isinstance(params, dict):
        with pytest.raises(FlowRunsError, match=r"^hook_params must be a dict, got "):
            hook_params_checked(params)
    elif not all(plain(v) for v in params.values()):
        with pytest.raises(FlowRunsError, match=r"^hook_params\[.*\] must be a plain number or string"):
            hook_params_checked(params)
    else:
        checked = hook_params_checked(params)
        assert checked == params and checked is not params  # a copy: the operator's own dict


@SETTINGS
@given(
    value=json_values
    | st.integers(min_value=-3, max_value=10**6)
    | st.integers(min_value=0, max_value=999).map(lambda n: f"Level-{n}")
    | st.integers(min_value=0, max_value=999).map(lambda n: f" level{n} ")
)
def test_levels_are_numbers_or_a_named_error(value):
    if isinstance(value, bool):
        expected: int | None = None
    elif isinstance(value, int):
        expected = value if value >= 1 else None
    else:
        match = re.fullmatch(r"\s*(?:level-?)?\s*(\d+)\s*", str(value), re.IGNORECASE)
        expected = int(match.group(1)) if match and int(match.group(1)) >= 1 else None
    if expected is None:
        with pytest.raises(FlowRunsError, match=r"^pause_level must be"):
            level_number(value, "pause_level")
    else:
        assert level_number(value, "pause_level") == expected


dates = st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=25) | st.none()


@SETTINGS
@given(
    config=st.sampled_from(["cg-1", "og-1", "xx-1", "", "cg-\x00"]) | st.text(max_size=8),
    mode=st.sampled_from([None, "refresh", "full", "partial"]) | st.text(max_size=6),
    start=dates,
    end=dates,
)
def test_amperity_start_parameters_are_valid_or_a_named_error(config, mode, start, end):
    try:
        body = validate_start(config, mode, start, end)
    except FlowRunsError as exc:
        assert any(word in str(exc) for word in ("config_id", "run_mode", "range_from", "range_to")), exc
    else:
        assert body["config_id"] == config
        if "range_to" in body:  # dates in order, whatever order they were given in
            assert body["range_from"] < body["range_to"]
