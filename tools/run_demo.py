"""``make demo``: the emulators plus a real Airflow (API server, scheduler, DAG processor,
triggerer) running ``example_flowruns_demo`` end to end; prints what happened and where results went."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from airflow_provider_flowruns.testing.airflow_stack import AirflowStack  # noqa: E402
from airflow_provider_flowruns.testing.process import EmulatorProcess  # noqa: E402


def main() -> int:
    output = ROOT / "demo-output"
    with EmulatorProcess(["demo"]) as emu:
        print(f"emulators: {emu.base}/demo/v1 (flowruns-emulator serve)", flush=True)
        env = {
            "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": (
                f'{{"conn_type": "flowruns_demo", "host": "{emu.url("demo", "/v1")}", "password": "demo-token"}}'
            ),
            "AIRFLOW_VAR_FLOWRUNS_DEMO_OUTPUT": str(output),
        }
        print("starting Airflow (api-server, scheduler, dag-processor, triggerer)...", flush=True)
        with AirflowStack("demo", dags_folder=ROOT / "example_dags", root=ROOT, env=env) as stack:
            db = "PostgreSQL" if stack.use_postgres else "SQLite"
            print(
                f"Airflow up on http://127.0.0.1:{stack.port} (metadata DB: {db}); triggering the DAG",
                flush=True,
            )
            run_id = stack.trigger("example_flowruns_demo")
            report = stack.wait_for_run("example_flowruns_demo", run_id, timeout=300)
        stats = emu.stats()["vendors"]["demo"]
    print(f"\nDAG run {report.dag_id} / {report.run_id}: {report.state.upper()}")
    for task, state in sorted(report.tasks.items()):
        print(f"  {task:<16} {state}")
    for key in ("start_and_wait.run_id", "start_and_wait.run_url", "start_side_run.run_id"):
        print(f"  {key:<24} {report.xcoms.get(key)}")
    saved = report.xcoms.get("save_result.return_value") or {}
    print(
        f"\nvendor side: {stats.get('runs_created', 0)} runs created, {stats.get('status_polls', 0)} status polls"
    )
    if saved:
        print(f"results: {saved['uri']} ({saved['size']} bytes, sha256 {saved['sha256'][:16]}...)")
    print(f"Airflow logs: {ROOT / '.run' / 'demo' / 'logs'}")
    return 0 if report.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
