"""Paginated rows encoded as CSV and JSON Lines: every value survives, in the header's order, and a
column the header lacks is an error in CSV, never a silently dropped value."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_flowruns.core.rows import UnexpectedColumn, csv_chunks, encode_rows, jsonl_chunks

COLUMNS = ["id", "name", "note"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=["Cs"])),  # commas, quotes, newlines, any script
)
rows_strategy = st.lists(
    st.dictionaries(st.sampled_from(COLUMNS), values),  # some columns missing in some rows
    max_size=30,
)


def _as_csv_cell(value: object) -> str:
    return "" if value is None else str(value)


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy, per_chunk=st.integers(1, 7))
@example(rows=[{"id": "\r"}, {"name": "a\r\nb", "note": 'say "hi", then go'}], per_chunk=1)  # a lone CR
def test_csv_round_trips_every_value_in_header_order_across_chunks(rows, per_chunk):
    chunks = list(csv_chunks(COLUMNS, rows, rows_per_chunk=per_chunk))
    assert all(chunk.endswith(b"\r\n") for chunk in chunks)  # a chunk never ends inside a row
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))
    assert parsed[0] == COLUMNS
    assert parsed[1:] == [[_as_csv_cell(row.get(c)) for c in COLUMNS] for row in rows]


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy, per_chunk=st.integers(1, 7))
@example(rows=[{"id": "\x85\u2028\r\n"}], per_chunk=1)
def test_jsonl_round_trips_every_row_as_sent(rows, per_chunk):
    text = b"".join(jsonl_chunks(rows, rows_per_chunk=per_chunk)).decode()
    # Lines end at "\n" only (json escapes CR and LF inside strings; U+0085 or U+2028 stay raw,
    # as JSON allows, and str.splitlines() would split there).
    lines = text.split("\n")
    assert lines.pop() == ""
    assert [json.loads(line) for line in lines] == rows


def test_a_column_missing_from_the_header_stops_the_csv_and_is_named():
    rows = [{"id": 1, "name": "a"}, {"id": 2, "surprise": "kept?"}]
    with pytest.raises(UnexpectedColumn, match=r"\['surprise'\].*format='jsonl'"):
        list(csv_chunks(COLUMNS, rows))


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="csv, jsonl"):
        encode_rows("parquet", COLUMNS, [])
