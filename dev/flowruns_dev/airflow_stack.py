"""A real Airflow on this machine - API server, scheduler, DAG processor, triggerer - for end-to-end
tests and ``make demo``, plus helpers to trigger a DAG and read back what happened.

Metadata DB: PostgreSQL on 127.0.0.1:5432 when reachable (how users run Airflow), else SQLite with
a loud warning saying what that does not exercise. Executor: LocalExecutor, or CeleryExecutor with
Redis on 127.0.0.1:6379 as broker and several workers and triggerers (the distributed Airflow our
users run at scale); the distributed stack needs both services and says so when they are missing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from airflow_provider_flowruns.testing.process import free_port


def service_hostname() -> str:
    """``[core] hostname_callable`` for the stack's services: each reports its own tag (say
    ``triggerer-1``) as its host, so the ``job`` table tells which process holds which triggers."""
    return os.environ.get("FLOWRUNS_SERVICE_HOSTNAME") or socket.getfqdn()


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_available(host: str = "127.0.0.1", port: int = 5432) -> bool:
    return reachable(port, host)


def redis_available(host: str = "127.0.0.1", port: int = 6379) -> bool:
    return reachable(port, host)


@dataclass
class RunReport:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str]
    xcoms: dict[str, Any]


class AirflowStack:
    """``with AirflowStack(...) as stack`` starts the services; ``executor="CeleryExecutor"`` adds
    ``workers`` Celery workers, and ``triggerers`` triggerers run side by side (tags
    ``triggerer-1``, ``triggerer-2``, ... when there is more than one) so one can be killed."""

    def __init__(
        self,
        name: str,
        *,
        dags_folder: Path,
        root: Path,
        env: Mapping[str, str] | None = None,
        database: str = "auto",
        executor: str = "LocalExecutor",
        workers: int = 2,
        triggerers: int = 1,
    ) -> None:
        self.name = name
        self.executor = executor
        self.workers = workers if executor == "CeleryExecutor" else 0
        self.triggerers = triggerers
        # Per Airflow version too: the suites on 3.3 and on the 3.1 floor may run at the same time.
        version = importlib.metadata.version("apache-airflow").replace(".", "_")
        self.home = root / ".run" / f"{name}-{version}"
        self.dags_folder = dags_folder
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._api_headers: dict[str, str] | None = None
        self.use_postgres = database == "postgres" or (database == "auto" and postgres_available())
        # One database per checkout, stack name and Airflow version: two clones, CI jobs or suites on one
        # server never share one.
        checkout = hashlib.sha1(str(root.resolve()).encode(), usedforsecurity=False).hexdigest()[:8]
        db_name = f"flowruns_{name.replace('-', '_')}_{version}_{checkout}"
        if self.use_postgres:
            self.db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db_name}"
        else:
            self.db_url = f"sqlite:///{self.home / 'airflow.db'}"
        self._db_name = db_name
        self.queue = "default"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            # Several stacks (xdist workers, CI jobs) share this machine: no fixed log-server ports.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # A killed triggerer's triggers move to a live one after this many seconds.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.service_hostname",
            **self._celery_env(),
            **dict(env or {}),
        }
        self.env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        # A real scheduler races a trigger that fires too soon after the deferral (apache/airflow#67287):
        # the stack keeps the default first-poll floor even when the dag.test() suite lowered it.
        self.env.pop("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", None)

    def _celery_env(self) -> dict[str, str]:
        if self.executor != "CeleryExecutor":
            return {}
        if not (self.use_postgres and redis_available()):
            raise RuntimeError(
                "CeleryExecutor needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379; "
                f"postgres={'up' if self.use_postgres else 'missing'}, "
                f"redis={'up' if redis_available() else 'missing'}"
            )
        # One queue per checkout and stack: two clones on one Redis never take each other's tasks.
        self.queue = f"flowruns_{self._db_name}"
        return {
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> AirflowStack:
        if self.home.exists():
            shutil.rmtree(self.home)
        (self.home / "logs").mkdir(parents=True)
        if self.use_postgres:
            self._recreate_postgres_db()
        elif os.environ.get("CI"):
            raise RuntimeError(
                "CI is set but PostgreSQL is not reachable on 127.0.0.1:5432: the end-to-end suites "
                "must run on the metadata DB users run, not fall back to SQLite there"
            )
        else:
            print(
                "\n" + "!" * 78 + "\n! PostgreSQL is not reachable on 127.0.0.1:5432: using SQLite for the\n"
                "! metadata DB. Not exercised: PostgreSQL metadata DB, concurrent task execution.\n"
                + "!"
                * 78,
                flush=True,
            )
        self._airflow("db", "migrate")
        for service in ("api-server", "scheduler", "dag-processor"):
            self.start_service(service)
        for i in range(1, self.triggerers + 1):
            tag = "triggerer" if self.triggerers == 1 else f"triggerer-{i}"
            self.start_service("triggerer", tag=tag, args=["--skip-serve-logs"] if i > 1 else [])
        for i in range(1, self.workers + 1):
            self.start_service(
                "celery",
                tag=f"worker-{i}",
                args=["worker", "--celery-hostname", f"w{i}@{self.name}", "--queues", self.queue, "-s"],
            )
        self._wait_http(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", 120)
        return self

    def start_service(
        self, service: str, *, tag: str | None = None, args: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        args = [service, *(args or [])]
        if service == "api-server":
            args += ["--port", str(self.port)]
        log = open(self.home / "logs" / f"{tag or service}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, "FLOWRUNS_SERVICE_HOSTNAME": tag or service},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[tag or service] = proc
        return proc

    def kill_service(self, tag: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(tag)
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def __enter__(self) -> AirflowStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- operations --------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the stack's REST API (``path`` under ``/api/v2``). Milliseconds where the CLI takes
        seconds to import Airflow, so many DAGs start together and a fault lands when it should."""
        if self._api_headers is None:
            token = httpx.get(f"http://127.0.0.1:{self.port}/auth/token", timeout=30).json()["access_token"]
            self._api_headers = {"Authorization": f"Bearer {token}"}
        response = httpx.request(
            method,
            f"http://127.0.0.1:{self.port}/api/v2{path}",
            json=dict(body) if body is not None else None,
            headers=self._api_headers,
            timeout=60,
        )
        if response.is_error:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def unpause(self, dag_id: str, *, wait_parse: float = 120) -> None:
        """Unpause ``dag_id`` once the DAG processor has parsed it."""
        self.wait_for(
            lambda: self._scalar("select count(*) from dag where dag_id=:d", d=dag_id),
            wait_parse,
            what=f"{dag_id} to be parsed",
        )
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def backfill(self, dag_id: str, from_date: str, to_date: str, *, wait_parse: float = 120) -> list[str]:
        """Create the scheduled runs of ``dag_id`` for every interval in [from_date, to_date] (UTC
        dates) - the runs catchup makes - and return their run ids, oldest first."""
        self.unpause(dag_id, wait_parse=wait_parse)
        self.api(
            "POST",
            "/backfills",
            {"dag_id": dag_id, "from_date": f"{from_date}T00:00:00Z", "to_date": f"{to_date}T00:00:00Z"},
        )
        rows = self.query(
            "select run_id from dag_run where dag_id=:d and run_type='backfill' order by logical_date",
            d=dag_id,
        )
        return [str(run_id) for (run_id,) in rows]

    def trigger(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        without_logical_date: bool = False,
        wait_parse: float = 120,
    ) -> str:
        """Unpause ``dag_id`` and start a manual run of it; its run id.

        ``without_logical_date``: trigger as ``airflow dags trigger`` and the REST API do by default
        in Airflow 3 (no ``ds``, ``logical_date`` or data interval in the task context).
        """
        self.unpause(dag_id, wait_parse=wait_parse)
        run_id = f"e2e__{secrets.token_hex(4)}"
        body = {
            "dag_run_id": run_id,
            "logical_date": None
            if without_logical_date
            else (logical_date or datetime.now(timezone.utc)).isoformat(),
            "conf": dict(conf or {}),
        }
        self.api("POST", f"/dags/{dag_id}/dagRuns", body)
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> RunReport:
        def finished() -> bool:
            state = self._scalar(
                "select state from dag_run where dag_id=:d and run_id=:r", d=dag_id, r=run_id
            )
            return state in ("success", "failed")

        self.wait_for(finished, timeout, what=f"{dag_id}/{run_id} to finish")
        return self.report(dag_id, run_id)

    def wait_for_run_id(self, run_id: str, timeout: float = 300) -> None:
        """Wait for whichever DAG run has ``run_id`` to settle (e.g. runs the scheduler added)."""

        def settled() -> bool:
            states = {r[0] for r in self.query("select state from dag_run where run_id=:r", r=run_id)}
            return states <= {"success", "failed"}

        self.wait_for(settled, timeout, what=f"run {run_id} to finish")

    def report(self, dag_id: str, run_id: str) -> RunReport:
        engine = create_engine(self.db_url)
        with engine.connect() as conn:
            state = conn.execute(
                text("select state from dag_run where dag_id=:d and run_id=:r"), {"d": dag_id, "r": run_id}
            ).scalar()
            tasks: dict[str, str] = dict(
                conn.execute(
                    text(
                        "select task_id, coalesce(state, 'none') from task_instance where dag_id=:d and run_id=:r"
                    ),
                    {"d": dag_id, "r": run_id},
                ).all()
            )
            rows = conn.execute(
                text("select task_id, key, value from xcom where dag_id=:d and run_id=:r"),
                {"d": dag_id, "r": run_id},
            ).all()
        engine.dispose()
        xcoms = {f"{task}.{key}": _decode(value) for task, key, value in rows}
        return RunReport(dag_id, run_id, str(state), tasks, xcoms)

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.db_url)
        with engine.connect() as conn:
            rows = list(conn.execute(text(sql), params).all())
        engine.dispose()
        return rows

    def log_text(self) -> str:
        """Everything Airflow logged (service logs plus task logs), for secret scans and debugging."""
        parts = []
        for path in sorted((self.home / "logs").rglob("*")):
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    # -- internals ---------------------------------------------------------------------------------
    def _airflow(self, *args: str) -> str:
        try:
            result = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"airflow {' '.join(args)} did not finish in 300s") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def _recreate_postgres_db(self) -> None:
        engine = create_engine(
            "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self._db_name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{self._db_name}"'))
        engine.dispose()

    def _scalar(self, sql: str, **params: Any) -> Any:
        try:
            rows = self.query(sql, **params)
        except Exception:  # tables may not exist yet
            return None
        return rows[0][0] if rows else None

    def wait_for(self, predicate: Any, timeout: float, what: str = "condition") -> Any:
        """Poll ``predicate`` every second until it returns something truthy (returned), failing
        early if a service died, and with a TimeoutError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            self._check_alive()
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}; logs in {self.home / 'logs'}")

    def _check_alive(self) -> None:
        for tag, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {tag} exited with {proc.returncode}; see {self.home / 'logs' / tag}.log"
                )

    def _wait_http(self, url: str, timeout: float) -> None:
        import httpx

        def ok() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        self.wait_for(ok, timeout, what=url)


def _decode(value: Any) -> Any:
    import json

    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
