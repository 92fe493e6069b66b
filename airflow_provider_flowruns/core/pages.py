"""Reading one page of a vendor listing, whatever came back.

Listings carry the lost-answer reconciliation (was my create made after all?) and durable
re-attach, so a page of the wrong shape must neither crash a task with an ``AttributeError`` nor be
read as "no runs": it is an :class:`UnexpectedResponse` that names the listing. Items that are not
objects are skipped, so one stray ``null`` does not hide the runs around it.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns.core.errors import UnexpectedResponse


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
