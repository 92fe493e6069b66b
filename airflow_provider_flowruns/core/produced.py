"""What a task produced - the objects it wrote and the vendor run behind them - recorded once.

Two readers need the same facts: Airflow's assets (a task's ``outlets`` get an asset event whose
extra says what landed or which run finished: run id, rows, bytes, sha256) and lineage (OpenLineage
facets). Transfers build one :class:`Produced` per written object, run operators one
:class:`VendorRun` for the run they started or watched, and both call :func:`annotate_outlets`,
which keeps them on the operator (``_produced``, ``_vendor_run``) for a lineage reader too: the two
cannot disagree.

The extra's shape (JSON, so a downstream DAG reads it from ``triggering_asset_events``):

- a transfer that wrote one object: ``{uri, bytes, sha256, rows?, vendor, run_id, run_url?}``;
  several: ``{objects: [{uri, bytes, sha256, rows?}, ...], bytes: <total>, vendor, run_id, ...}``;
- a run operator: ``{vendor, kind, scope, run_id, run_url, status, vendor_status}``, the keys a run
  watcher's event payload has (``triggers/watch.py`` builds its payload from :class:`VendorRun` too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VendorRun:
    """One vendor run as an asset event tells it. ``status`` is the provider's word for where the
    run ended (``succeeded``, ``failed``, ``cancelled``; ``paused`` at a requested stop; ``started``
    from a task that did not wait), ``vendor_status`` the vendor's."""

    vendor: str
    run_id: str
    run_url: str | None = None
    kind: str | None = None
    scope: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    vendor_status: str | None = None
    run_name: str | None = None
    created_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, unknown ones as None (a watcher's payload: one shape for every event)."""
        out = dict(self.__dict__)
        out["scope"] = dict(self.scope)
        return out

    def extra(self) -> dict[str, Any]:
        """The fields that are known."""
        return {k: v for k, v in self.to_dict().items() if v not in (None, {})}


@dataclass(frozen=True)
class Produced:
    """One object a task wrote (``uri``, ``size`` in bytes, ``sha256`` where computed, ``rows``
    where counted) and the vendor run it came from."""

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

    @classmethod
    def from_run(cls, written: Iterable[Mapping[str, Any]], run: VendorRun) -> list[Produced]:
        """One record per ``{uri, size, sha256[, rows]}`` written from ``run``."""
        return [cls.written(w, vendor=run.vendor, run_id=run.run_id, run_url=run.run_url) for w in written]

    def object_extra(self) -> dict[str, Any]:
        """What landed: ``uri``, ``bytes``, ``sha256``, ``rows`` (the known ones)."""
        fields = {"uri": self.uri, "bytes": self.size, "sha256": self.sha256, "rows": self.rows}
        return {k: v for k, v in fields.items() if v is not None}

    def run_extra(self) -> dict[str, Any]:
        fields = {"vendor": self.vendor, "run_id": self.run_id, "run_url": self.run_url}
        return {k: v for k, v in fields.items() if v is not None}

    def extra(self) -> dict[str, Any]:
        """The object and its run, flat (the extra of a transfer that wrote just this)."""
        return {**self.object_extra(), **self.run_extra()}


def outlet_extra(produced: Sequence[Produced] = (), run: VendorRun | None = None) -> dict[str, Any]:
    """The asset-event extra for what a task produced (the module docstring gives its shape)."""
    extra: dict[str, Any] = run.extra() if run is not None else {}
    if len(produced) == 1:
        return {**extra, **produced[0].extra()}
    if produced:
        extra["objects"] = [p.object_extra() for p in produced]
        sizes = [p.size for p in produced]
        if all(s is not None for s in sizes):
            extra["bytes"] = sum(s for s in sizes if s is not None)
        runs = {tuple(sorted(p.run_extra().items())) for p in produced}
        if len(runs) == 1:
            extra.update(dict(runs.pop()))
    return extra


def annotate_outlets(
    context: Mapping[str, Any],
    outlets: Iterable[Any],
    produced: Sequence[Produced] = (),
    *,
    run: VendorRun | None = None,
    task: Any = None,
) -> dict[str, Any]:
    """Give each of the task's outlet assets an event extra saying what landed (and which run), and
    keep the records on ``task`` (``_produced``, ``_vendor_run``) for lineage. Returns the extra.

    Outlets that are not assets (an ``AssetAlias``, a runtime without ``outlet_events``) are left
    alone; an extra the user's own code put on the event keeps its other keys.
    """
    if task is not None:
        task._produced = list(produced)
        task._vendor_run = run
    extra = outlet_extra(produced, run)
    events = context.get("outlet_events")
    if events is None or not extra:
        return extra
    for outlet in outlets:
        if type(outlet).__name__ not in {"Asset", "Dataset"}:
            continue
        events[outlet].extra.update(extra)
    return extra
