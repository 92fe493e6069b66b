"""Through Airflow's own UI in a real browser (Debian's chromium, driven by playwright): the Add
Connection form of each of our types, and the "Open in <vendor>" link of a finished task.

One API server (the full stack: the example DAG must run) and one browser session per Airflow
version. Form screenshots go to ``build/browser/<airflow version>/`` (docs/images/ holds copies);
a failing check leaves ``<test>-failure.png`` there too.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowruns import forms
from flowruns_dev.airflow_stack import AirflowStack
from flowruns_dev.fleet import EmulatorFleet

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "build" / "browser" / importlib.metadata.version("apache-airflow")
#: Our types as the type picker lists them.
TYPE_NAMES = {
    "habu": "LiveRamp Clean Room (Habu)",
    "amperity": "Amperity",
    "activepieces": "Activepieces",
    "tableflow": "Tableflow",
}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

sync_api = pytest.importorskip("playwright.sync_api", reason="make test installs playwright")
if not Path(CHROMIUM).exists():  # pragma: no cover - make test installs it
    pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[AirflowStack, str]]:
    workdir = tmp_path_factory.mktemp("browser")
    env_extra = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    with (
        EmulatorFleet(workdir, secret="browser-secret") as fleet,
        AirflowStack(
            "browser", dags_folder=ROOT / "example_dags", root=ROOT, env={**fleet.env, **env_extra}
        ) as st,
    ):
        run_id = st.trigger("example_tableflow_invoices")  # runs while the forms are checked
        yield st, run_id


@pytest.fixture(scope="module")
def page(stack) -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*-failure.png"):
        old.unlink()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.set_default_timeout(30_000)
        # The first visit signs in (all users are admins) and lands on Home, whatever was asked for.
        page.goto(f"http://127.0.0.1:{stack[0].port}/", wait_until="networkidle")
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def failure_screenshot(request, page) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(SHOTS / f"{request.node.name}-failure.png"), full_page=True)


def _open_add_connection(page: Any, base: str, conn_type: str) -> Any:
    add = page.get_by_role("button", name="Add Connection")
    for _ in range(3):  # Airflow 3.1's sign-in may still land a first visit on Home
        page.goto(f"{base}/connections", wait_until="networkidle")
        try:
            add.wait_for(timeout=10_000)
            break
        except sync_api.TimeoutError:
            continue
    add.click()
    page.get_by_label("Connection ID").fill(f"{conn_type}_from_browser")
    page.get_by_role("combobox").fill(TYPE_NAMES[conn_type])
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Standard Fields", exact=True).wait_for()
    return dialog


@pytest.mark.parametrize("conn_type", sorted(TYPE_NAMES))
def test_add_connection_form(stack, page, conn_type):
    """Every label and placeholder we declare shows and hidden fields do not (Standard Fields, open
    first); every extra shows with its description, required extras are flagged ("This field is
    required" until filled) and choices are a select with the default picked (Extra Fields: the
    accordion opens one section at a time)."""
    st, _ = stack
    form = forms.FORMS[conn_type]
    dialog = _open_add_connection(page, f"http://127.0.0.1:{st.port}", conn_type)
    for label in form.labels.values():
        dialog.get_by_text(label, exact=True).wait_for()
    for name, placeholder in form.placeholders.items():
        assert dialog.get_by_placeholder(placeholder, exact=True).is_visible(), (name, placeholder)
    standard = dialog.inner_text().split("Extra Fields")[0]
    for hidden in form.hidden:
        assert {"schema": "Schema", "port": "Port", "login": "Login"}.get(hidden, hidden) not in standard
    dialog.screenshot(path=str(SHOTS / f"connection-{conn_type}.png"))
    dialog.get_by_text("Extra Fields", exact=True).click()
    for f in form.extras.values():
        # A required field's label ends in the UI's red "*" marker; an optional one's does not.
        marker = r"\s*\*$" if f.required else r"[^*]*$"
        dialog.get_by_text(re.compile(rf"^{re.escape(f.label)}{marker}")).wait_for()
        assert dialog.get_by_text(f.description, exact=True).is_visible(), f.description
    required_empty = [f for f in form.extras.values() if f.required and f.default is None]
    assert dialog.get_by_text("This field is required", exact=True).count() == len(required_empty)
    for f in form.extras.values():
        if f.choices:
            # The select shows the default (its options are in the page too, hidden until opened).
            assert f.default is not None and dialog.get_by_text(str(f.default), exact=True).first.is_visible()
    switches = [f for f in form.extras.values() if f.type == "boolean"]
    boxes = dialog.locator("input[type=checkbox]")
    assert boxes.count() == len(switches)  # a boolean extra is a switch, showing its default
    for i, f in enumerate(switches):
        assert boxes.nth(i).is_checked() is bool(f.default), f.label
    page.wait_for_timeout(300)  # the section's opening animation, for the screenshot only
    dialog.screenshot(path=str(SHOTS / f"connection-{conn_type}-extra.png"))


def test_habu_mint_switch_writes_the_extra_the_hook_reads(stack, page):
    """Turning on "Test Connection may spend a token" and saving stores ``test_connection_mints:
    true`` in the connection's extra, the key and value HabuHook.test_connection_mints reads."""
    st, _ = stack
    label = forms.HABU.extras["test_connection_mints"].label
    dialog = _open_add_connection(page, f"http://127.0.0.1:{st.port}", "habu")
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.get_by_text(label, exact=True).wait_for()
    switch = dialog.locator("input[type=checkbox]")
    assert not switch.is_checked()
    switch.dispatch_event("click")  # the input itself is hidden behind the switch's track
    page.wait_for_function("el => el.checked", arg=switch.element_handle())
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST"):
        dialog.get_by_role("button", name="Save").click()
    try:
        stored = st.api("GET", "/connections/habu_from_browser")
        assert json.loads(stored["extra"])["test_connection_mints"] is True, stored["extra"]
    finally:
        st.api("DELETE", "/connections/habu_from_browser")


