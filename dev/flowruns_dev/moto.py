"""moto's S3 server as a real process on 127.0.0.1, for the tests and benchmarks that write to s3://."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from airflow_provider_flowruns.testing.process import STARTUP_TIMEOUT, free_port, terminate


class MotoServer:
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 endpoint, in another process), with ``buckets``
    created. Needs ``moto[server]`` (a dev dependency); clients reach it at ``url`` with any keys."""

    def __init__(self, *buckets: str) -> None:
        self.buckets = buckets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> str:
        """Start the server again (same port, buckets recreated); returns why it had stopped."""
        why = f"exit code {self._proc.returncode if self._proc else None}; log tail: {self.log_tail()}"
        self.__exit__(None, None, None)
        self.__enter__()
        return why

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-size:]
        except (AttributeError, OSError):
            return ""

    def __enter__(self) -> MotoServer:
        import tempfile

        self._log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
        self._proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self._log.open("ab"),
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        for bucket in self.buckets:
            httpx.put(f"{self.url}/{bucket}").raise_for_status()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            terminate(self._proc)
            self._proc = None
