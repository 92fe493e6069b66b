"""Benchmark 3: transfer throughput and memory - a result file streamed from the emulator (uvicorn)
to ``file://`` and to ``s3://`` (moto's server) by ``DemoResultToStorageOperator`` (the shared
``download_to`` every vendor's transfer uses), against ``curl -o`` of the same URL on the same
loopback, and the transfer's peak RSS at two sizes (a streamed copy should not grow with size).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_flowruns.testing.process import EmulatorProcess, free_port
from benchmarks.report import Report, Row

TOKEN = "demo-token"
MIB = 1 << 20


def start_run(emu: EmulatorProcess, size: int) -> str:
    r = httpx.post(
        emu.url("demo", "/v1/runs"),
        json={"name": f"bench-{size}", "duration": 0, "result_bytes": size},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    r.raise_for_status()
    return str(r.json()["id"])


def curl(url: str, dest: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["curl", "-sSf", "-o", str(dest), "-H", f"Authorization: Bearer {TOKEN}", url],
        check=True,
        timeout=1800,
    )
    return time.perf_counter() - started


def ours(run_id: str, destination: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.transfer_worker", run_id, destination],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"transfer to {destination} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class MotoServer:
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 endpoint, in another process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        httpx.put(f"{self.url}/bench").raise_for_status()  # create the bucket
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def run(report: Report, *, smoke: bool) -> None:
    sizes = [1 * MIB, 8 * MIB] if smoke else [100 * MIB, 1024 * MIB]
    has_s3 = find_spec("s3fs") is not None and find_spec("airflow.providers.amazon") is not None
    with tempfile.TemporaryDirectory(prefix="flowruns-bench-") as tmp, EmulatorProcess(["demo"]) as emu:
        base_env = {
            **os.environ,
            "AIRFLOW_HOME": tmp,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AWS_ACCESS_KEY_ID": "testing",  # moto accepts any credentials
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": json.dumps(
                {"conn_type": "flowruns_demo", "host": emu.url("demo", "/v1"), "password": TOKEN}
            ),
        }
        results: dict[tuple[str, int], dict[str, Any]] = {}
        curl_s: dict[int, float] = {}
        moto = MotoServer() if has_s3 else None
        if moto is not None:
            moto.__enter__()
            base_env["AWS_ENDPOINT_URL"] = moto.url  # ObjectStoragePath without conn_id: botocore's env
            base_env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": moto.url, "region_name": "us-east-1"},
                }
            )
        try:
            for size in sizes:
                run_id = start_run(emu, size)
                url = emu.url("demo", f"/v1/runs/{run_id}/result")
                curl_s[size] = curl(url, Path(tmp) / "curl.out")
                (Path(tmp) / "curl.out").unlink()
                out_dir = Path(tmp) / "out"
                results[("file", size)] = ours(run_id, f"file://{out_dir}", base_env)
                shutil.rmtree(out_dir, ignore_errors=True)
                if moto is not None:
                    results[("s3", size)] = ours(run_id, "s3://bench/results", base_env)
        finally:
            if moto is not None:
                moto.__exit__(None, None, None)
    for (dest, size), res in results.items():
        if res["size"] != size:
            raise RuntimeError(f"transfer to {dest} wrote {res['size']} bytes, expected {size}")
    big, small = sizes[-1], sizes[0]
    label = lambda s: f"{s // MIB} MiB"  # noqa: E731
    for dest in ("file", "s3"):
        if (dest, big) not in results:
            report.notes.append(
                f"bench 3: {dest}:// skipped - s3fs / the Amazon provider are not installed here (they are in .venv-bench)."
            )
            continue
        name = f"3 transfer result file -> {dest}://"
        for size in sizes:
            mbps = size / MIB / results[(dest, size)]["seconds"]
            curl_mbps = size / MIB / curl_s[size]
            goal = ">= 0.8x of curl" if dest == "file" else "(reported)"
            # throughput: higher is better, so the row holds curl's time / ours (ratio of speeds)
            report.add(
                Row(
                    f"{name} {label(size)}",
                    "throughput",
                    mbps,
                    curl_mbps,
                    "MiB/s",
                    goal,
                    (mbps >= 0.8 * curl_mbps) if dest == "file" and not smoke else None,
                    baseline_name="curl -o to a file",
                )
            )
        peaks = [results[(dest, s)]["peak_rss_b"] / 1e6 for s in sizes]
        report.add(
            Row(
                f"{name} peak RSS",
                f"at {label(big)} vs at {label(small)}",
                peaks[1],
                peaks[0],
                "MB",
                "same peak, < 150 MB",
                (peaks[1] <= peaks[0] * 1.1 + 5 and peaks[1] < 150) if not smoke else None,
                baseline_name=f"ours at {label(small)}",
            )
        )
    report.notes.append(
        "bench 3: the 1 GiB *paginated report* case (Habu report pages -> storage) is not measured yet; "
        "only the streamed result file is."
    )