#: Types whose Test needs no rationed token (Habu's test reuses a cached one or says why not).
TESTED = ("amperity", "activepieces", "tableflow")
#: What Airflow 3.3.2's API answers the list's Test button for a connection without a port.
PORTLESS_REFUSAL = (
    "The host or port to test differs from the stored connection. "
    "Include the credentials to test in the request body."
)


def _refuses_portless_tests() -> bool:
    """Whether this Airflow's API refuses the Test button for every connection without a port
    (apache/airflow#73298, not in a release as of 3.3.2): the UI sends ``port: Number(null)``, i.e.
    ``0``, and the API's "same endpoint as stored?" check normalises ``""`` to unset but not ``0``.
    Asked of the installed code itself, so the test follows the fix when a release carries it."""
    try:
        from airflow.api_fastapi.core_api.routes.public.connections import _same_endpoint
    except ImportError:  # Airflow 3.1: no such check
        return False
    return not _same_endpoint(0, None)


#: The two toasts a Test press ends in.
TOASTS = ("Test Connection Successful", "Test Connection Failed")
#: Records every toast title that appears on the page, however briefly: a toast is gone after a few
#: seconds, which a loaded machine can spend between the API's answer and the test's next look.
_RECORD_TOASTS = """toasts => {
    window.__toasts = [];
    const look = () => {
        const text = document.body.innerText;
        for (const t of toasts) if (text.includes(t) && !window.__toasts.includes(t)) window.__toasts.push(t);
    };
    new MutationObserver(look).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def _press_test(page: Any, base: str, conn_id: str) -> tuple[int, Any, str]:
    """Press the list row's Test Connection button: the API's answer (status, JSON body) and the
    toast the page showed for it."""
    page.goto(f"{base}/connections", wait_until="networkidle")
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.get_by_role("button", name="Test Connection").wait_for()
    page.evaluate(_RECORD_TOASTS, list(TOASTS))
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    page.wait_for_function("() => window.__toasts.length > 0")
    (toast,) = page.evaluate("() => window.__toasts")
    return answer.value.status, answer.value.json(), toast


@pytest.mark.parametrize("conn_type", TESTED)
def test_test_connection_button(stack, page, conn_type):
    """The list's Test Connection button, on a connection to the emulator, answers success with the
    hook's own message (what was reached, as whom).

    Where Airflow refuses every portless connection's test (see :func:`_refuses_portless_tests`),
    the button's refusal is asserted as exactly that, and the press is repeated with the request the
    upstream fix treats as the same one (no ``port``, as the connection has none), rewritten in the
    browser on its way out: the rest of the path (API server, Connection.test_connection(), our
    hook, the emulator, the toast) is unchanged."""
    st, _ = stack
    base = f"http://127.0.0.1:{st.port}"
    conn = json.loads(st.env[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"])
    conn_id = f"{conn_type}_test_button"
    st.api(
        "POST",
        "/connections",
        {**conn, "connection_id": conn_id, "extra": json.dumps(conn.get("extra") or {})},
    )
    status, body, toast = _press_test(page, base, conn_id)
    if _refuses_portless_tests():
        assert (status, body, toast) == (400, {"detail": PORTLESS_REFUSAL}, "Test Connection Failed")

        ports_sent: list[Any] = []

        def without_port(route: Any) -> None:
            sent = json.loads(route.request.post_data)
            ports_sent.append(sent.pop("port", "absent"))
            route.continue_(post_data=json.dumps(sent))

        page.route("**/api/v2/connections/test", without_port)
        try:
            status, body, toast = _press_test(page, base, conn_id)
        finally:
            page.unroute("**/api/v2/connections/test")
        assert ports_sent == [0]  # what the UI sends for a connection without a port
    assert status == 200, body
    assert body["status"] is True, body
    assert body["message"].startswith(f"Reached {TYPE_NAMES[conn_type]}"), body
    assert toast == "Test Connection Successful"
    page.screenshot(path=str(SHOTS / f"test-{conn_type}.png"))


def test_finished_task_has_the_vendor_link(stack, page):
    st, run_id = stack
    report = st.wait_for_run("example_tableflow_invoices", run_id, timeout=420)
    assert report.state == "success", report
    served = st.api(
        "GET", f"/dags/example_tableflow_invoices/dagRuns/{run_id}/taskInstances/extract/links?map_index=0"
    )
    url = served["extra_links"]["Open in Tableflow"]
    assert url.startswith("https://app.tableflow.com/flows/runs/"), served
    page.goto(
        f"http://127.0.0.1:{st.port}/dags/example_tableflow_invoices/runs/{run_id}/tasks/extract/mapped/0",
        wait_until="networkidle",
    )
    page.get_by_text("Details", exact=True).click()  # the tab with the Extra Links panel
    link = page.get_by_role("link", name="Open in Tableflow")
    link.wait_for()
    assert link.get_attribute("href") == url


def test_copy_form_screenshots_for_the_docs():
    """Not a check: keeps docs/images/ in step when FLOWRUNS_UPDATE_DOC_IMAGES is set."""
    import os

    if not os.environ.get("FLOWRUNS_UPDATE_DOC_IMAGES"):
        pytest.skip("set FLOWRUNS_UPDATE_DOC_IMAGES=1 to copy the form screenshots into docs/images/")
    for conn_type in TYPE_NAMES:
        for shot in (f"connection-{conn_type}.png", f"connection-{conn_type}-extra.png"):
            shutil.copy(SHOTS / shot, ROOT / "docs" / "images" / shot)
