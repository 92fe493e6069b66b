"""Rows from paginated vendor results, encoded as CSV or JSON Lines chunk by chunk.

Reports arrive a page at a time; encoding them as they arrive keeps memory flat however long the
report is. "All values kept" is a promise: a row with a column the header does not have is an
error in CSV (the header is already written), never a silently dropped value.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from airflow_provider_flowruns.core.errors import FlowRunsError

RowFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")


class UnexpectedColumn(FlowRunsError):
    """A row carries a column the CSV header does not have."""


class RowCounter:
    """Counts rows as they stream past, so a transfer can check the total the vendor announced."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for row in self._rows:
            self.count += 1
            yield row


def csv_chunks(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, rows_per_chunk: int = 1000
) -> Iterator[bytes]:
    """UTF-8 CSV with a header row; quoting per RFC 4180 so commas, quotes and newlines survive."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    pending = 0
    for row in rows:
        extra = set(row) - set(columns)
        if extra:
            raise UnexpectedColumn(
                f"row has column(s) {sorted(extra)} missing from the report's header {list(columns)}; "
                "use format='jsonl' to keep them"
            )
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if buffer.tell():
        yield buffer.getvalue().encode()


def jsonl_chunks(rows: Iterable[Mapping[str, Any]], *, rows_per_chunk: int = 1000) -> Iterator[bytes]:
    """One JSON object per line, every key and value as the vendor sent it."""
    lines: list[str] = []
    for row in rows:
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        if len(lines) >= rows_per_chunk:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def encode_rows(fmt: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    if fmt == "csv":
        return csv_chunks(columns, rows)
    if fmt == "jsonl":
        return jsonl_chunks(rows)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
