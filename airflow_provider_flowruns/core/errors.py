"""Exceptions raised by the provider.

They subclass ``AirflowException`` so Airflow's retry machinery treats them like any other task
failure. Messages are built only from vendor-visible facts (status, vendor code, vendor message,
request id, method and path): never from headers, bodies we sent, or credentials.
"""

from __future__ import annotations

from airflow.exceptions import AirflowException

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FlowRunsError(AirflowException):
    """Base class for every error this provider raises."""


class FlowRunsConfigError(FlowRunsError, ValueError):
    """A parameter or connection field is missing or invalid; the message names it."""


class FlowRunsApiError(FlowRunsError):
    """A vendor API answered with an error (or not at all, when ``status`` is None).

    ``status``: HTTP status, ``vendor_code``: the vendor's own error code, ``message``: the vendor's
    error text, ``request_id``: the vendor's request/trace id for support tickets, ``retry_after``:
    seconds the vendor asked us to wait (429/503).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.vendor_code = vendor_code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else "request"
        head = f"{where} failed"
        if self.status is not None:
            head += f" with HTTP {self.status}"
        details = [f"{self.vendor_code}: {self.message}" if self.vendor_code else self.message]
        if self.request_id:
            details.append(f"request id {self.request_id}")
        return f"{head}: " + "; ".join(d for d in details if d)

    @property
    def retryable(self) -> bool:
        """True for throttling, server errors and transport failures (``status`` None)."""
        return self.status is None or self.status in RETRYABLE_STATUS

    def __reduce__(self):  # keep the structured fields across pickling (XCom, multiprocessing)
        return (
            _rebuild_api_error,
            (
                self.message,
                self.status,
                self.vendor_code,
                self.request_id,
                self.retry_after,
                self.method,
                self.path,
            ),
        )


def _rebuild_api_error(message, status, vendor_code, request_id, retry_after, method, path):
    return FlowRunsApiError(
        message,
        status=status,
        vendor_code=vendor_code,
        request_id=request_id,
        retry_after=retry_after,
        method=method,
        path=path,
    )


class UnexpectedResponse(FlowRunsApiError):
    """A vendor answered with success but with a body of a shape this provider cannot read (not an
    object, a field of the wrong type). The message names the vendor, the run and the problem.

    Not retryable: a garbled transfer is retried before it gets here (``_MalformedBody``); valid
    JSON of the wrong shape will not read differently a minute later, and waiting on it until the
    deadline would only hide the problem.
    """

    @property
    def retryable(self) -> bool:
        return False


class RateLimitBudgetExhausted(FlowRunsError):
    """A vendor budget (e.g. Habu's 20 run creations per hour) is spent; retrying now would be refused."""

    def __init__(self, message: str, *, retry_at: float | None = None) -> None:
        self.retry_at = retry_at
        super().__init__(message)


class NotSupported(FlowRunsError):
    """The vendor's API has no such operation (for example Habu has no cancel endpoint)."""


class RunFailed(FlowRunsError):
    """The vendor run ended in a failed state; the message carries the vendor's error text."""

    def __init__(self, message: str, *, run_id: str | None = None, vendor_status: str | None = None) -> None:
        self.run_id = run_id
        self.vendor_status = vendor_status
        super().__init__(message)


class RunCancelled(RunFailed):
    """The vendor run was cancelled (by a user or by the vendor) before it finished."""


class RunTimedOut(RunFailed):
    """The run did not finish before the operator's ``timeout`` deadline."""
