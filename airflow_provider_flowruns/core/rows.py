"""Rows from paginated vendor results, encoded as CSV or JSON Lines chunk by chunk.

Reports arrive a page at a time; encoding them as they arrive keeps memory flat however long the
report is. "All values kept" is a promise, and a CSV header is written before any row, so the
header cannot come from the first page alone: a vendor's rows may carry columns its metadata does
not list (the spec's own ``QuestionRunResultData`` example does), and a later page may add one.

The CSV header is therefore the union of the declared columns and every row's keys, in first-seen
order, found in one streaming pass (:func:`csv_chunks`): rows are encoded as they come into a spill
file (memory up to ``SPILL_IN_MEMORY`` bytes, then a local temporary file), each with the cells of
the columns known when it arrived. Once the rows end, the header is written, then the spill: byte
for byte where a segment's rows already had every column (the usual case: a copy), re-read and
padded with empty cells where a column appeared after them. Memory stays flat; the extra cost is a
local copy of the CSV, and a re-parse only of rows that came before a late column.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, get_args

RowFormat = Literal["csv", "jsonl"]
FORMATS: tuple[RowFormat, ...] = get_args(RowFormat)

#: Spill bytes held in memory before the spill moves to a temporary file on local disk.
SPILL_IN_MEMORY = 8 * 1024 * 1024


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
    """UTF-8 CSV per RFC 4180 (CRLF line ends, minimal quoting), with a header that loses no column:
    ``columns``, then every other key of any row, in the order first seen (see the module doc).

    CRLF is not taste: the csv module quotes a field only for the characters of its line
    terminator, so with a bare LF a value holding a lone CR went out unquoted, and every CSV reader
    split the row there. Missing columns and None are empty cells, as ``csv`` writes None. The
    output is exactly what writing every row under the final header would give; each chunk ends at
    a row boundary. Nothing is yielded before ``rows`` is exhausted.
    """
    names = list(dict.fromkeys(str(c) for c in columns))
    index = {name: i for i, name in enumerate(names)}
    with tempfile.SpooledTemporaryFile(max_size=SPILL_IN_MEMORY, mode="w+b") as spill:
        # (end offset in the spill, columns its rows were written with): segments end every
        # ``rows_per_chunk`` rows and wherever a new column appears, so each has one width.
        segments: list[tuple[int, int]] = []
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        pending = 0

        def flush() -> None:
            nonlocal pending
            if pending:
                spill.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
                segments.append((spill.tell(), width))
                pending = 0

        width = len(names)
        for row in rows:
            for key in row:
                if key not in index:
                    flush()  # the rows before keep their narrower width
                    index[key] = len(names)
                    names.append(key)
            width = len(names)
            get = row.get
            writer.writerow([get(name) for name in names])
            pending += 1
            if pending >= rows_per_chunk:
                flush()
        flush()

        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(names)
        yield header.getvalue().encode()
        spill.seek(0)
        start = 0
        for end, seg_width in segments:
            segment = spill.read(end - start)  # at most rows_per_chunk rows, as before the spill
            start = end
            yield segment if seg_width == len(names) else _padded(segment, len(names) - seg_width)


def _padded(segment: bytes, missing: int) -> bytes:
    """Rows of a spill segment with ``missing`` empty cells appended (columns seen after them)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    pad = [None] * missing
    for cells in csv.reader(io.StringIO(segment.decode(), newline="")):
        writer.writerow([*cells, *pad])
    return out.getvalue().encode()


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
