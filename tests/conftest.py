"""Shared fixtures: an isolated AIRFLOW_HOME, a migrated metadata DB, and the emulators as a real
uvicorn process on 127.0.0.1."""

from __future__ import annotations

import importlib.metadata
import json
import os
import runpy
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# One home per Airflow version (the 3.3 and 3.1-floor runs must not share a metadata DB) and per
# test process: xdist workers inherit the controller's environment, so a home this file chose is
# re-chosen in every process (by pid: xdist names its workers only after this module is imported).
if "AIRFLOW_HOME" not in os.environ or os.environ.get("FLOWRUNS_TEST_HOME_PID"):
    version = importlib.metadata.version("apache-airflow")
    os.environ["AIRFLOW_HOME"] = str(ROOT / ".run" / f"airflow-test-{version}-{os.getpid()}")
    os.environ["FLOWRUNS_TEST_HOME_PID"] = str(os.getpid())
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "tests" / "dags"))
# dag.test() runs a deferred task's trigger in-process, with no scheduler whose record of the
# deferral the first poll could beat: no 10 s wait per deferral there. The real-scheduler stacks
# (dev/flowruns_dev/airflow_stack.py) drop this and keep the default floor; test_trigger.py checks the default.
os.environ.setdefault("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", "0")

import pytest  # noqa: E402

from airflow_provider_flowruns.testing.process import EmulatorProcess  # noqa: E402

DEMO_TOKEN = "demo-token"


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[None]:
    """A fresh SQLite metadata DB for ``dag.test()`` (the end-to-end suite uses PostgreSQL),
    removed with its home at the end of the session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "airflow.db").unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    yield
    if home.name.endswith(f"-{os.getpid()}"):
        shutil.rmtree(home, ignore_errors=True)


#: Busy-loop processes a ``cpu_hog`` test runs beside it: on this 2-core machine, more runnable
#: processes than cores, so the test's event loop and the emulator both wait for CPU.
CPU_HOGS = 3


@pytest.fixture
def cpu_hog() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The machine kept busy for the test's duration: a limiter test must hold on a loaded worker,
    not only on an idle one. Each hog is stopped by its own pid afterwards."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(CPU_HOGS)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)


@pytest.fixture(scope="session")
def emulator():
    with EmulatorProcess(["demo"]) as emu:
        yield emu


@pytest.fixture
def demo(emulator, monkeypatch):
    """The demo emulator, reset, with ``flowruns_demo_default`` pointing at it (bearer token)."""
    emulator.control("POST", "reset")
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT",
        f'{{"conn_type": "flowruns_demo", "host": "{emulator.url("demo", "/v1")}", "password": "{DEMO_TOKEN}"}}',
    )
    return emulator


def demo_stats(emulator) -> dict:
    return emulator.stats()["vendors"]["demo"]


def cut_demo_result(demo, name: str, *, cuts: int, **run: Any):
    """A finished demo run's result, with its next ``cuts`` downloads cut short by the emulator:
    the ``open_stream`` that ``download_to`` takes."""
    import time

    from airflow_provider_flowruns.core.http import Call
    from airflow_provider_flowruns.testing.demo import DemoHook

    hook = DemoHook(retry_base_delay=0.01)
    ref = hook.start_run(name, duration=0.1, **run)
    while hook.get_status(ref).vendor_status != "SUCCEEDED":
        time.sleep(0.1)
    demo.add_faults({"kind": "truncate", "path": "/result$", "times": cuts})
    return lambda: hook.stream(Call("GET", f"runs/{ref.run_id}/result"))


@pytest.fixture
def lineage_collector(monkeypatch):
    """A real hook lineage collector, as Airflow hands out once a lineage reader plugin (OpenLineage,
    say) is installed; where it lives depends on the Airflow version."""
    try:
        from airflow.sdk import lineage
    except ImportError:  # Airflow 3.1
        from airflow.lineage import hook as lineage  # type: ignore[no-redef]

    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)
    return collector


@pytest.fixture
def fresh_tokens(airflow_db, monkeypatch, tmp_path):
    """Forget every token and create booking an earlier test left behind - in the shared Variables,
    this process's memory and the host lock dir - so a test counts its own mints and creates (the
    emulator forgot them too)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from airflow_provider_flowruns.core import shared_tokens
    from airflow_provider_flowruns.hooks import habu

    with create_session() as session:
        for prefix in ("flowruns_token_%", "flowruns_budget_%"):
            session.query(Variable).filter(Variable.key.like(prefix)).delete(synchronize_session=False)
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "token-locks"))
    monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())
    monkeypatch.setattr(habu.CREATE_BUDGET, "_memory", {})


