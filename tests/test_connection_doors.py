"""Airflow's own doors into our connections: ``Connection.get_hook()`` / ``BaseHook.get_hook()`` build
each hook as ``hook_class(**{conn_name_attr: conn_id})``, and Test Connection (UI button, REST,
``airflow connections test``) calls the hook's ``test_connection()``. Against the emulators."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow.models.connection import Connection as ServerConnection
from airflow.sdk import BaseHook

from airflow_provider_flowruns.core import shared_tokens
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.hooks.amperity import AmperityHook
from airflow_provider_flowruns.hooks.habu import HabuHook
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing import activepieces_app, tableflow_app
from airflow_provider_flowruns.testing.process import EmulatorProcess

SECRETS = ("amperity-token", "activepieces-key", "tableflow-key", "habu-secret", "wrong-key-123")


@pytest.fixture(scope="module")
def emu():
    with EmulatorProcess(["habu", "amperity", "activepieces", "tableflow"]) as process:
        yield process


def _connections(emu, *, key: str | None = None, **habu_extra) -> dict[str, dict]:
    return {
        "amperity_door": {
            "conn_type": "amperity",
            "host": emu.url("amperity", "/api"),
            "password": key or "amperity-token",
            "extra": {"tenant": "acme"},
        },
        "activepieces_door": {
            "conn_type": "activepieces",
            "host": emu.url("activepieces", "/api"),
            "password": key or activepieces_app.API_KEY,
            "extra": {"project_id": activepieces_app.PROJECT_ID},
        },
        "tableflow_door": {
            "conn_type": "tableflow",
            "host": emu.url("tableflow", "/v2"),
            "password": key or tableflow_app.API_KEY,
        },
        "habu_door": {
            "conn_type": "habu",
            "host": emu.url("habu", "/v1"),
            "login": "habu-client",
            "password": key or "habu-secret",
            "extra": habu_extra,
        },
    }


@pytest.fixture
def doors(emu, monkeypatch, tmp_path):
    """Every connection in an ``AIRFLOW_CONN_*`` variable (as the REST test route exports it), the
    emulator and this process's token memory reset."""
    emu.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())

    def use(**kwargs) -> dict[str, dict]:
        conns = _connections(emu, **kwargs)
        for conn_id, conn in conns.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conns

    use()
    return use


HOOKS = {
    "amperity_door": AmperityHook,
    "activepieces_door": ActivepiecesHook,
    "tableflow_door": TableflowHook,
    "habu_door": HabuHook,
}


@pytest.mark.parametrize("conn_id", sorted(HOOKS))
def test_airflow_builds_every_hook_by_its_conn_name_attr(doors, conn_id):
    """Before: ``FlowRunsHook.__init__() got an unexpected keyword argument 'amperity_conn_id'``."""
    server_conn = ServerConnection.get_connection_from_secrets(conn_id)
    for hook in (server_conn.get_hook(), BaseHook.get_hook(conn_id)):
        assert type(hook) is HOOKS[conn_id]
        assert hook.conn_id == conn_id
        assert getattr(hook, HOOKS[conn_id].conn_name_attr) == conn_id


def test_both_spellings_of_the_conn_id_agree_or_fail_clearly():
    assert AmperityHook(amperity_conn_id="a").conn_id == "a"
    assert AmperityHook(conn_id="a", amperity_conn_id="a").conn_id == "a"
    with pytest.raises(ValueError, match="name different connections"):
        AmperityHook(conn_id="a", amperity_conn_id="b")
    with pytest.raises(
        TypeError, match="'habu_conn_id'; the connection id is passed as conn_id or amperity_conn_id"
    ):
        AmperityHook(habu_conn_id="a")  # type: ignore[arg-type]


def test_test_connection_through_airflow_reaches_each_vendor(doors, emu):
    expected = {
        "amperity_door": f"Reached Amperity tenant acme at {emu.url('amperity', '/api')}; API token accepted.",
        "activepieces_door": (
            f"Reached Activepieces at {emu.url('activepieces', '/api')}; platform API key accepted for "
            f"project {activepieces_app.PROJECT_ID}."
        ),
        "tableflow_door": (
            f"Reached Tableflow at {emu.url('tableflow', '/v2')}; API key accepted; 4 active flow(s) "
            f"(workspace {tableflow_app.WORKSPACE_ID})."
        ),
    }
    for conn_id, message in expected.items():
        assert ServerConnection.get_connection_from_secrets(conn_id).test_connection() == (True, message)
    stats = emu.stats()["vendors"]
    assert stats["amperity"]["runs_created"] == 0 and stats["tableflow"]["runs_created"] == 0


def test_a_wrong_key_fails_with_the_vendors_words_and_no_secret(doors, emu):
    doors(key="wrong-key-123")
    results = {
        conn_id: ServerConnection.get_connection_from_secrets(conn_id).test_connection()
        for conn_id in ("amperity_door", "activepieces_door", "tableflow_door")
    }
    # The vendor's own words; a request id (different each time) may follow.
    expected = {
        "amperity_door": f"Amperity connection 'amperity_door' at {emu.url('amperity', '/api')}: GET "
        "workflow/runs failed with HTTP 401: Invalid or expired access token; request id ",
        "activepieces_door": f"Activepieces connection 'activepieces_door' at {emu.url('activepieces', '/api')}: "
        "GET v1/flow-runs failed with HTTP 401: INVALID_API_KEY: Invalid API key",
        "tableflow_door": f"Tableflow connection 'tableflow_door' at {emu.url('tableflow', '/v2')}: GET flows "
        "failed with HTTP 401",
    }
    for conn_id, (status, message) in results.items():
        assert status is False
        assert message.startswith(expected[conn_id]), message
        assert not any(secret in message for secret in SECRETS)
    assert "Invalid API key" in results["tableflow_door"][1]


