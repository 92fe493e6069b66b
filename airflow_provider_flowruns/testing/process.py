"""The emulators as a real process on 127.0.0.1 (uvicorn), for tests, demos and benchmarks."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

import httpx

#: Where ``free_port`` looks: below Linux's default ephemeral range (32768-60999), from which the
#: kernel picks the local port of every outgoing connection and of ``bind(0)``.
_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a server started a moment later.

    Not ``bind(0)``: that port comes from the ephemeral range, and on a busy machine an outgoing
    connection took it before a slow-starting server bound it (an Airflow API server lost its port
    so, under load, in a clean-clone run). Ports below that range are only ever taken on purpose.
    """
    for _ in range(200):
        port = random.choice(_PORTS)  # spreading processes apart, not a secret
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # everything there is taken: what the kernel offers
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTUP_TIMEOUT = 120.0


class EmulatorProcess:
    """``with EmulatorProcess(["demo"]) as emu: emu.url("demo")`` - a live server on 127.0.0.1."""

    def __init__(
        self,
        vendors: list[str] | None = None,
        *,
        port: int | None = None,
        speed: float = 1.0,
        env: dict[str, str] | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """``tls`` = (certificate, key) PEM files: serve HTTPS (clients must trust the certificate)."""
        self.vendors = vendors
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.speed = speed
        self.tls = tls
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _verify(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=self.tls[0]) if self.tls else True

    def url(self, vendor: str, suffix: str = "") -> str:
        return f"{self.base}/{vendor}{suffix}"

    def start(self) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            "airflow_provider_flowruns.testing.cli",
            "serve",
            "--port",
            str(self.port),
        ]
        cmd += ["--speed", str(self.speed)]
        if self.tls:
            cmd += ["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]]
        for vendor in self.vendors or []:
            cmd += ["--vendor", vendor]
        log_path = os.environ.get("FLOWRUNS_EMULATOR_LOG")
        sink = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdout=sink, stderr=sink, env=self.env)  # noqa: S603
        # Generous: on a loaded 2-core CI machine importing FastAPI and the apps can take a while.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self._proc.returncode}")
            try:
                if (
                    httpx.get(f"{self.base}/_emulator/health", timeout=1, verify=self._verify).status_code
                    == 200
                ):
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"emulator {self.vendors or '(all vendors)'} did not start within {STARTUP_TIMEOUT:.0f}s"
        )

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc)
        self._proc = None

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.base}/_emulator/{path}", timeout=10, verify=self._verify, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def add_faults(self, *specs: dict[str, Any]) -> None:
        self.control("POST", "faults", json=list(specs))

    def stats(self) -> dict[str, Any]:
        return dict(self.control("GET", "stats"))

    def serve_verbatim(self, *answers: dict[str, Any]) -> None:
        """Serve documented examples as they stand (see ``server.VerbatimAnswer``), first match wins."""
        self.control("POST", "verbatim", json=list(answers))

    def verbatim_requests(self) -> list[dict[str, Any]]:
        """The requests verbatim answers went to, oldest first: ``{method, path, query, body}``."""
        return list(self.control("GET", "verbatim"))

    def clear_verbatim(self) -> None:
        self.control("DELETE", "verbatim")

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited 10 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
