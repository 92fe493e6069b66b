"""``make demo``: every vendor's emulator plus a real Airflow (API server, scheduler, DAG processor,
triggerer) running every example DAG end to end; prints what happened and where results went."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))  # the harness is not in the wheel: run from any folder

from flowruns_dev.airflow_stack import AirflowStack, RunReport  # noqa: E402
from flowruns_dev.fleet import EmulatorFleet, start_example_runs  # noqa: E402

XCOM_KEYS = ("run_id", "run_url")
VENDOR_COUNTERS = ("runs_created", "status_polls", "tokens_minted", "rate_limited", "creates_refused")


def show(report: RunReport) -> None:
    print(f"\nDAG run {report.dag_id} / {report.run_id}: {report.state.upper()}")
    for task, state in sorted(report.tasks.items()):
        ids = ", ".join(
            f"{k}={report.xcoms[f'{task}.{k}']}" for k in XCOM_KEYS if report.xcoms.get(f"{task}.{k}")
        )
        print(f"  {task:<26} {state:<8} {ids}")


def main() -> int:
    output = ROOT / "demo-output"
    with EmulatorFleet(output) as fleet:
        for vendor, emu in fleet.emulators.items():
            print(
                f"emulator {vendor:<13} {emu.base}/{vendor} (flowruns-emulator serve, speed {emu.speed:g}x)"
            )
        print("starting Airflow (api-server, scheduler, dag-processor, triggerer)...", flush=True)
        stack = AirflowStack("demo", dags_folder=ROOT / "example_dags", root=ROOT, env=fleet.env)
        with stack:
            db = "PostgreSQL" if stack.use_postgres else "SQLite (PostgreSQL not reachable)"
            print(f"Airflow up on http://127.0.0.1:{stack.port} (metadata DB: {db}); triggering", flush=True)
            runs = start_example_runs(stack)
            reports = [stack.wait_for_run(dag, run_id, timeout=420) for dag, run_id in runs]
        vendor_stats = {vendor: fleet.stats(vendor) for vendor in fleet.emulators}
    for report in reports:
        show(report)
    print("\nwhat the vendors saw:")
    for vendor, stats in vendor_stats.items():
        counts = ", ".join(f"{k.replace('_', ' ')} {stats[k]}" for k in VENDOR_COUNTERS if k in stats)
        print(f"  {vendor:<13} {counts}")
    print("\nresults:")
    for path in sorted(p for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")):
        print(f"  {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    print(f"Airflow logs: {(stack.home / 'logs').relative_to(ROOT)}")
    return 0 if all(r.state == "success" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
