"""Reading pages of a vendor listing or report, whatever came back.

Listings carry the lost-answer reconciliation (was my create made after all?) and durable
re-attach, so a page of the wrong shape must neither crash a task with an ``AttributeError`` nor be
read as "no runs": it is an :class:`UnexpectedResponse` that names the listing. Items that are not
objects are skipped, so one stray ``null`` does not hide the runs around it.

A long report is fetched ahead (:func:`read_ahead`) while the task encodes the page it has, so the
vendor's time to build the next pages is not added to ours.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

from airflow_provider_flowruns.core.errors import UnexpectedResponse

T = TypeVar("T")

_END = object()
#: How often a blocked reader checks whether its consumer has gone (seconds).
_STOP_CHECK = 0.1
#: Pages fetched ahead of the caller. One is not enough: the worker needs the GIL for every chunk
#: it reads, and the caller's encoding holds it for up to the 5 ms switch interval at a time, so
#: with no slack the worker's fetch stalls behind the encoding it should overlap (measured on a
#: 100 MiB Habu report: 1 ahead saved ~5 %, 2 ahead ~25 %).
READ_AHEAD = 2


def page_items(body: Any, key: str | None, *, what: str) -> list[dict[str, Any]]:
    """The objects of one page: ``body[key]`` of an object page, or the page itself when it is a
    list (and ``key`` is None, or the vendor answered the bare list some of its versions send)."""
    items = body.get(key) if key is not None and isinstance(body, dict) else body
    if items is None and isinstance(body, dict):
        items = []
    if not isinstance(items, list):
        raise UnexpectedResponse(
            f"listing {what} answered a page of the wrong shape: expected "
            + (f"an object with a {key!r} list" if key else "a list")
            + f", got {type(body).__name__}",
            status=200,
        )
    return [item for item in items if isinstance(item, dict)]


def page_field(body: Any, key: str) -> Any:
    """A pagination field (``next_token``, ``count``) of an object page; None for anything else."""
    return body.get(key) if isinstance(body, dict) else None


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, advanced in a worker thread while the caller works on the ones before.

    At most ``READ_AHEAD`` items are fetched and not yet taken (one queued, one in the worker's
    hand). The iterator still decides every request (the next offset from this page's rows), only
    earlier, so nothing is fetched that reading to the end would not fetch. An error in the worker
    is raised to the caller at the item where it happened. A daemon thread, so a killed task never
    waits for a request in flight; once the caller stops early the worker fetches nothing more.
    """
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=READ_AHEAD - 1)
    stopped = threading.Event()

    def hand_over(item: Any, error: BaseException | None = None) -> bool:
        """Queue an item (the worker holds one more while the queue is full); False once the
        caller has stopped."""
        while not stopped.is_set():
            try:
                handoff.put((item, error), timeout=_STOP_CHECK)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            hand_over(_END, exc)
        else:
            hand_over(_END)

    threading.Thread(target=work, name="flowruns-read-ahead", daemon=True).start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stopped.set()
