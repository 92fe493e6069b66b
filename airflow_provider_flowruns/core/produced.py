"""What a task produced - the objects it wrote and the vendor run they came from - recorded once.

Two readers need the same facts: Airflow's assets (a task's ``outlets`` get an asset event whose
extra says what landed: run id, rows, bytes, sha256) and lineage (OpenLineage facets; hook-lineage
outputs are still reported by ``core/storage.py`` as each object lands). Transfers build one
:class:`Produced` per written object and call :func:`annotate_outlets`; a lineage reader takes the
same records (``Produced.extra()``), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Produced:
    """One object a task wrote (``uri``, ``size``, ``sha256`` where computed, ``rows`` where
    counted) and the vendor run it came from."""

    uri: str
    size: int | None = None
    sha256: str | None = None
    rows: int | None = None
    vendor: str | None = None
    run_id: str | None = None
    run_url: str | None = None

    @classmethod
    def written(cls, written: Mapping[str, Any], **run: Any) -> Produced:
        """From a transfer's ``{uri, size, sha256[, rows]}`` (``WrittenObject.to_dict()``)."""
        return cls(
            uri=str(written["uri"]),
            size=written.get("size"),
            sha256=written.get("sha256"),
            rows=written.get("rows"),
            **run,
        )

    def extra(self) -> dict[str, Any]:
        """The plain fields that are known (an asset event's extra must be JSON)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def annotate_outlets(context: Mapping[str, Any], outlets: Iterable[Any], produced: list[Produced]) -> None:
    """Give each of the task's outlet assets an event extra saying what landed.

    One object: its fields at the top of the extra (``extra["run_id"]``, ``extra["rows"]``, ...);
    several: ``extra["objects"]`` lists them (with the run's fields on top when they share one).
    Outlets that are not assets (or a runtime without ``outlet_events``) are left alone.
    """
    events = context.get("outlet_events")
    if events is None or not produced:
        return
    if len(produced) == 1:
        extra = produced[0].extra()
    else:
        extra = {"objects": [p.extra() for p in produced]}
        runs = {(p.vendor, p.run_id, p.run_url) for p in produced}
        if len(runs) == 1:
            vendor, run_id, run_url = runs.pop()
            extra.update(
                {k: v for k, v in (("vendor", vendor), ("run_id", run_id), ("run_url", run_url)) if v}
            )
    for outlet in outlets:
        if type(outlet).__name__ not in {"Asset", "Dataset"}:
            continue
        events[outlet].extra.update(extra)
