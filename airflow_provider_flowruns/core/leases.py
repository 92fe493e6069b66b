"""A lock held across every process of an Airflow deployment: a host file lock plus a lease kept in
an Airflow Variable.

Airflow gives tasks and triggerers Variables but no compare-and-swap, so a lease is claimed the way
a meeting room is claimed without a booking system: write your name on the door, wait long enough
for a rival's note to land, and read the door again; whoever's name survived holds the room. A
rival's note can only land after ours if that rival read the door before our write and wrote right
after, so ``settle_seconds`` needs only to outlast one Variable round trip. A host file lock in
front of the lease keeps processes of one host from even competing.

The protocol is written once, as a generator of I/O steps (the sans-I/O style of h11 and httpx's
auth flows), and run by a blocking driver in workers and an asyncio driver in the triggerer, so the
two paths cannot drift apart and the triggerer's event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from airflow_provider_flowruns.core.variables import (
    VariablesUnavailable,
    aget_variable,
    aset_variable,
    get_variable,
    set_variable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Record = dict[str, Any]
Outcome = Literal["held", "ready", "timeout", "unshared"]


@dataclass(frozen=True)
class Read:
    variable: str


@dataclass(frozen=True)
class Write:
    variable: str
    record: Record


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Read | Write | Sleep
Steps = Generator[Step, Any, T]


def decode(raw: str | None) -> Record:
    """A Variable's JSON object; anything else (absent, garbled, hand-edited) reads as empty."""
    if not raw:
        return {}
    try:
        record = json.loads(raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def variable_name(prefix: str, key: str) -> str:
    """The Variable that holds shared state for ``key`` (a URL and client id, plus a digest of the
    secret for tokens): hashed, so no identifier of the API user shows in the Variable list."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]


def without_lease(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in ("lease_owner", "lease_until")}


def run_steps(steps: Steps[T], description: str | None = None) -> T:
    """Drive a protocol with blocking Variable calls (workers)."""
    reply: Any = None
    try:
        while True:
            step = steps.send(reply)
            reply = None
            if isinstance(step, Read):
                reply = decode(get_variable(step.variable))
            elif isinstance(step, Write):
                set_variable(step.variable, json.dumps(step.record), description)
            else:
                time.sleep(step.seconds)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun_steps(steps: Steps[T], description: str | None = None) -> T:
    """Drive a protocol through the supervisor's async channel (the triggerer)."""
    reply: Any = None
    try:
        while True:
            step = steps.send(reply)
            reply = None
            if isinstance(step, Read):
                reply = decode(await aget_variable(step.variable))
            elif isinstance(step, Write):
                await aset_variable(step.variable, json.dumps(step.record), description)
            else:
                await asyncio.sleep(step.seconds)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _never_ready(record: Record) -> bool:
    return False


class DeploymentLock:
    """Mutual exclusion on one Variable for every process that can reach the metadata DB.

    :param description: the Variable description shown in the UI (why the Variable exists).
    :param lease_seconds: how long a holder may keep the lease before others presume it dead.
    :param settle_seconds: how long a freshly written lease is left before it is trusted.
    :param lock_dir: where host file locks live (``[flowruns] token_lock_dir``, else the temp dir).
    """

    def __init__(
        self,
        description: str,
        *,
        lease_seconds: float = 60.0,
        settle_seconds: float = 1.0,
        lock_dir: Path | None = None,
    ) -> None:
        self.description = description
        self.lease_seconds = lease_seconds
        self.settle_seconds = settle_seconds
        self.lock_dir = lock_dir
        self.owner = uuid.uuid4().hex

    # -- the protocol --------------------------------------------------------------------------------
    def acquire(self, variable: str, ready: Callable[[Record], bool] = _never_ready) -> Steps[Outcome]:
        """``held``: we hold the lease. ``ready``: ``ready(record)`` said the work is already done
        by someone else. ``timeout``: a live lease never went away (its holder is stuck)."""
        give_up = time.monotonic() + 2 * self.lease_seconds
        while time.monotonic() < give_up:
            record = yield Read(variable)
            if ready(record):
                return "ready"
            if self._held_by_other(record):
                yield Sleep(min(1.0, self.settle_seconds * 2))
                continue
            yield Write(variable, self._with_lease(record))
            yield Sleep(self.settle_seconds)
            if (yield Read(variable)).get("lease_owner") == self.owner:
                return "held"
        return "timeout"

    def release(self, variable: str) -> Steps[None]:
        """Drop our lease, keeping whatever the holder wrote (a holder that replaced the whole
        record has already dropped it)."""
        record = yield Read(variable)
        if record.get("lease_owner") == self.owner:
            yield Write(variable, without_lease(record))

    def _held_by_other(self, record: Record) -> bool:
        until = record.get("lease_until")
        return (
            record.get("lease_owner") not in (None, self.owner)
            and isinstance(until, (int, float))
            and until > time.time()
        )

    def _with_lease(self, record: Record) -> Record:
        return {**record, "lease_owner": self.owner, "lease_until": time.time() + self.lease_seconds}

    # -- drivers -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self, variable: str, ready: Callable[[Record], bool] = _never_ready) -> Iterator[Outcome]:
        """Blocking: the host lock, then the lease. Yields the outcome; ``unshared`` means there are
        no Variables here (outside Airflow) and only the host lock was taken."""
        fd = self._open(variable)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                try:
                    outcome = run_steps(self.acquire(variable, ready), self.description)
                except VariablesUnavailable:
                    outcome = "unshared"
                try:
                    yield outcome
                finally:
                    if outcome == "held":
                        with contextlib.suppress(VariablesUnavailable):
                            run_steps(self.release(variable), self.description)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def ahold(
        self, variable: str, ready: Callable[[Record], bool] = _never_ready
    ) -> AsyncIterator[Outcome]:
        """The same, for an event loop: the file lock is polled, never waited on."""
        fd = await asyncio.to_thread(self._open, variable)
        try:
            while not _try_flock(fd):
                await asyncio.sleep(0.05)
            try:
                try:
                    outcome = await arun_steps(self.acquire(variable, ready), self.description)
                except VariablesUnavailable:
                    outcome = "unshared"
                try:
                    yield outcome
                finally:
                    if outcome == "held":
                        with contextlib.suppress(VariablesUnavailable):
                            await arun_steps(self.release(variable), self.description)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            await asyncio.to_thread(os.close, fd)

    def _open(self, variable: str) -> int:
        path = (self.lock_dir or default_lock_dir()) / f"{variable}.lock"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def default_lock_dir() -> Path:
    from airflow.configuration import conf

    configured = conf.get("flowruns", "token_lock_dir", fallback=None)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "airflow-flowruns-locks"


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