def run_dag(module: str, dag_id: str, **kwargs: Any) -> dict[str, Any]:
    """``dag.test()`` a DAG of ``tests/dags/<module>``; task id -> task instance."""
    dag = runpy.run_path(str(ROOT / "tests" / "dags" / module))[dag_id]
    return {ti.task_id: ti for ti in dag.test(**kwargs).get_task_instances()}


def xcom(ti: Any, key: str = "return_value") -> Any:
    """An XCom value of a task instance that ``dag.test()`` ran (None when absent)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, key=key, map_index=ti.map_index
            )
            .one_or_none()
        )
        value = None if row is None else row.value
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@pytest.fixture
def httpcore_transport(monkeypatch):
    """Async clients on httpx's own transport: respx intercepts httpcore, not aiohttp.

    For tests about the engine above the transport that serve vendor answers with respx; the
    aiohttp transport itself is tested against real servers (tests/test_aiohttp_transport.py).
    """
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT", "httpx")


@pytest.fixture
def tableflow_fr1(monkeypatch, httpcore_transport):
    """Tableflow run ``fr1`` served by respx (connection ``tableflow_default``, key ``k``):
    ``route = tableflow_fr1(*answers)`` answers its status reads in turn, each answer a JSON body or
    an ``httpx.Response``."""
    import httpx
    import respx

    monkeypatch.setenv("AIRFLOW_CONN_TABLEFLOW_DEFAULT", '{"conn_type": "tableflow", "password": "k"}')
    with respx.mock:

        def serve(*answers: Any) -> respx.Route:
            return respx.get("https://api.tableflow.com/v2/flows/runs/fr1").mock(
                side_effect=[
                    a if isinstance(a, httpx.Response) else httpx.Response(200, json=a) for a in answers
                ]
            )

        yield serve


class TaskStateStore:
    """The calls the operator makes on Airflow's ``context["task_state_store"]`` (3.3+), kept in a
    dict (JSON round-tripped, as Airflow stores it) so one test can play a task's successive tries."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)

    def set(self, key: str, value: object, *, retention: object = None) -> None:
        self.values[key] = json.loads(json.dumps(value))


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    from flowruns_dev.tls import self_signed

    return self_signed(tmp_path)


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server (another process on 127.0.0.1) with the bucket ``flowruns-results``, one
    per test process: tests use fresh prefixes in it."""
    from flowruns_dev.moto import MotoServer

    with MotoServer("flowruns-results") as moto:
        yield moto


@pytest.fixture(params=["file", "s3"])
def destination(request, tmp_path, monkeypatch):
    """An empty destination prefix: a local folder, or a fresh prefix in moto's S3 server reached
    through an Airflow AWS connection (transfers are tested on both)."""
    from airflow.sdk import ObjectStoragePath

    if request.param == "file":
        return ObjectStoragePath(f"file://{tmp_path}/out")
    moto = request.getfixturevalue("moto_server")
    if not moto.alive():
        print(f"!!! moto's S3 server had stopped ({moto.restart()}); restarted", flush=True)
    # The connection id names the server's port: Airflow caches an ObjectStoragePath's filesystem
    # per protocol and connection id for the life of the process (airflow.sdk.io.store), so a second
    # server behind the same id would be reached at the first one's address. That was the "moto
    # server died mid-suite" failure of full runs: a module-scoped server was replaced, the cached
    # filesystem still pointed at the old port, and the connection was refused.
    conn_id = f"flowruns_s3_{moto.port}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto.url, "region_name": "us-east-1"},
            }
        ),
    )
    return ObjectStoragePath(f"s3://flowruns-results/{uuid.uuid4().hex}", conn_id=conn_id)