def _minted(emu) -> int:
    return int(emu.stats()["vendors"]["habu"].get("tokens_minted", 0))


def test_habu_test_without_a_cached_token_does_not_mint_by_default(doors, emu):
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert (status, message) == (
        False,
        f"Reached LiveRamp Clean Room at {emu.url('habu', '/v1')} (health: UP), but the client id and "
        "secret were not checked: no token is cached for API user 'habu-client', and minting one spends "
        "one of the 2 tokens Habu issues per day. Run a task with this connection first, or turn on "
        "'Test Connection may spend a token' (extra test_connection_mints: true) to let the test mint one.",
    )
    assert _minted(emu) == 0


@pytest.mark.parametrize("value", [None, False, "false"])
def test_habu_test_mints_nothing_with_the_switch_off_or_cleared(doors, emu, value):
    """The form's switch writes false, or null for a cleared field: both are the default, off."""
    doors(test_connection_mints=value)
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert status is False and "the client id and secret were not checked" in message, message
    assert _minted(emu) == 0


def test_habu_test_mints_once_when_allowed_then_reuses_the_cached_token(doors, emu):
    doors(test_connection_mints=True)
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert (status, message) == (
        True,
        f"Reached LiveRamp Clean Room at {emu.url('habu', '/v1')} (health: UP); minted a token for API "
        "user 'habu-client' (one of its 2 a day); credentials accepted",
    )
    assert _minted(emu) == 1
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert status is True and "a token for API user 'habu-client' is cached and valid until" in message
    assert _minted(emu) == 1


def test_habu_test_with_a_wrong_secret_says_what_habu_said(doors, emu):
    doors(key="wrong-key-123", test_connection_mints="true")
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert status is False
    assert message.startswith(f"LiveRamp Clean Room connection 'habu_door' at {emu.url('habu', '/v1')}: ")
    assert "HTTP 401" in message and "Bad client credentials" in message
    assert "wrong-key-123" not in message


def test_habu_test_connection_mints_must_be_a_boolean(doors):
    doors(test_connection_mints="sometimes")
    status, message = ServerConnection.get_connection_from_secrets("habu_door").test_connection()
    assert status is False and "test_connection_mints must be true or false, got 'sometimes'" in message


@pytest.mark.usefixtures("airflow_db")
def test_airflow_connections_test_cli(doors, emu):
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    ok = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", "amperity_door"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Connection success!" in ok.stdout
    env["AIRFLOW_CONN_AMPERITY_DOOR"] = json.dumps(_connections(emu, key="wrong-key-123")["amperity_door"])
    bad = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", "amperity_door"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    # Airflow 3.3 exits 1 on a failed test; 3.1's CLI prints the failure and exits 0.
    assert "Connection success!" not in bad.stdout
    assert "Connection failed!" in bad.stdout and "Invalid or expired access token" in bad.stdout
    assert "wrong-key-123" not in bad.stdout + bad.stderr


@pytest.mark.usefixtures("airflow_db")
def test_habu_cli_test_reuses_the_token_the_deployment_shares(doors, emu):
    """Where Airflow runs the test (CLI, API server) there is no task supervisor: the token that tasks
    share is read through Airflow's Variable model (secrets backends, then the metadata database;
    here the Variable comes from an ``AIRFLOW_VAR_*`` variable), reported, and nothing is minted."""
    from airflow_provider_flowruns.core.auth import secret_digest

    credential = f"{emu.url('habu', '/v1')}/oauth/token|habu-client|{secret_digest('habu-secret')}"
    key = shared_tokens.SHARED_TOKEN_CACHE.variable_key(credential)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", "habu_door"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            f"AIRFLOW_VAR_{key.upper()}": json.dumps(
                {"token": "tok-shared-by-tasks", "expires_at": 4102444800.0}
            ),
        },
        timeout=120,
    )
    assert "Connection success!" in result.stdout, result.stdout + result.stderr[-3000:]
    assert _minted(emu) == 0
    assert "tok-shared-by-tasks" not in result.stdout + result.stderr


def test_an_unknown_amperity_auth_fails_naming_the_choices(doors, monkeypatch, emu):
    """Before: any ``auth`` but ``client_credentials`` (``client-credentials``, say) silently meant
    the token in the password."""
    conn = _connections(emu)["amperity_door"]
    conn["extra"]["auth"] = "client-credentials"
    monkeypatch.setenv("AIRFLOW_CONN_AMPERITY_DOOR", json.dumps(conn))
    assert ServerConnection.get_connection_from_secrets("amperity_door").test_connection() == (
        False,
        "Amperity connection 'amperity_door': Connection 'amperity_door': extra 'auth' must be one of "
        "token, client_credentials, got 'client-credentials'",
    )
