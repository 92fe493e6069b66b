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
    """UTF-8 CSV with a header row, per RFC 4180: CRLF line ends and minimal quoting.

    CRLF is not taste: the csv module quotes a field only for the characters of its line
    terminator, so with a bare LF a value holding a lone CR went out unquoted, and every CSV reader
    split the row there. Missing columns and None are empty cells, as ``csv`` writes None.
    """
    names = list(columns)
    known = frozenset(names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(names)
    pending = 0
    for row in rows:
        if not known.issuperset(row):
            raise UnexpectedColumn(
                f"row has column(s) {sorted(set(row) - known)} missing from the report's header {names}; "
                "use format='jsonl' to keep them"
            )
        get = row.get
        writer.writerow([get(name) for name in names])
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
