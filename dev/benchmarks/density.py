"""Benchmark 2: triggerer density - N ``FlowRunTrigger``s in one event loop against N dbt Cloud
``DbtCloudRunJobTrigger``s, both polling the emulator served by uvicorn in another process.

Both sides get the same run durations (random, over a few emulated minutes), the same poll interval
and the same TLS server (dbt's hook only speaks https). The server counts status polls and the
distinct client ports (TCP connections) per vendor; the worker process reports RSS, CPU and
event-loop lag (``benchmarks.density_worker``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_flowruns.testing.process import EmulatorProcess
from benchmarks.parse_cost import dbt_available
from benchmarks.report import Report, Row
from flowruns_dev.tls import self_signed

DEMO_TOKEN = "demo-token"
DBT_TOKEN = "dbt-token"
OURS_POLL = "GET /demo/v1/runs/{run_id}"
#: Served by its import path: the dbt Cloud emulator lives in the repository's dev harness, not in
#: the provider's ``testing`` package (the emulator process finds it on the inherited PYTHONPATH).
DBTCLOUD_EMULATOR = "flowruns_dev.dbtcloud_app:DbtCloudEmulator"
DBT_POLL = "GET /dbtcloud/api/v2/accounts/{account_id}/runs/{run_id}/"


def create_runs(emu: EmulatorProcess, kind: str, durations: list[float], verify: Any) -> list[Any]:
    """Start the runs the triggers will watch (from this process: setup is not measured)."""
    ids: list[Any] = []
    with httpx.Client(verify=verify, timeout=30) as client:
        for i, duration in enumerate(durations):
            if kind == "ours":
                body = {"name": f"bench-{i}", "duration": duration}
                r = client.post(
                    emu.url("demo", "/v1/runs"), json=body, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
                )
            else:
                r = client.post(
                    emu.url("dbtcloud", "/api/v2/accounts/1/jobs/1/run/"),
                    json={"cause": "bench", "duration": duration},
                    headers={"Authorization": f"Token {DBT_TOKEN}"},
                )
            r.raise_for_status()
            body = r.json()
            ids.append(body["id"] if kind == "ours" else body["data"]["id"])
    return ids


#: The polling phase CPU per 1,000 polls is measured over: from the first sample at which the server
#: has seen as many status polls as there are triggers (every trigger is past its first poll:
#: connection lookup, client and hook construction are start-up, not polling) to the first sample at
#: which it has seen this fraction of the side's final count (the tail, where a few triggers are left
#: and events, cleanup and the idle loop dominate, is teardown).
WINDOW_END_FRACTION = 0.9


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (read from outside, costs it nothing)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def polling_window(samples: list[tuple[float, float, int]], n: int, total: int) -> dict[str, float] | None:
    """CPU and polls between the start-up and teardown cut points of ``samples`` ((t, cpu, polls)
    since the worker got its runs); None when the run was too short to have two such samples."""
    start = next((s for s in samples if s[2] >= n), None)
    end = next((s for s in samples if s[2] >= WINDOW_END_FRACTION * total), None)
    if start is None or end is None or end[2] <= start[2] or end[0] <= start[0]:
        return None
    return {
        "t0_s": start[0],
        "wall_s": end[0] - start[0],
        "cpu_s": end[1] - start[1],
        "polls": end[2] - start[2],
    }


#: Which transport carries the worker's async requests (``[flowruns] async_transport``).
TRANSPORT_ENV = "AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT"


def run_side(
    emu: EmulatorProcess,
    kind: str,
    durations: list[float],
    poll: float,
    env: dict[str, str],
    verify: Any,
    *,
    sample_every: float,
) -> dict[str, Any]:
    """One side: start the worker, let it import, then create the runs and hand it their ids.

    The runs are created only once the worker is ready, so the emulated clock does not run down
    the runs while the worker imports Airflow (seconds, and more under load): otherwise how many
    polls each side gets depends on how fast its interpreter started. While the worker polls, its
    CPU (from /proc) and the server's poll count are sampled together every ``sample_every`` s.
    """
    route = OURS_POLL if kind == "ours" else DBT_POLL
    vendor = "demo" if kind == "ours" else "dbtcloud"
    # Both pipes are drained all along: the triggers' logs (megabytes of them) may go to either, and
    # a pipe nobody reads fills up and stalls the worker.
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.density_worker", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    errors: list[str] = []
    ready = threading.Event()

    def drain_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "ready":
                ready.set()
        ready.set()  # EOF: the worker exited (before or after it was ready)

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)
            del errors[:-200]

    readers = [threading.Thread(target=f, daemon=True) for f in (drain_stdout, drain_stderr)]
    for reader in readers:
        reader.start()
    try:
        assert proc.stdin is not None
        ready.wait(timeout=600)
        if proc.poll() is None and "ready\n" in lines:
            ids = create_runs(emu, kind, durations, verify)
            before = emu.stats()
            base_polls = before["requests"].get(route, 0)
            proc.stdin.write(json.dumps({"run_ids": ids, "poll": poll}) + "\n")
            proc.stdin.close()
            started, samples = time.monotonic(), []
            with httpx.Client(verify=verify, timeout=30) as control:
                while proc.poll() is None:
                    polls = control.get(f"{emu.base}/_emulator/stats").json()["requests"].get(route, 0)
                    try:
                        cpu = proc_cpu(proc.pid)
                    except (FileNotFoundError, ProcessLookupError, IndexError):
                        break
                    samples.append((time.monotonic() - started, cpu, polls - base_polls))
                    time.sleep(sample_every)
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=10)
    if proc.returncode != 0 or "ready\n" not in lines:
        raise RuntimeError(f"density worker ({kind}) failed: {''.join(errors)[-4000:]}")
    out = "".join(lines)
    result = dict(json.loads(out.strip().splitlines()[-1]))
    after = emu.stats()
    result["polls"] = after["requests"].get(route, 0) - base_polls
    result["connections"] = after.get("connections", {}).get(vendor, 0) - before.get("connections", {}).get(
        vendor, 0
    )
    result["window"] = polling_window(samples, len(durations), result["polls"])
    return result


def run(report: Report, *, smoke: bool) -> None:
    n = 20 if smoke else 1000
    speed, poll = (4.0, 0.5) if smoke else (4.0, 2.0)
    lo, hi = (8.0, 16.0) if smoke else (30.0, 240.0)  # emulated seconds: "a few minutes"
    rng = random.Random(11)
    durations = [rng.uniform(lo, hi) for _ in range(n)]
    has_dbt = dbt_available()
    with tempfile.TemporaryDirectory(prefix="flowruns-bench-") as tmp:
        cert, key = self_signed(Path(tmp))
        import ssl

        verify = ssl.create_default_context(cafile=cert)
        with EmulatorProcess(["demo", DBTCLOUD_EMULATOR], speed=speed, tls=(cert, key)) as emu:
            env = {
                **os.environ,
                "SSL_CERT_FILE": cert,  # both httpx (trust_env) and aiohttp (default context) honour it
                "AIRFLOW_HOME": tmp,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": json.dumps(
                    {"conn_type": "flowruns_demo", "host": emu.url("demo", "/v1"), "password": DEMO_TOKEN}
                ),
                "AIRFLOW_CONN_DBT_CLOUD_DEFAULT": json.dumps(
                    {
                        "conn_type": "dbt_cloud",
                        "host": emu.base.removeprefix("https://") + "/dbtcloud",
                        "password": DBT_TOKEN,
                    }
                ),
            }
            every = 0.1 if smoke else 0.5
            # Ours as shipped (aiohttp under the shared httpx client, when installed - it is here,
            # dbt Cloud's hook needs it), then ours on httpx's own transport as a reference.
            transport = "aiohttp" if find_spec("aiohttp") else "httpx"

            def measure(kind: str, extra: dict[str, str]) -> dict[str, Any]:
                return run_side(emu, kind, durations, poll, {**env, **extra}, verify, sample_every=every)

            ours = measure("ours", {TRANSPORT_ENV: transport})
            ours_httpx = measure("ours", {TRANSPORT_ENV: "httpx"}) if transport != "httpx" else None
            dbt = measure("dbt", {}) if has_dbt else None
    for side in filter(None, (ours, ours_httpx, dbt)):
        bad = [e for e in side["events"] if e != "success"]
        if bad or len(side["events"]) != n:
            raise RuntimeError(
                f"density {side['kind']}: {len(bad)} of {n} triggers did not succeed: {bad[:5]}"
            )
    name = f"2 triggerer density, {n} triggers, {int(lo)}-{int(hi)} emulated s runs, poll {poll} s"
    judge = not smoke and dbt is not None

    def per(side: dict[str, Any] | None, what: str) -> float | None:
        if side is None:
            return None
        if what == "rss":
            return (side["rss_peak_b"] - side["rss_base_b"]) / side["triggers"] / 1024
        if what == "cpu":  # the polling phase (a smoke run may be too short to have one: whole run)
            cpu_s, polls = (
                (side["window"]["cpu_s"], side["window"]["polls"])
                if side["window"]
                else (side["cpu_s"], side["polls"])
            )
            return cpu_s / max(polls, 1) * 1000
        if what == "lag":
            return side["lag_p99_s"] * 1000
        return float(side["connections"])

    rss_o, rss_d = per(ours, "rss") or 0.0, per(dbt, "rss")
    cpu_o, cpu_d = per(ours, "cpu") or 0.0, per(dbt, "cpu")
    report.add(
        Row(
            name,
            "peak RSS per trigger",
            rss_o,
            rss_d,
            "KiB",
            "<= 0.5x",
            rss_o <= 0.5 * rss_d if judge and rss_d else None,
            baseline_name="dbt Cloud",
        )
    )
    report.add(
        Row(
            name,
            "CPU per 1,000 polls, polling phase",
            cpu_o,
            cpu_d,
            "s",
            "<= 0.5x",
            cpu_o <= 0.5 * cpu_d if judge and cpu_d else None,
            baseline_name="dbt Cloud",
        )
    )
    if ours_httpx is not None:
        report.add(
            Row(
                name,
                "CPU per 1,000 polls, polling phase, ours on httpx's own transport (reference)",
                per(ours_httpx, "cpu") or 0.0,
                cpu_d,
                "s",
                "-",
                None,
                baseline_name="dbt Cloud",
            )
        )
    lag_o = per(ours, "lag") or 0.0
    report.add(
        Row(
            name,
            "event-loop lag p99",
            lag_o,
            per(dbt, "lag"),
            "ms",
            "ours < 100 ms",
            lag_o < 100 if not smoke else None,
            baseline_name="dbt Cloud",
        )
    )
    conn_o = per(ours, "connections") or 0.0
    report.add(
        Row(
            name,
            "TCP connections opened",
            conn_o,
            per(dbt, "connections"),
            "",
            "small constant per conn id",
            conn_o <= 20 if not smoke else None,
            baseline_name="dbt Cloud",
        )
    )
    report.add(
        Row(
            name,
            "status polls (sanity)",
            float(ours["polls"]),
            None if dbt is None else float(dbt["polls"]),
            "",
            "-",
        )
    )

    def describe(side: dict[str, Any]) -> str:
        window = side["window"]
        phase = (
            f"polling phase {window['wall_s']:.0f} s from t={window['t0_s']:.0f} s: {window['polls']} polls "
            f"({window['polls'] / window['wall_s']:.0f}/s), {window['cpu_s']:.1f} s CPU"
            if window
            else "no polling phase (run too short): CPU per poll is over the whole run"
        )
        return (
            f"{side['wall_s']:.0f} s wall, {side['cpu_s']:.1f} s CPU, {side['polls']} polls over "
            f"{side['connections']} connections; {phase}"
        )

    report.notes.append(
        f"bench 2: ours ({transport} transport) {describe(ours)}"
        + (f"; ours on httpx's own transport {describe(ours_httpx)}" if ours_httpx else "")
        + (
            f"; dbt Cloud {describe(dbt)}."
            if dbt
            else "; dbt Cloud baseline skipped (provider not installed here)."
        )
    )
