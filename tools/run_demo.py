"""``make demo``: the emulators plus a real Airflow (API server, scheduler, DAG processor,
triggerer) running the example DAGs end to end; prints what happened and where results went."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from airflow_provider_flowruns.testing.airflow_stack import AirflowStack, RunReport  # noqa: E402
from airflow_provider_flowruns.testing.process import EmulatorProcess  # noqa: E402

XCOM_KEYS = ("run_id", "run_url")


def show(report: RunReport) -> None:
    print(f"\nDAG run {report.dag_id} / {report.run_id}: {report.state.upper()}")
    for task, state in sorted(report.tasks.items()):
        ids = ", ".join(
            f"{k}={report.xcoms[f'{task}.{k}']}" for k in XCOM_KEYS if report.xcoms.get(f"{task}.{k}")
        )
        print(f"  {task:<18} {state:<8} {ids}")


def main() -> int:
    output = ROOT / "demo-output"
    # The demo vendor runs in real time; Amperity at 10x so its 20 s workflow runs take 2 s.
    with EmulatorProcess(["demo"]) as demo, EmulatorProcess(["amperity"], speed=10) as amperity:
        print(f"emulators: {demo.base}/demo/v1 and {amperity.base}/amperity/api (flowruns-emulator serve)")
        env = {
            "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": json.dumps(
                {"conn_type": "flowruns_demo", "host": demo.url("demo", "/v1"), "password": "demo-token"}
            ),
            "AIRFLOW_CONN_AMPERITY_DEFAULT": json.dumps(
                {
                    "conn_type": "amperity",
                    "host": amperity.url("amperity", "/api"),
                    "password": "amperity-token",
                    "extra": {"tenant": "acme"},
                }
            ),
            "AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL": "10",
            "AIRFLOW_VAR_FLOWRUNS_DEMO_OUTPUT": str(output),
        }
        print("starting Airflow (api-server, scheduler, dag-processor, triggerer)...", flush=True)
        with AirflowStack("demo", dags_folder=ROOT / "example_dags", root=ROOT, env=env) as stack:
            db = "PostgreSQL" if stack.use_postgres else "SQLite"
            print(
                f"Airflow up on http://127.0.0.1:{stack.port} (metadata DB: {db}); triggering the DAGs",
                flush=True,
            )
            runs = {dag: stack.trigger(dag) for dag in ("example_flowruns_demo", "example_amperity_nightly")}
            reports = [stack.wait_for_run(dag, run_id, timeout=300) for dag, run_id in runs.items()]
            for (other,) in stack.query("select run_id from dag_run"):  # runs the scheduler added on unpause
                stack.wait_for_run_id(other, timeout=300)
        demo_stats = demo.stats()["vendors"]["demo"]
        amperity_stats = amperity.stats()["vendors"]["amperity"]
    for report in reports:
        show(report)
    saved = reports[0].xcoms.get("save_result.return_value") or {}
    print(
        f"\nvendor side: demo {demo_stats.get('runs_created', 0)} runs / {demo_stats.get('status_polls', 0)} polls;"
        f" amperity {amperity_stats.get('runs_created', 0)} runs / {amperity_stats.get('status_polls', 0)} polls,"
        f" max {amperity_stats.get('max_rps_seen', 0)} req/s, {amperity_stats.get('rate_limited', 0)} throttled"
    )
    if saved:
        print(f"results: {saved['uri']} ({saved['size']} bytes, sha256 {saved['sha256'][:16]}...)")
    print(f"Airflow logs: {ROOT / '.run' / 'demo' / 'logs'}")
    return 0 if all(r.state == "success" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
